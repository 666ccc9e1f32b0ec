"""Laravel's Redis queue driver."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from exporter.model import QueueStats
from exporter.sources.redis.layouts.base import (
    JobRange,
    Layout,
    Parsed,
    Plan,
    Reads,
    Results,
    count,
    fill_tenant,
    head_time,
)
from exporter.sources.redis.ops import Exists, Head, Llen, Zcard


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

    def queue_reads(self, tenant: str, queue: str, now: float) -> Reads:
        """The reads of one queue, named (queue, what)."""
        key = self.queue_key(tenant, queue)
        reads: Reads = {
            (queue, "depth"): Llen(key),
            (queue, "head"): Head(key, fields=self.timestamp_field, scan=self.scan, kind=self.stamp_kind("s", now)),
            (queue, "delayed"): Zcard(f"{key}:delayed"),
            (queue, "reserved"): Zcard(f"{key}:reserved"),
        }
        if self.pause_key:
            reads[queue, "paused"] = Exists(fill_tenant(self.pause_key, tenant).replace("{queue}", queue))
        return reads

    def queue_stats(self, tenant: str, queue: str, r: Results, now: float, out: Parsed, **extra: Any) -> QueueStats:
        oldest = head_time(r[queue, "head"], "s", out, self.latest(now))
        states = (("delayed", count(r[queue, "delayed"])), ("reserved", count(r[queue, "reserved"])))
        paused = bool(count(r[queue, "paused"])) if self.pause_key else None
        return QueueStats(queue, count(r[queue, "depth"]), tenant, oldest, states, paused=paused, **extra)

    def plan(self, tenant: str, found: Results, now: float) -> Plan:
        reads: Reads = {}
        for queue in self.queues:
            reads.update(self.queue_reads(tenant, queue, now))

        def parse(r: Results, now: float, out: Parsed) -> None:
            for queue in self.queues:
                out.queues.append(self.queue_stats(tenant, queue, r, now, out))

        return Plan(reads, parse)
