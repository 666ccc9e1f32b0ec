"""A Redis stream read with its consumer groups."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from exporter.model import QueueStats, Sample
from exporter.sources.redis.items import WRONGTYPE
from exporter.sources.redis.layouts.base import (
    Layout,
    Parsed,
    Plan,
    Reads,
    Results,
    count,
    entry_time,
    fill_tenant,
)
from exporter.sources.redis.ops import XFirst, Xlen, XUndelivered, group_info


class StreamLayout(Layout):
    """A stream used as a queue.

    With consumer groups, what waits is what no group has been handed yet: depth is the largest lag
    over the groups (XLEN where Redis cannot tell a group's lag) and the age is that of the oldest entry
    not yet delivered to some group; delivered-but-unacknowledged entries are the `pending` state. A
    drained stream (every entry delivered) has depth 0 and no oldest timestamp, however long XLEN is.
    Without a group (or with `groups: false`) the stream is read as a log: XLEN and the first entry.
    """

    layout: Literal["stream"]
    name: str
    key: str
    groups: bool = True

    def templates(self) -> Sequence[str]:
        return (self.key,)

    def plan(self, tenant: str, found: Results, now: float) -> Plan:
        key = fill_tenant(self.key, tenant)
        reads: Reads = {"length": Xlen(key), "first": XFirst(key)}
        if self.groups:
            reads["undelivered"] = XUndelivered(key)

        def parse(r: Results, now: float, out: Parsed) -> None:
            length, first = count(r["length"]), r["first"]
            if first == WRONGTYPE:
                out.malformed += 1
                first = None
            undelivered = r["undelivered"] if self.groups and r["undelivered"] != WRONGTYPE else [[], None]
            groups = [group_info(g) for g in undelivered[0]]
            if not groups:
                oldest = entry_time(first, out, self.latest(now)) if first else None
                out.queues.append(QueueStats(self.name, length, tenant, oldest))
                return
            pending_total, depth = 0, 0
            for info in groups:
                name = str(info.get("name", ""))
                pending = int(info.get("pending") or 0)
                pending_total += pending
                out.samples.append(Sample("jobqueue_stream_group_pending", (tenant, self.name, name), pending))
                lag = info.get("lag")
                if lag is None:  # NULL when Redis cannot tell (entries deleted): unknown, not 0
                    depth = max(depth, length)
                else:
                    depth = max(depth, int(lag))
                    out.samples.append(Sample("jobqueue_stream_group_lag", (tenant, self.name, name), int(lag)))
            next_id = undelivered[1]
            oldest = entry_time(next_id, out, self.latest(now)) if next_id and depth else None
            out.queues.append(QueueStats(self.name, depth, tenant, oldest, (("pending", pending_total),)))

        return Plan(reads, parse)
