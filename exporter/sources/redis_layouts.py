"""How queues lie in Redis, as ops to read and a parser of the replies: the shared machinery and the
generic layouts (list, sorted set, stream) plus Laravel's, which Horizon builds on.

The other libraries' layouts are in `redis_libraries.py`. Every layout answers two questions per
tenant: which ops to run first to discover what exists (`discovery`), and, given those replies, which
ops read the queues and how to turn the replies into records (`plan`). Keys and timestamp units
follow `shared/reference/redis-queues.md`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from exporter.model import QueueStats, Sample
from exporter.sources.base import Model
from exporter.sources.redis_ops import pick
from exporter.sources.redis_script import SEP, WRONGTYPE, Op

Unit = Literal["s", "ms", "us", "ns", "iso", "auto"]
_SCALE = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def kind(unit: Unit) -> str:
    """What a stored timestamp of `unit` must look like for the ops to accept it (see redis_ops.valid)."""
    return "iso" if unit == "iso" else "num"


def to_seconds(raw: str | None, unit: Unit) -> float | None:
    """An enqueue time in Unix seconds; ValueError when the stored value is not a time."""
    if raw is None:
        return None
    if unit == "iso":
        stamp = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        if stamp.tzinfo is None:  # RQ and most libraries write UTC; never the exporter's local zone
            stamp = stamp.replace(tzinfo=UTC)
        return stamp.timestamp()
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError(f"not a finite time: {raw!r}")
    if unit == "auto":  # Sidekiq: float seconds before 8.0, integer milliseconds since
        for limit, scale in ((1e17, 1e-9), (1e14, 1e-6), (1e11, 1e-3)):
            if value > limit:
                return value * scale
        return value
    return value * _SCALE[unit]


@dataclass
class Parsed:
    """What a plan's parser found for one tenant of one layout."""

    queues: list[QueueStats] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    malformed: int = 0
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    """Ops for one tenant of one layout and the function that reads their replies."""

    ops: list[Op]
    parse: Callable[[list[Any], float, Parsed], None]


def count(value: Any) -> int:
    """An integer reply, with a key of the wrong type counted as empty."""
    return 0 if value == WRONGTYPE or value is None else int(value)


def head_time(reply: Any, unit: Unit, out: Parsed) -> float | None:
    """The timestamp of a HEAD/HEADHASH reply; unparseable values count as malformed."""
    if reply == WRONGTYPE:
        out.malformed += 1
        return None
    raw, bad = reply
    out.malformed += int(bad)
    try:
        return to_seconds(raw, unit)
    except (ValueError, TypeError, OverflowError):
        out.malformed += 1
        return None


# QueueStats' defaults after `oldest_timestamp`, for building records without its Python __new__.
_AFTER_OLDEST = tuple(QueueStats._field_defaults[f] for f in QueueStats._fields[4:])
assert QueueStats._fields[:4] == ("queue", "depth", "tenant", "oldest_timestamp")


def fill_tenant(template: str, tenant: str) -> str:
    return template.replace("{tenant}", tenant)


class Layout(Model):
    """Base of every layout config."""

    scan: Annotated[int, Field(ge=1, le=100)] = 10

    def templates(self) -> Sequence[str]:
        """Every key template of the layout; `{tenant}` in any of them makes it per-tenant."""
        return ()

    @property
    def per_tenant(self) -> bool:
        return any("{tenant}" in t for t in self.templates())

    @property
    def discovers(self) -> bool:
        """Whether the layout reads anything before planning (spares the others a pass per tenant)."""
        return type(self).discovery is not Layout.discovery

    def discovery(self, tenant: str) -> list[Op]:
        return []

    def plan(self, tenant: str, found: list[Any], now: float) -> Plan:
        raise NotImplementedError

    def plan_all(self, tenants: list[str], found: list[list[Any]], now: float) -> list[Plan]:
        """Plans for every tenant; layouts with a flat per-tenant key override it with EACH ops."""
        return [self.plan(t, f, now) for t, f in zip(tenants, found, strict=True)]


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
            scale = _SCALE.get(unit)
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
                append(new(QueueStats, (name, depth, tenant, oldest, *_AFTER_OLDEST)))

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


class SortedSetLayout(Layout):
    """A sorted set whose lowest score is the oldest item; the time is the score or a JSON field."""

    layout: Literal["zset"]
    name: str
    key: str
    timestamp: Literal["score", "member", "none"] = "score"
    timestamp_field: str = ""
    timestamp_unit: Unit = "s"

    def templates(self) -> Sequence[str]:
        return (self.key,)

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
                oldest = head_time([raw, 0 if raw is not None else 1], self.timestamp_unit, out)
            out.queues.append(QueueStats(self.name, count(r[0]), tenant, oldest))

        return Plan(ops, parse)


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

    def queue_ops(self, tenant: str, queue: str) -> list[Op]:
        key = self.queue_key(tenant, queue)
        ops: list[Op] = [
            ("LLEN", key),
            ("HEAD", key, "0", self.timestamp_field, str(self.scan), "num"),
            ("ZCARD", f"{key}:delayed"),
            ("ZCARD", f"{key}:reserved"),
        ]
        if self.pause_key:
            ops.append(("EXISTS", fill_tenant(self.pause_key, tenant).replace("{queue}", queue)))
        return ops

    def queue_stats(self, tenant: str, queue: str, r: list[Any], out: Parsed, **extra: Any) -> QueueStats:
        oldest = head_time(r[1], "s", out)
        states = (("delayed", count(r[2])), ("reserved", count(r[3])))
        paused = bool(count(r[4])) if self.pause_key else None
        return QueueStats(queue, count(r[0]), tenant, oldest, states, paused=paused, **extra)

    def plan(self, tenant: str, found: list[Any], now: float) -> Plan:
        ops: list[Op] = []
        width = 5 if self.pause_key else 4
        for queue in self.queues:
            ops.extend(self.queue_ops(tenant, queue))

        def parse(r: list[Any], now: float, out: Parsed) -> None:
            for i, queue in enumerate(self.queues):
                out.queues.append(self.queue_stats(tenant, queue, r[i * width : (i + 1) * width], out))

        return Plan(ops, parse)
