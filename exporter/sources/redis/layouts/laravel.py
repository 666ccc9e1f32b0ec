"""Laravel's Redis queue driver."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from exporter.model import QueueStats
from exporter.sources.redis.layouts.base import JobRange, Layout, Parsed, Plan, count, fill_tenant, head_time
from exporter.sources.redis.script import Op


class LaravelLayout(Layout):
    """Laravel's Redis queue: `queues:NAME` list (oldest at head), `:delayed` and `:reserved` sets."""

    layout: Literal["laravel"]
    queues: list[str] = ["default"]
    prefix: str = "laravel-database-"
    cluster: bool = False
    timestamp_field: str = "createdAt|pushedAt"
    pause_key: str | None = None

    def templates(self) -> Sequence[str]:
        return (self.prefix, self.pause_key or "")

    def queue_key(self, tenant: str, queue: str) -> str:
        name = f"{{{queue}}}" if self.cluster else queue
        return f"{fill_tenant(self.prefix, tenant)}queues:{name}"

    def job_range(self, tenant: str, queue: str, status: str) -> JobRange | None:
        """Horizon too: its failed and completed sets mix every queue, so only waiting and active."""
        key = self.queue_key(tenant, queue)
        return {"waiting": JobRange("list", key), "active": JobRange("zset", f"{key}:reserved")}.get(status)

    def queue_ops(self, tenant: str, queue: str, now: float) -> list[Op]:
        key = self.queue_key(tenant, queue)
        ops: list[Op] = [
            ("LLEN", key),
            ("HEAD", key, "0", self.timestamp_field, str(self.scan), self.stamp_kind("s", now)),
            ("ZCARD", f"{key}:delayed"),
            ("ZCARD", f"{key}:reserved"),
        ]
        if self.pause_key:
            ops.append(("EXISTS", fill_tenant(self.pause_key, tenant).replace("{queue}", queue)))
        return ops

    def queue_stats(self, tenant: str, queue: str, r: list[Any], now: float, out: Parsed, **extra: Any) -> QueueStats:
        oldest = head_time(r[1], "s", out, self.latest(now))
        states = (("delayed", count(r[2])), ("reserved", count(r[3])))
        paused = bool(count(r[4])) if self.pause_key else None
        return QueueStats(queue, count(r[0]), tenant, oldest, states, paused=paused, **extra)

    def plan(self, tenant: str, found: list[Any], now: float) -> Plan:
        ops: list[Op] = []
        width = 5 if self.pause_key else 4
        for queue in self.queues:
            ops.extend(self.queue_ops(tenant, queue, now))

        def parse(r: list[Any], now: float, out: Parsed) -> None:
            for i, queue in enumerate(self.queues):
                out.queues.append(self.queue_stats(tenant, queue, r[i * width : (i + 1) * width], now, out))

        return Plan(ops, parse)
