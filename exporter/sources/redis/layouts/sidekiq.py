"""Sidekiq."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import Field

from exporter.model import QueueStats, Sample
from exporter.sources.redis.layouts.base import JobRange, Layout, Parsed, Plan, count, fill_tenant, head_time, members
from exporter.sources.redis.script import Op


class SidekiqLayout(Layout):
    """Sidekiq: `queue:NAME` lists (oldest at the tail), `schedule`, `retry` and `dead` sets."""

    layout: Literal["sidekiq"]
    queues: list[str] | None = None  # None: the members of the `queues` set
    prefix: str = ""
    cap: Annotated[int, Field(ge=1, le=100000)] = 1000

    def templates(self) -> Sequence[str]:
        return (self.prefix,)

    def discovery(self, tenant: str) -> list[Op]:
        p = fill_tenant(self.prefix, tenant)
        return [("SMEMBERS", f"{p}queues", str(self.cap)), ("SMEMBERS", f"{p}paused", str(self.cap))]

    def job_range(self, tenant: str, queue: str, status: str) -> JobRange | None:
        key = f"{fill_tenant(self.prefix, tenant)}queue:{queue}"
        return JobRange("list", key, False) if status == "waiting" else None

    def plan(self, tenant: str, found: list[Any], now: float) -> Plan:
        p = fill_tenant(self.prefix, tenant)
        queues = self.queues or sorted(members(found[0]))
        paused = set(members(found[1]))
        ops: list[Op] = [("ZCARD", f"{p}schedule"), ("ZCARD", f"{p}retry"), ("ZCARD", f"{p}dead")]
        for queue in queues:
            key = f"{p}queue:{queue}"
            ops += [("LLEN", key), ("HEAD", key, "-1", "enqueued_at|created_at", str(self.scan), "num")]

        def parse(r: list[Any], now: float, out: Parsed) -> None:
            for state, value in zip(("scheduled", "retry", "dead"), r[:3], strict=True):
                out.samples.append(Sample("jobqueue_library_jobs", (tenant, state), count(value)))
            for i, queue in enumerate(queues):
                depth, head = r[3 + 2 * i], r[4 + 2 * i]
                oldest = head_time(head, "auto", out)
                out.queues.append(QueueStats(queue, count(depth), tenant, oldest, paused=queue in paused))

        return Plan(ops, parse)
