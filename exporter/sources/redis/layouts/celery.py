"""Celery on kombu's Redis transport."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import field_validator

from exporter.model import QueueStats, Sample
from exporter.sources.redis.layouts.base import JobRange, Layout, Parsed, Plan, count, fill_tenant
from exporter.sources.redis.script import Op


class CeleryLayout(Layout):
    """Celery on kombu: one list per queue and priority step; `unacked` holds prefetched messages.

    Protocol v2 stores no enqueue time, so Celery queues have depth but no oldest age.
    """

    layout: Literal["celery"]
    queues: list[str] = ["celery"]
    global_keyprefix: str = ""
    priority_steps: list[int] = [0, 3, 6, 9]
    separator: str = "\x06\x16"

    @field_validator("separator")
    @classmethod
    def _unescape(cls, value: str) -> str:
        return value.encode().decode("unicode_escape")

    def templates(self) -> Sequence[str]:
        return (self.global_keyprefix,)

    def job_range(self, tenant: str, queue: str, status: str) -> JobRange | None:
        key = f"{fill_tenant(self.global_keyprefix, tenant)}{queue}"
        return JobRange("list", key, False) if status == "waiting" else None

    def plan(self, tenant: str, found: list[Any], now: float) -> Plan:
        p = fill_tenant(self.global_keyprefix, tenant)
        ops: list[Op] = [("HLEN", f"{p}unacked")]
        for queue in self.queues:
            for step in self.priority_steps:
                ops.append(("LLEN", f"{p}{queue}" if step == 0 else f"{p}{queue}{self.separator}{step}"))
        width = len(self.priority_steps)

        def parse(r: list[Any], now: float, out: Parsed) -> None:
            out.samples.append(Sample("jobqueue_library_jobs", (tenant, "unacked"), count(r[0])))
            for i, queue in enumerate(self.queues):
                depth = sum(count(v) for v in r[1 + i * width : 1 + (i + 1) * width])
                out.queues.append(QueueStats(queue, depth, tenant))

        return Plan(ops, parse)
