"""A plain list of JSON items."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from exporter.model import QueueStats
from exporter.sources.redis.items import EPOCH_2000
from exporter.sources.redis.layouts.base import (
    AFTER_OLDEST,
    DIV,
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
from exporter.sources.redis.ops import Each, Head, Llen
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

    def head(self, key: str, now: float) -> Head:
        return Head(key, from_tail=self.oldest == "tail", fields=self.timestamp_field or "", scan=self.scan,
                    kind=self.stamp_kind(self.timestamp_unit, now))

    def plan_all(self, tenants: list[str], found: list[Results], now: float) -> list[Plan]:
        if not self.per_tenant:
            return super().plan_all(tenants, found, now)
        prefix, _, suffix = self.key.partition("{tenant}")
        ids = tuple(tenants)
        reads: Reads = {"depth": Each(Llen(""), prefix, suffix, ids)}
        if self.timestamp_field:
            reads["head"] = Each(self.head("", now), prefix, suffix, ids)

        def parse(r: Results, now: float, out: Parsed) -> None:
            name, unit = self.name, self.timestamp_unit
            div, numeric = DIV.get(unit), unit != "iso"
            latest = self.latest(now)
            depths = r["depth"]
            heads = r["head"] if self.timestamp_field else [None] * len(tenants)
            # Last collection's records by position: a queue whose depth is the same and whose head
            # row is the very object the op runner reused (same head item) keeps its record, which
            # the renderer then recognises by identity.
            last = out.memory.get(("list", id(self)))
            if last is None or last[0] != tenants:
                last = (tenants, (), (), ())
            _, last_depths, last_heads, last_stats = last
            new = tuple.__new__  # QueueStats' own __new__ is Python code; this loop runs once per tenant
            stats: list[QueueStats] = []
            clean: list[Any] = []  # the head rows that counted nothing malformed: only those may be reused
            keep, note = stats.append, clean.append
            for i, (tenant, depth, head) in enumerate(zip(tenants, depths, heads, strict=True)):
                if last_stats and head is not None and head is last_heads[i] and depth == last_depths[i]:
                    keep(last_stats[i])
                    note(head)
                    continue
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
                            head = None  # counted malformed: never reused, so it is counted each time
                    else:
                        malformed = out.malformed
                        oldest = head_time(head, unit, out, latest)
                        if out.malformed != malformed:
                            head = None
                keep(new(QueueStats, (name, depth if type(depth) is int else count(depth), tenant, oldest,
                                      *AFTER_OLDEST)))
                note(head)
            out.memory[("list", id(self))] = (tenants, depths, clean, stats)
            out.queues.extend(stats)

        return [Plan(reads, parse)]

    def plan(self, tenant: str, found: Results, now: float) -> Plan:
        key = fill_tenant(self.key, tenant)
        reads: Reads = {"depth": Llen(key)}
        if self.timestamp_field:
            reads["head"] = self.head(key, now)

        def parse(r: Results, now: float, out: Parsed) -> None:
            oldest = head_time(r["head"], self.timestamp_unit, out, self.latest(now)) if self.timestamp_field else None
            out.queues.append(QueueStats(self.name, count(r["depth"]), tenant, oldest))

        return Plan(reads, parse)
