"""RQ (Python)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import Field

from exporter.model import Job, QueueStats
from exporter.sources.redis.layouts.base import (
    JobRange,
    Parsed,
    Plan,
    RegistryLayout,
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
from exporter.sources.redis.script import Op

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

    def discovery(self, tenant: str) -> list[Op]:
        p = fill_tenant(self.prefix, tenant)
        return [("SMEMBERS", f"{p}queues", str(self.cap)), ("SMEMBERS", f"{p}workers", str(self.cap))]

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

    def plan(self, tenant: str, found: list[Any], now: float, known: Sequence[str] = ()) -> Plan:
        p = fill_tenant(self.prefix, tenant)
        queues = self.queues or sorted({*(m.removeprefix(f"{p}queue:") for m in members(found[0])), *known})
        # worker_registration.register: SADD rq:workers <worker key>; the key is rq:worker:<name>
        workers = [m.removeprefix(f"{p}worker:") for m in members(found[1])]
        ops: list[Op] = [("HGETALL", f"{p}worker:{name}") for name in workers]
        head = len(ops)
        for queue in queues:
            key = f"{p}queue:{queue}"
            ops += [("LLEN", key), ("HEADHASH", key, "0", f"{p}job:", "enqueued_at", str(self.scan), "iso")]
            ops += [("ZCARD", f"{p}{suffix}:{queue}") for _, suffix in _RQ_REGISTRIES]
        width = 2 + len(_RQ_REGISTRIES)

        def parse(r: list[Any], now: float, out: Parsed) -> None:
            for i, queue in enumerate(queues):
                part = r[head + i * width : head + (i + 1) * width]
                states = tuple((state, count(v)) for (state, _), v in zip(_RQ_REGISTRIES, part[2:], strict=True))
                oldest = head_time(part[1], "iso", out, self.latest(now))
                out.queues.append(QueueStats(queue, count(part[0]), tenant, oldest, states, failed=states[1][1]))
            tally = Workers(tenant)
            counts: dict[str, tuple[float, ...]] = {}
            for name, reply in zip(workers, r[:head], strict=True):
                fields = flat_dict(reply)
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

        return Plan(ops, parse)
