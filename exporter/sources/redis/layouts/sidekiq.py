"""Sidekiq."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import Field

from exporter.model import QueueStats, Sample
from exporter.sources.redis.layouts.base import (
    JobRange,
    Parsed,
    Plan,
    Reads,
    RegistryLayout,
    Results,
    Workers,
    count,
    fill_tenant,
    flat_dict,
    flow,
    head_time,
    json_dict,
    members,
    stored_count,
    to_float,
    to_int,
)
from exporter.sources.redis.ops import Get, Head, HGetAll, Llen, SMembers, Zcard

# sidekiq/sidekiq lib/sidekiq/launcher.rb `❤`: the process hash expires 60 s after its last beat, and
# Sidekiq::ProcessSet (api.rb `cleanup`, `each`) drops a process whose hash is gone. A hash still
# present with an older `beat` (no TTL, clock skew) is dead by the same 60 s rule.
PROCESS_EXPIRY = 60.0


class SidekiqLayout(RegistryLayout):
    """Sidekiq: `queue:NAME` lists (oldest at the tail), `schedule`, `retry` and `dead` sets, the
    all-time `stat:processed` / `stat:failed` counters and the `processes` set of heartbeating
    process hashes."""

    layout: Literal["sidekiq"]
    queues: list[str] | None = None  # None: the members of the `queues` set
    prefix: str = ""
    cap: Annotated[int, Field(ge=1, le=100000)] = 1000

    def templates(self) -> Sequence[str]:
        return (self.prefix,)

    def discovery(self, tenant: str) -> Reads:
        p = fill_tenant(self.prefix, tenant)
        return {name: SMembers(f"{p}{name}", cap=self.cap) for name in ("queues", "paused", "processes")}

    def job_range(self, tenant: str, queue: str, status: str) -> JobRange | None:
        key = f"{fill_tenant(self.prefix, tenant)}queue:{queue}"
        return JobRange("list", key, False) if status == "waiting" else None

    def plan(self, tenant: str, found: Results, now: float, known: Sequence[str] = ()) -> Plan:
        p = fill_tenant(self.prefix, tenant)
        queues = self.queues or sorted({*members(found["queues"]), *known})
        paused = set(members(found["paused"]))
        processes = members(found["processes"])
        reads: Reads = {"scheduled": Zcard(f"{p}schedule"), "retry": Zcard(f"{p}retry"), "dead": Zcard(f"{p}dead"),
                        "processed": Get(f"{p}stat:processed"), "failed": Get(f"{p}stat:failed")}
        for identity in processes:
            reads[identity, "process"] = HGetAll(f"{p}{identity}")
            reads[identity, "work"] = HGetAll(f"{p}{identity}:work")
        for queue in queues:
            key = f"{p}queue:{queue}"
            reads[queue, "depth"] = Llen(key)
            reads[queue, "head"] = Head(key, from_tail=True, fields="enqueued_at|created_at", scan=self.scan,
                                        kind=self.stamp_kind("auto", now))

        def parse(r: Results, now: float, out: Parsed) -> None:
            for state in ("scheduled", "retry", "dead"):
                out.samples.append(Sample("jobqueue_library_jobs", (tenant, state), count(r[state])))
            # Processor flushes PROCESSED/FAILURE into these with INCRBY (launcher.rb `flush_stats`)
            # (absent: nothing processed yet, Stats#processed reads it as 0; not a number: malformed, skipped)
            processed, failed = (0 if r[v] is None else stored_count(r[v], out) for v in ("processed", "failed"))
            if processed is not None and failed is not None:
                flow(out, tenant, "", processed, failed)
            workers = Workers(tenant)
            for identity in processes:
                try:
                    count_process(workers, flat_dict(r[identity, "process"]), flat_dict(r[identity, "work"]), now)
                except ValueError:
                    out.malformed += 1  # a live process whose `info` is not JSON: skipped
            for queue in queues:
                oldest = head_time(r[queue, "head"], "auto", out, self.latest(now))
                active = (("active", int(workers.busy.get(queue, 0))),)
                out.queues.append(QueueStats(queue, count(r[queue, "depth"]), tenant, oldest, active,
                                             paused=queue in paused))
            workers.emit(out, queues)

        return Plan(reads, parse)


def count_process(workers: Workers, fields: dict[str, str], work: dict[str, str], now: float) -> None:
    """One process hash as launcher.rb writes it: `info` JSON (to_data: concurrency, queues), `busy`
    (jobs in flight), `beat` (Float seconds), `quiet` ("true" once TSTP'd: it takes no new jobs);
    and its `<identity>:work` hash, thread id -> JSON {queue, payload, run_at} of each job running
    (launcher.rb `❤`, api.rb WorkSet): the busy slots of each queue, exactly."""
    info = json_dict(fields.get("info"))
    if not fields or to_float(fields.get("beat")) < now - PROCESS_EXPIRY:
        return  # expired (ProcessSet drops it) or dead by the 60 s rule
    if not info:
        raise ValueError("process hash without a readable info")
    busy = to_int(fields.get("busy"))
    state = "paused" if fields.get("quiet") == "true" else "busy" if busy > 0 else "idle"
    queues = [q for q in info.get("queues") or [] if isinstance(q, str)]  # repeats (weights) count once
    # a quiet process takes no new jobs: it offers no capacity (its running jobs still count as busy)
    # Sidekiq 8 heartbeats `concurrency` into the hash itself (shared/reference/redis-queues.md 4.5);
    # earlier versions only have it in `info` (to_data)
    concurrency = to_float(fields.get("concurrency")) or to_float(info.get("concurrency"))
    workers.add(queues, state, 0 if state == "paused" else concurrency, 0)
    for job in work.values():
        queue = json_dict(job).get("queue")
        if isinstance(queue, str):
            workers.busy[queue] = workers.busy.get(queue, 0) + 1
