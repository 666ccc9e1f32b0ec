"""Laravel Horizon on top of Laravel's lists."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import Field

from exporter.facts import HorizonQueue, HorizonState
from exporter.model import Sample
from exporter.sources.redis.layouts.base import (
    Parsed,
    Plan,
    Reads,
    Results,
    Workers,
    count,
    fill_tenant,
    flow,
    hashes,
    json_dict,
    members,
    runtime,
    stored_count,
    to_float,
    to_int,
)
from exporter.sources.redis.layouts.laravel import LaravelLayout
from exporter.sources.redis.ops import HGet, SMembers, Zcard, ZCount, ZHashes, ZMembers


class HorizonLayout(LaravelLayout):
    """Laravel Horizon: the Laravel lists plus Horizon's runtime, failed jobs, masters and supervisors.

    With no `queues`, the queues are those the live supervisors serve on `connection`.
    """

    layout: Literal["horizon"]  # type: ignore[assignment]  # narrows the Laravel tag: its own config kind
    queues: list[str] | None = None  # type: ignore[assignment]  # None: discovered from Horizon's own keys
    timestamp_field: str = "pushedAt|createdAt"
    horizon_prefix: str = "laravel_horizon:"
    connection: str = "redis"
    recent_failed_minutes: Annotated[int, Field(ge=1)] = 10080
    cap: Annotated[int, Field(ge=1, le=10000)] = 1000

    def templates(self) -> Sequence[str]:
        return (self.prefix, self.horizon_prefix, self.pause_key or "")

    def discovery(self, tenant: str) -> Reads:
        hp = fill_tenant(self.horizon_prefix, tenant)
        return {
            "masters": ZHashes(f"{hp}masters", hash_prefix=f"{hp}master:", cap=self.cap),
            "supervisors": ZHashes(f"{hp}supervisors", hash_prefix=f"{hp}supervisor:", cap=self.cap),
            "measured": SMembers(f"{hp}measured_queues", cap=self.cap),
        }

    @property
    def registry(self) -> bool:
        return self.queues is None

    def plan_known(self, tenant: str, found: Results, now: float, known: Sequence[str]) -> Plan:
        return self.plan(tenant, found, now, known)

    def scan_match(self) -> str | None:
        return None if self.per_tenant else f"{self.prefix}queues:*"

    def scanned_queue(self, key: str) -> str | None:
        """`PREFIX queues:NAME` (Laravel's list) -> NAME; its `:delayed`, `:reserved` and `:notify`
        companions name no queue of their own."""
        name = key.removeprefix(f"{self.prefix}queues:")
        if name == key or name.endswith((":delayed", ":reserved", ":notify")):
            return None
        return name[1:-1] if self.cluster and name.startswith("{") and name.endswith("}") else name

    def plan(self, tenant: str, found: Results, now: float, known: Sequence[str] = ()) -> Plan:
        hp = fill_tenant(self.horizon_prefix, tenant)
        masters, supervisors = hashes(found["masters"]), hashes(found["supervisors"])
        workers = Workers(tenant, states=("unknown", "paused"))
        groups = self._groups(supervisors, now, workers)
        # RedisMetricsRepository `measuredQueues`: full key names, the queue after "queue:"
        measured = [m.split("queue:", 1)[1] for m in members(found["measured"]) if "queue:" in m]
        # Without `queues`, the live supervisors (and Horizon's measured queues) announce the queues;
        # the inventory keeps them read when Horizon is down, which is when their backlog matters most.
        queues = self.queues or sorted({*(q for g in groups for q in g.split(",") if q), *measured, *known})
        # a queue's wait needs every queue of the groups it is served in
        read = list(dict.fromkeys([*queues, *(q for g in groups for q in g.split(",")
                                              if q and set(g.split(",")) & set(queues))]))
        reads: Reads = {
            "recent_failed": ZCount(f"{hp}recent_failed_jobs", low="-inf",
                                    high=repr(-(now - self.recent_failed_minutes * 60))),
            "failed": Zcard(f"{hp}failed_jobs"),
        }
        for queue in read:
            reads.update(self.queue_reads(tenant, queue, now))
            reads[queue, "runtime"] = HGet(f"{hp}queue:{queue}", field="runtime")
            reads[queue, "throughput"] = HGet(f"{hp}queue:{queue}", field="throughput")
            reads[queue, "snapshots"] = ZMembers(f"{hp}snapshot:queue:{queue}", cap=24)

        def parse(r: Results, now: float, out: Parsed) -> None:
            recent_failed = count(r["recent_failed"])
            waits = {queue: self._queue(tenant, queue, r, groups, read, measured, now, out) for queue in queues}
            workers.emit(out, queues, busy=False)
            alive = [m for m in masters if m["score"] >= now - 14]
            for status in ("running", "paused"):
                n = sum(1 for m in alive if m.get("status") == status)
                out.samples.append(Sample("jobqueue_horizon_masters", (tenant, status), n))
            out.samples.append(Sample("jobqueue_library_jobs", (tenant, "failed_recent"), recent_failed))
            out.samples.append(Sample("jobqueue_library_jobs", (tenant, "failed"), count(r["failed"])))
            out.facts.append(HorizonState(tenant, {q: HorizonQueue(int(w["pending"]), w["wait_seconds"])
                                                   for q, w in waits.items()}, recent_failed))
            out.details.setdefault("horizon", {})[tenant] = {
                "queues": waits,
                "failed_jobs": recent_failed,
                "masters": [{"name": m["member"], "status": m.get("status"), "last_seen": m["score"]}
                            for m in masters],
                "supervisors": [{"name": s["member"], "status": s.get("status"), "last_seen": s["score"]}
                                for s in supervisors],
            }

        return Plan(reads, parse)

    def _groups(self, supervisors: list[dict[str, Any]], now: float, workers: Workers) -> dict[str, int]:
        """Processes per served queue group ("default" or, with balance off, "default,emails") of the live
        supervisors, each process added to `workers`."""
        prefix = f"{self.connection}:"
        groups: dict[str, int] = {}
        for sup in supervisors:
            if sup["score"] < now - 29:  # Horizon's own liveness window for supervisors
                continue
            paused = sup.get("status") == "paused"
            for name, n in json_dict(sup.get("processes")).items():
                if name.startswith(prefix):
                    group = name[len(prefix):]
                    groups[group] = groups.get(group, 0) + to_int(n)
                    # a worker process runs one job at a time; Horizon records no busy/idle per
                    # process, only the supervisor's status (SupervisorRepository `update`)
                    workers.add([q for q in group.split(",") if q], "paused" if paused else "unknown",
                                0 if paused else to_int(n), n=to_int(n))
        return groups

    def _queue(self, tenant: str, queue: str, r: Results, groups: dict[str, int], read: list[str],
               measured: list[str], now: float, out: Parsed) -> dict[str, int | float]:
        """One queue's record, wait and flow; returns its pending count and wait for the Horizon fact."""
        def busy_ms(q: str) -> float:  # ready jobs x average runtime
            return count(r[q, "depth"]) * to_float(r[q, "runtime"])

        # Horizon's time to clear of each group that serves the queue; the longest counts
        served = [g for g in groups if queue in g.split(",")]
        wait = max((horizon_wait(1, sum(busy_ms(q) for q in g.split(",") if q), groups[g]) for g in served),
                   default=horizon_wait(1, busy_ms(queue), 0))
        throughput, average = r[queue, "throughput"], r[queue, "runtime"]
        out.queues.append(self.queue_stats(tenant, queue, r, now, out, wait_seconds=wait,
                                           completed_last_hour=horizon_completed(now, throughput,
                                                                                 r[queue, "snapshots"])))
        # LuaScripts::updateMetrics: HINCRBY-like `throughput` + running-average `runtime` (ms)
        # per job that did not fail (Listeners/UpdateJobMetrics returns early on failed jobs);
        # `horizon:snapshot` reads and DELetes the hash (RedisMetricsRepository
        # `baseSnapshotData`), so the counter resets to 0 at each snapshot; the queue stays in
        # measured_queues and Horizon reads its throughput as 0 (`throughputFor`), as here
        done = 0 if throughput is None and queue in measured else stored_count(throughput, out)
        if done is not None:
            flow(out, tenant, queue, done)
            if average is not None:  # no job since the snapshot: no runtime, not a runtime of 0
                runtime(out, tenant, queue, to_float(average) / 1000)
        return {"pending": count(r[queue, "depth"]), "wait_seconds": wait}


def horizon_wait(ready: int, runtime_ms: float, processes: int) -> int:
    """Horizon's WaitTimeCalculator: ready x average runtime, shared by the processes, in seconds."""
    total_ms = ready * runtime_ms
    if processes > 0:
        total_ms /= processes
    return math.floor(total_ms / 1000 + 0.5)  # PHP round(): half away from zero


def horizon_completed(now: float, throughput: Any, snapshots: Any) -> int | None:
    """Jobs Horizon processed on the queue in the last 3600 s, from its metrics: the `throughput` of the
    `snapshot:queue:NAME` entries taken in the hour plus the live counter since the last snapshot
    (`horizon:snapshot` resets it). Without a snapshot in the hour the live counter's window is unknown
    (None). A snapshot covers the interval before it, so the first in the hour may reach a few minutes
    further back (by one snapshot interval at most).
    """
    flat = snapshots if isinstance(snapshots, list) else []
    recent = [json_dict(m) for m, score in zip(flat[::2], flat[1::2], strict=False) if to_float(score) >= now - 3600]
    if not recent:
        return None
    return to_int(throughput) + sum(to_int(s.get("throughput")) for s in recent)
