"""A plain list of JSON items."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

from exporter.model import QueueStats
from exporter.sources.redis.layouts.base import (
    AFTER_OLDEST,
    JobRange,
    Layout,
    Parsed,
    Plan,
    count,
    fill_tenant,
    head_time,
    kind,
)
from exporter.sources.redis.script import SEP, Op
from exporter.values import SCALE, Unit


class ListLayout(Layout):
    """A plain list of JSON items; the oldest sits at the head (LPOP consumers) or the tail."""

    layout: Literal["list"]
    name: str
    key: str
    oldest: Literal["head", "tail"] = "head"
    timestamp_field: str | None = None
    timestamp_unit: Unit = "s"

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
                        kind(self.timestamp_unit)))

        def parse(r: list[Any], now: float, out: Parsed) -> None:
            name, unit, append = self.name, self.timestamp_unit, out.queues.append
            scale = SCALE.get(unit)
            heads = r[1] if self.timestamp_field else [None] * len(tenants)
            new = tuple.__new__  # QueueStats' own __new__ is Python code; this loop runs once per tenant
            for tenant, depth, head in zip(tenants, r[0], heads, strict=True):
                oldest = None
                if head is not None:
                    if scale is not None and type(head) is list and head[1] == 0 and head[0] is not None:
                        # the common case, inlined: a value the op already checked is a decimal number
                        oldest = float(head[0]) * scale
                        if not math.isfinite(oldest):
                            oldest = head_time(head, unit, out)
                    else:
                        oldest = head_time(head, unit, out)
                depth = depth if type(depth) is int else count(depth)
                append(new(QueueStats, (name, depth, tenant, oldest, *AFTER_OLDEST)))

        return [Plan(ops, parse)]

    def plan(self, tenant: str, found: list[Any], now: float) -> Plan:
        key = fill_tenant(self.key, tenant)
        ops: list[Op] = [("LLEN", key)]
        if self.timestamp_field:
            index = "0" if self.oldest == "head" else "-1"
            ops.append(("HEAD", key, index, self.timestamp_field, str(self.scan), kind(self.timestamp_unit)))

        def parse(r: list[Any], now: float, out: Parsed) -> None:
            oldest = head_time(r[1], self.timestamp_unit, out) if self.timestamp_field else None
            out.queues.append(QueueStats(self.name, count(r[0]), tenant, oldest))

        return Plan(ops, parse)
