"""RQ (Python)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import Field

from exporter.model import Job, QueueStats
from exporter.sources.redis.layouts.base import (
    JobRange,
    Layout,
    Parsed,
    Plan,
    count,
    fill_tenant,
    head_time,
    job_of,
    members,
)
from exporter.sources.redis.script import Op

_JOB_FIELDS = ("description", "created_at", "enqueued_at", "started_at", "ended_at", "exc_info", "retries")
_RQ_REGISTRIES = (("started", "wip"), ("failed", "failed"), ("finished", "finished"),
                  ("scheduled", "scheduled"), ("deferred", "deferred"), ("canceled", "canceled"),
                  ("ready", "ready"))


class RQLayout(Layout):
    """RQ: `rq:queue:NAME` list of ids (oldest at the head; ISO `enqueued_at` in the job hash), registries."""

    layout: Literal["rq"]
    queues: list[str] | None = None  # None: the members of `rq:queues`
    prefix: str = "rq:"
    cap: Annotated[int, Field(ge=1, le=100000)] = 1000

    def templates(self) -> Sequence[str]:
        return (self.prefix,)

    def discovery(self, tenant: str) -> list[Op]:
        return [("SMEMBERS", f"{fill_tenant(self.prefix, tenant)}queues", str(self.cap))]

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

    def plan(self, tenant: str, found: list[Any], now: float) -> Plan:
        p = fill_tenant(self.prefix, tenant)
        queues = self.queues or sorted(m.removeprefix(f"{p}queue:") for m in members(found[0]))
        ops: list[Op] = []
        for queue in queues:
            key = f"{p}queue:{queue}"
            ops += [("LLEN", key), ("HEADHASH", key, "0", f"{p}job:", "enqueued_at", str(self.scan), "iso")]
            ops += [("ZCARD", f"{p}{suffix}:{queue}") for _, suffix in _RQ_REGISTRIES]
        width = 2 + len(_RQ_REGISTRIES)

        def parse(r: list[Any], now: float, out: Parsed) -> None:
            for i, queue in enumerate(queues):
                part = r[i * width : (i + 1) * width]
                states = tuple((state, count(v)) for (state, _), v in zip(_RQ_REGISTRIES, part[2:], strict=True))
                oldest = head_time(part[1], "iso", out)
                out.queues.append(QueueStats(queue, count(part[0]), tenant, oldest, states, failed=states[1][1]))

        return Plan(ops, parse)
