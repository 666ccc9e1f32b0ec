"""A sorted set scored by enqueue time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from exporter.model import QueueStats
from exporter.sources.redis.layouts.base import JobRange, Layout, Parsed, Plan, count, fill_tenant, head_time
from exporter.sources.redis.ops import pick
from exporter.sources.redis.script import WRONGTYPE, Op
from exporter.values import Unit


class SortedSetLayout(Layout):
    """A sorted set whose lowest score is the oldest item; the time is the score or a JSON field."""

    layout: Literal["zset"]
    name: str
    key: str
    timestamp: Literal["score", "member", "none"] = "score"
    timestamp_field: str = ""
    timestamp_unit: Unit = "auto"  # see ListLayout

    def templates(self) -> Sequence[str]:
        return (self.key,)

    def job_range(self, tenant: str, queue: str, status: str) -> JobRange | None:
        return JobRange("zset", fill_tenant(self.key, tenant)) if status == "waiting" else None

    def plan(self, tenant: str, found: list[Any], now: float) -> Plan:
        key = fill_tenant(self.key, tenant)
        ops: list[Op] = [("ZCARD", key), ("ZFIRST", key)]

        def parse(r: list[Any], now: float, out: Parsed) -> None:
            oldest = None
            first = r[1]
            if first == WRONGTYPE:
                out.malformed += 1
            elif first and self.timestamp != "none":
                raw = first[1] if self.timestamp == "score" else pick(first[0], self.timestamp_field)
                oldest = head_time([raw, 0 if raw is not None else 1], self.timestamp_unit, out, self.latest(now))
            out.queues.append(QueueStats(self.name, count(r[0]), tenant, oldest))

        return Plan(ops, parse)
