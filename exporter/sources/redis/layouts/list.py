"""A plain list of JSON items."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from exporter.model import QueueStats
from exporter.sources.redis.layouts.base import (
    AFTER_OLDEST,
    DIV,
    EPOCH_2000,
    JobRange,
    Layout,
    Parsed,
    Plan,
    count,
    fill_tenant,
    head_time,
)
from exporter.sources.redis.script import SEP, Op
from exporter.values import Unit


class ListLayout(Layout):
    """A plain list of JSON items; the oldest sits at the head (LPOP consumers) or the tail."""

    layout: Literal["list"]
    name: str
    key: str
    oldest: Literal["head", "tail"] = "head"
    timestamp_field: str | None = None
    # auto: seconds, milliseconds, microseconds or nanoseconds told apart by magnitude (unambiguous for
    # any time after 2000), so a wrong unit can never read as age 0; name the unit to have values of
    # another magnitude counted as malformed instead.
    timestamp_unit: Unit = "auto"

    def templates(self) -> Sequence[str]:
        return (self.key,)

    def job_range(self, tenant: str, queue: str, status: str) -> JobRange | None:
        return JobRange("list", fill_tenant(self.key, tenant), self.oldest == "head") if status == "waiting" else None

    def plan_all(self, tenants: list[str], found: list[list[Any]], now: float) -> list[Plan]:
        if not self.per_tenant:
            return super().plan_all(tenants, found, now)
        prefix, _, suffix = self.key.partition("{tenant}")
        ids = SEP.join(tenants)
        ops: list[Op] = [("EACH", "LLEN", prefix, suffix, ids)]
        if self.timestamp_field:
            index = "0" if self.oldest == "head" else "-1"
            ops.append(("EACH", "HEAD", prefix, suffix, ids, index, self.timestamp_field, str(self.scan),
                        self.stamp_kind(self.timestamp_unit, now)))

        def parse(r: list[Any], now: float, out: Parsed) -> None:
            name, unit, append = self.name, self.timestamp_unit, out.queues.append
            div, numeric = DIV.get(unit), unit != "iso"
            latest = self.latest(now)
            heads = r[1] if self.timestamp_field else [None] * len(tenants)
            new = tuple.__new__  # QueueStats' own __new__ is Python code; this loop runs once per tenant
            for tenant, depth, head in zip(tenants, r[0], heads, strict=True):
                oldest = None
                if head is not None:
                    if numeric and type(head) is list and head[1] == 0 and head[0] is not None:
                        # the common case, inlined: a value the op already checked is a plausible time
                        oldest = float(head[0])
                        if div is not None:
                            oldest /= div
                        elif oldest > 1e11:  # auto, as in values.epoch
                            oldest /= 1e9 if oldest > 1e17 else 1e6 if oldest > 1e14 else 1e3
                        if not EPOCH_2000 <= oldest <= latest:
                            oldest = head_time(head, unit, out, latest)
                    else:
                        oldest = head_time(head, unit, out, latest)
                depth = depth if type(depth) is int else count(depth)
                append(new(QueueStats, (name, depth, tenant, oldest, *AFTER_OLDEST)))

        return [Plan(ops, parse)]

    def plan(self, tenant: str, found: list[Any], now: float) -> Plan:
        key = fill_tenant(self.key, tenant)
        ops: list[Op] = [("LLEN", key)]
        if self.timestamp_field:
            index = "0" if self.oldest == "head" else "-1"
            ops.append(("HEAD", key, index, self.timestamp_field, str(self.scan),
                        self.stamp_kind(self.timestamp_unit, now)))

        def parse(r: list[Any], now: float, out: Parsed) -> None:
            oldest = head_time(r[1], self.timestamp_unit, out, self.latest(now)) if self.timestamp_field else None
            out.queues.append(QueueStats(self.name, count(r[0]), tenant, oldest))

        return Plan(ops, parse)
