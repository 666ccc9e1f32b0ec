"""A sorted set scored by enqueue time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from exporter.model import QueueStats
from exporter.sources.redis.items import WRONGTYPE, pick
from exporter.sources.redis.layouts.base import JobRange, Layout, Parsed, Plan, Results, count, fill_tenant, head_time
from exporter.sources.redis.ops import Zcard, ZFirst
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

    def plan(self, tenant: str, found: Results, now: float) -> Plan:
        key = fill_tenant(self.key, tenant)

        def parse(r: Results, now: float, out: Parsed) -> None:
            oldest = None
            first = r["first"]
            if first == WRONGTYPE:
                out.malformed += 1
            elif first and self.timestamp != "none":
                raw = first[1] if self.timestamp == "score" else pick(first[0], self.timestamp_field)
                oldest = head_time([raw, 0 if raw is not None else 1], self.timestamp_unit, out, self.latest(now))
            out.queues.append(QueueStats(self.name, count(r["depth"]), tenant, oldest))

        return Plan({"depth": Zcard(key), "first": ZFirst(key)}, parse)
