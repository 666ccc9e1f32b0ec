"""A Redis stream read with its consumer groups."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from exporter.model import QueueStats, Sample
from exporter.sources.redis.layouts.base import Layout, Parsed, Plan, count, fill_tenant
from exporter.sources.redis.script import WRONGTYPE, Op


class StreamLayout(Layout):
    """A stream: length, oldest entry from its id, and pending and lag per consumer group."""

    layout: Literal["stream"]
    name: str
    key: str
    groups: bool = True

    def templates(self) -> Sequence[str]:
        return (self.key,)

    def plan(self, tenant: str, found: list[Any], now: float) -> Plan:
        key = fill_tenant(self.key, tenant)
        ops: list[Op] = [("XLEN", key), ("XFIRST", key)]
        if self.groups:
            ops.append(("XGROUPS", key))

        def parse(r: list[Any], now: float, out: Parsed) -> None:
            first = r[1]
            oldest = None
            if first == WRONGTYPE:
                out.malformed += 1
            elif first:
                oldest = int(str(first).split("-", 1)[0]) / 1000.0
            pending_total = 0
            groups = r[2] if self.groups and r[2] != WRONGTYPE else []
            for group in groups:
                info = group if isinstance(group, dict) else dict(zip(group[::2], group[1::2], strict=False))
                name = str(info.get("name", ""))
                pending = int(info.get("pending") or 0)
                pending_total += pending
                out.samples.append(Sample("jobqueue_stream_group_pending", (tenant, self.name, name), pending))
                lag = info.get("lag")
                if lag is not None:  # NULL when Redis cannot tell (entries deleted): unknown, not 0
                    out.samples.append(Sample("jobqueue_stream_group_lag", (tenant, self.name, name), int(lag)))
            states = (("pending", pending_total),) if self.groups else ()
            out.queues.append(QueueStats(self.name, count(r[0]), tenant, oldest, states))

        return Plan(ops, parse)
