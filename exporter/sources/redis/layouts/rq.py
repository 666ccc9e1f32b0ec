"""RQ (Python)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import Field

from exporter.model import Job, QueueStats
from exporter.sources.redis.layouts.base import (
    JobRange,
    Parsed,
    Plan,
    Reads,
    RegistryLayout,
    Results,
    Retained,
    Workers,
    count,
    fill_tenant,
    flat_dict,
    flow,
    head_time,
    job_of,
    members,
    runtime,
    to_float,
    to_int,
)
from exporter.sources.redis.ops import HeadHash, HGetAll, Llen, SMembers, Zcard

_JOB_FIELDS = ("description", "created_at", "enqueued_at", "started_at", "ended_at", "exc_info", "retries")
_RQ_REGISTRIES = (("started", "wip"), ("failed", "failed"), ("finished", "finished"),
                  ("scheduled", "scheduled"), ("deferred", "deferred"), ("canceled", "canceled"),
                  ("ready", "ready"))
# rq/worker/base.py WorkerStatus: started, suspended, busy, idle
_RQ_STATES = {"busy": "busy", "suspended": "paused"}


class RQLayout(RegistryLayout):
    """RQ: `rq:queue:NAME` list of ids (oldest at the head; ISO `enqueued_at` in the job hash),
    registries, and the `rq:workers` set of worker hashes."""

    layout: Literal["rq"]
    queues: list[str] | None = None  # None: the members of `rq:queues`
    prefix: str = "rq:"
    cap: Annotated[int, Field(ge=1, le=100000)] = 1000

    def templates(self) -> Sequence[str]:
        return (self.prefix,)

    def discovery(self, tenant: str) -> Reads:
        p = fill_tenant(self.prefix, tenant)
        return {name: SMembers(f"{p}{name}", cap=self.cap) for name in ("queues", "workers")}

    def job_range(self, tenant: str, queue: str, status: str) -> JobRange | None:
        """The queue list and the started/failed/finished registries; jobs are `<prefix>job:<id>` hashes
        (text fields only: `data` is a pickle)."""
        p = fill_tenant(self.prefix, tenant)
        where = {"waiting": ("list", f"queue:{queue}", True), "active": ("zset", f"wip:{queue}", True),
                 "failed": ("zset", f"failed:{queue}", False), "completed": ("zset", f"finished:{queue}", False)}
        if status not in where:
            return None
        kind, key, oldest_first = where[status]
        return JobRange("list" if kind == "list" else "zset", p + key, oldest_first, f"{p}job:", _JOB_FIELDS)

    def job(self, item: str, fields: dict[str, str], queue: str, status: str) -> Job:
        get = fields.get
        return job_of(item, queue, status, get("description"), get("exc_info"), None, get("retries"),
                      get("created_at") or get("enqueued_at"), get("ended_at") or get("started_at"))

    def plan(self, tenant: str, found: Results, now: float, known: Sequence[str] = ()) -> Plan:
        p = fill_tenant(self.prefix, tenant)
        queues = self.queues or sorted({*(m.removeprefix(f"{p}queue:") for m in members(found["queues"])), *known})
        # worker_registration.register: SADD rq:workers <worker key>; the key is rq:worker:<name>
        workers = [m.removeprefix(f"{p}worker:") for m in members(found["workers"])]
        reads: Reads = {("worker", name): HGetAll(f"{p}worker:{name}") for name in workers}
        for queue in queues:
            key = f"{p}queue:{queue}"
            reads[queue, "depth"] = Llen(key)
            reads[queue, "head"] = HeadHash(key, hash_prefix=f"{p}job:", fields="enqueued_at", scan=self.scan,
                                            kind="iso")
            for state, suffix in _RQ_REGISTRIES:
                reads[queue, state] = Zcard(f"{p}{suffix}:{queue}")

        def parse(r: Results, now: float, out: Parsed) -> None:
            for queue in queues:
                states = tuple((state, count(r[queue, state])) for state, _ in _RQ_REGISTRIES)
                oldest = head_time(r[queue, "head"], "iso", out, self.latest(now))
                out.queues.append(QueueStats(queue, count(r[queue, "depth"]), tenant, oldest, states,
                                             failed=count(r[queue, "failed"])))
            tally = Workers(tenant)
            counts: dict[str, tuple[float, ...]] = {}
            for name in workers:
                fields = flat_dict(r["worker", name])
                # Liveness is RQ's own: the hash expires worker_ttl + 60 s after the last heartbeat
                # (base.py `heartbeat`), and Worker.all() drops members whose key is gone; a worker
                # that exited cleanly has `death` set (`register_death`).
                if not fields or "death" in fields:
                    continue
                state = _RQ_STATES.get(fields.get("state", ""), "idle")
                served = [q for q in fields.get("queues", "").split(",") if q]
                # one job at a time (the work horse); a suspended worker takes none, so offers no slot
                tally.add(served, state, 0 if state == "paused" else 1, 1 if state == "busy" else 0)
                # increment_successful_job_count / increment_failed_job_count (HINCRBY) and
                # increment_total_working_time (HINCRBYFLOAT, seconds) in rq/worker/base.py
                counts[name] = (to_int(fields.get("successful_job_count")), to_int(fields.get("failed_job_count")),
                                to_float(fields.get("total_working_time")))
            # RQ counts per worker, not per queue: one global counter that survives worker exits
            retained = out.memory.setdefault(("rq", p), Retained())
            ok, failed, working = retained.total(counts, 3)
            flow(out, tenant, "", ok + failed, failed)
            runtime(out, tenant, "", working / (ok + failed) if ok + failed else None)
            tally.emit(out, queues)

        return Plan(reads, parse)
