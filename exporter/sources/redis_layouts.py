"""How each queue library lays its queues out in Redis, as ops to read and a parser of the replies.

Every layout answers two questions per tenant: which ops to run first to discover what exists
(`discovery`), and, given those replies, which ops read the queues and how to turn the replies into
records (`plan`). Keys and timestamp units follow `shared/reference/redis-queues.md`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from exporter.model import QueueStats, Sample
from exporter.sources.base import Model
from exporter.sources.redis_ops import SEP, WRONGTYPE, Op, pick

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


def _fill(template: str, tenant: str) -> str:
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
        key = _fill(self.key, tenant)
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
        key = _fill(self.key, tenant)
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
        key = _fill(self.key, tenant)
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
        return f"{_fill(self.prefix, tenant)}queues:{name}"

    def queue_ops(self, tenant: str, queue: str) -> list[Op]:
        key = self.queue_key(tenant, queue)
        ops: list[Op] = [
            ("LLEN", key),
            ("HEAD", key, "0", self.timestamp_field, str(self.scan), "num"),
            ("ZCARD", f"{key}:delayed"),
            ("ZCARD", f"{key}:reserved"),
        ]
        if self.pause_key:
            ops.append(("EXISTS", _fill(self.pause_key, tenant).replace("{queue}", queue)))
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


class HorizonLayout(LaravelLayout):
    """Laravel Horizon: the Laravel lists plus Horizon's runtime, failed jobs, masters and supervisors.

    With no `queues`, the queues are those the live supervisors serve on `connection`.
    """

    layout: Literal["horizon"]  # type: ignore[assignment]
    queues: list[str] | None = None  # type: ignore[assignment]
    timestamp_field: str = "pushedAt|createdAt"
    horizon_prefix: str = "laravel_horizon:"
    connection: str = "redis"
    recent_failed_minutes: Annotated[int, Field(ge=1)] = 10080
    cap: Annotated[int, Field(ge=1, le=10000)] = 1000

    def templates(self) -> Sequence[str]:
        return (self.prefix, self.horizon_prefix, self.pause_key or "")

    def discovery(self, tenant: str) -> list[Op]:
        hp = _fill(self.horizon_prefix, tenant)
        return [
            ("ZHASHES", f"{hp}masters", f"{hp}master:", str(self.cap)),
            ("ZHASHES", f"{hp}supervisors", f"{hp}supervisor:", str(self.cap)),
        ]

    def plan(self, tenant: str, found: list[Any], now: float) -> Plan:
        hp = _fill(self.horizon_prefix, tenant)
        masters = _hashes(found[0])
        supervisors = _hashes(found[1])
        # processes per served queue group ("default" or, with balance off, "default,emails")
        prefix = f"{self.connection}:"
        groups: dict[str, int] = {}
        for sup in supervisors:
            if sup["score"] >= now - 29:  # Horizon's own liveness window for supervisors
                for name, n in _json_dict(sup.get("processes")).items():
                    if name.startswith(prefix):
                        groups[name[len(prefix):]] = groups.get(name[len(prefix):], 0) + _int(n)
        queues = self.queues or sorted({q for g in groups for q in g.split(",") if q})
        # a queue's wait needs every queue of the groups it is served in
        read = list(dict.fromkeys([*queues, *(q for g in groups for q in g.split(",")
                                              if q and set(g.split(",")) & set(queues))]))
        width = 5 if self.pause_key else 4
        ops: list[Op] = [
            ("ZCOUNT", f"{hp}recent_failed_jobs", "-inf", repr(-(now - self.recent_failed_minutes * 60))),
            ("ZCARD", f"{hp}failed_jobs"),
        ]
        for queue in read:
            ops.extend(self.queue_ops(tenant, queue))
            ops.append(("HGET", f"{hp}queue:{queue}", "runtime"))

        def parse(r: list[Any], now: float, out: Parsed) -> None:
            recent_failed, total_failed = count(r[0]), count(r[1])
            parts = {q: r[2 + i * (width + 1) : 2 + (i + 1) * (width + 1)] for i, q in enumerate(read)}
            ms = {q: count(part[0]) * _float(part[width]) for q, part in parts.items()}
            waits: dict[str, dict[str, int | float]] = {}
            for queue in queues:
                part = parts[queue]
                served = [g for g in groups if queue in g.split(",")]
                # Horizon's time to clear of each group that serves the queue; the longest counts
                wait = max((horizon_wait(1, sum(ms[q] for q in g.split(",") if q), groups[g]) for g in served),
                           default=horizon_wait(1, ms[queue], 0))
                out.queues.append(self.queue_stats(tenant, queue, part[:width], out, wait_seconds=wait))
                waits[queue] = {"pending": count(part[0]), "wait_seconds": wait}
            alive = [m for m in masters if m["score"] >= now - 14]
            for status in ("running", "paused"):
                n = sum(1 for m in alive if m.get("status") == status)
                out.samples.append(Sample("jobqueue_horizon_masters", (tenant, status), n))
            out.samples.append(Sample("jobqueue_library_jobs", (tenant, "failed_recent"), recent_failed))
            out.samples.append(Sample("jobqueue_library_jobs", (tenant, "failed"), total_failed))
            out.details.setdefault("horizon", {})[tenant] = {
                "queues": waits,
                "failed_jobs": recent_failed,
                "masters": [
                    {"name": m["member"], "status": m.get("status"), "last_seen": m["score"]} for m in masters
                ],
                "supervisors": [
                    {"name": s["member"], "status": s.get("status"), "last_seen": s["score"]} for s in supervisors
                ],
            }

        return Plan(ops, parse)


def horizon_wait(ready: int, runtime_ms: float, processes: int) -> int:
    """Horizon's WaitTimeCalculator: ready x average runtime, shared by the processes, in seconds."""
    total_ms = ready * runtime_ms
    if processes > 0:
        total_ms /= processes
    return math.floor(total_ms / 1000 + 0.5)  # PHP round(): half away from zero


class SidekiqLayout(Layout):
    """Sidekiq: `queue:NAME` lists (oldest at the tail), `schedule`, `retry` and `dead` sets."""

    layout: Literal["sidekiq"]
    queues: list[str] | None = None  # None: the members of the `queues` set
    prefix: str = ""
    cap: Annotated[int, Field(ge=1, le=100000)] = 1000

    def templates(self) -> Sequence[str]:
        return (self.prefix,)

    def discovery(self, tenant: str) -> list[Op]:
        p = _fill(self.prefix, tenant)
        return [("SMEMBERS", f"{p}queues", str(self.cap)), ("SMEMBERS", f"{p}paused", str(self.cap))]

    def plan(self, tenant: str, found: list[Any], now: float) -> Plan:
        p = _fill(self.prefix, tenant)
        queues = self.queues or sorted(_members(found[0]))
        paused = set(_members(found[1]))
        ops: list[Op] = [("ZCARD", f"{p}schedule"), ("ZCARD", f"{p}retry"), ("ZCARD", f"{p}dead")]
        for queue in queues:
            key = f"{p}queue:{queue}"
            ops += [("LLEN", key), ("HEAD", key, "-1", "enqueued_at|created_at", str(self.scan), "num")]

        def parse(r: list[Any], now: float, out: Parsed) -> None:
            for state, value in zip(("scheduled", "retry", "dead"), r[:3], strict=True):
                out.samples.append(Sample("jobqueue_library_jobs", (tenant, state), count(value)))
            for i, queue in enumerate(queues):
                depth, head = r[3 + 2 * i], r[4 + 2 * i]
                oldest = head_time(head, "auto", out)
                out.queues.append(QueueStats(queue, count(depth), tenant, oldest, paused=queue in paused))

        return Plan(ops, parse)


_BULL_STATES = ("active", "delayed", "prioritized", "waiting-children", "completed", "failed")


class BullMQLayout(Layout):
    """BullMQ: `wait` list of ids (oldest at the tail, time in the job hash), state sets, `meta.paused`.

    Covers v5 (pause renames `wait` to `paused`) and v6 (jobs stay in `wait`; only `meta.paused`).
    """

    layout: Literal["bullmq"]
    queues: list[str]
    prefix: str = "bull"

    def templates(self) -> Sequence[str]:
        return (self.prefix,)

    def plan(self, tenant: str, found: list[Any], now: float) -> Plan:
        ops: list[Op] = []
        for queue in self.queues:
            base = f"{_fill(self.prefix, tenant)}:{queue}"
            ops += [
                ("LLEN", f"{base}:wait"),
                ("LLEN", f"{base}:paused"),
                ("HEADHASH", f"{base}:wait", "-1", f"{base}:", "timestamp", str(self.scan), "num"),
                ("HEADHASH", f"{base}:paused", "-1", f"{base}:", "timestamp", str(self.scan), "num"),
                ("LLEN", f"{base}:active"),
                *(("ZCARD", f"{base}:{state}") for state in _BULL_STATES[1:]),
                ("HGET", f"{base}:meta", "paused"),
            ]
        width = 5 + len(_BULL_STATES)

        def parse(r: list[Any], now: float, out: Parsed) -> None:
            for i, queue in enumerate(self.queues):
                part = r[i * width : (i + 1) * width]
                times = [t for t in (head_time(part[2], "ms", out), head_time(part[3], "ms", out)) if t is not None]
                counts = dict(zip(_BULL_STATES, map(count, part[4:-1]), strict=True))
                # v5 paused queues keep their jobs in the `paused` list: still waiting, so in the depth
                depth = count(part[0]) + count(part[1]) + counts["prioritized"]
                states = tuple(counts.items())
                out.queues.append(QueueStats(
                    queue, depth, tenant, min(times) if times else None, states,
                    failed=counts["failed"], paused=part[-1] in ("1", "true"),
                ))

        return Plan(ops, parse)


_RQ_REGISTRIES = (("started", "wip"), ("failed", "failed"), ("finished", "finished"),
                  ("scheduled", "scheduled"), ("deferred", "deferred"), ("canceled", "canceled"),
                  ("ready", "ready"))


class RQLayout(Layout):
    """RQ: `rq:queue:NAME` list of ids (oldest at the head; ISO `enqueued_at` in the job hash), registries."""

    layout: Literal["rq"]
    queues: list[str] | None = None  # None: the members of `rq:queues`
    prefix: str = "rq:"
    cap: Annotated[int, Field(ge=1, le=100000)] = 1000

    def templates(self) -> Sequence[str]:
        return (self.prefix,)

    def discovery(self, tenant: str) -> list[Op]:
        return [("SMEMBERS", f"{_fill(self.prefix, tenant)}queues", str(self.cap))]

    def plan(self, tenant: str, found: list[Any], now: float) -> Plan:
        p = _fill(self.prefix, tenant)
        queues = self.queues or sorted(m.removeprefix(f"{p}queue:") for m in _members(found[0]))
        ops: list[Op] = []
        for queue in queues:
            key = f"{p}queue:{queue}"
            ops += [("LLEN", key), ("HEADHASH", key, "0", f"{p}job:", "enqueued_at", str(self.scan), "iso")]
            ops += [("ZCARD", f"{p}{suffix}:{queue}") for _, suffix in _RQ_REGISTRIES]
        width = 2 + len(_RQ_REGISTRIES)

        def parse(r: list[Any], now: float, out: Parsed) -> None:
            for i, queue in enumerate(queues):
                part = r[i * width : (i + 1) * width]
                states = tuple((state, count(v)) for (state, _), v in zip(_RQ_REGISTRIES, part[2:], strict=True))
                oldest = head_time(part[1], "iso", out)
                out.queues.append(QueueStats(queue, count(part[0]), tenant, oldest, states, failed=states[1][1]))

        return Plan(ops, parse)


class CeleryLayout(Layout):
    """Celery on kombu: one list per queue and priority step; `unacked` holds prefetched messages.

    Protocol v2 stores no enqueue time, so Celery queues have depth but no oldest age.
    """

    layout: Literal["celery"]
    queues: list[str] = ["celery"]
    global_keyprefix: str = ""
    priority_steps: list[int] = [0, 3, 6, 9]
    separator: str = "\x06\x16"

    @field_validator("separator")
    @classmethod
    def _unescape(cls, value: str) -> str:
        return value.encode().decode("unicode_escape")

    def templates(self) -> Sequence[str]:
        return (self.global_keyprefix,)

    def plan(self, tenant: str, found: list[Any], now: float) -> Plan:
        p = _fill(self.global_keyprefix, tenant)
        ops: list[Op] = [("HLEN", f"{p}unacked")]
        for queue in self.queues:
            for step in self.priority_steps:
                ops.append(("LLEN", f"{p}{queue}" if step == 0 else f"{p}{queue}{self.separator}{step}"))
        width = len(self.priority_steps)

        def parse(r: list[Any], now: float, out: Parsed) -> None:
            out.samples.append(Sample("jobqueue_library_jobs", (tenant, "unacked"), count(r[0])))
            for i, queue in enumerate(self.queues):
                depth = sum(count(v) for v in r[1 + i * width : 1 + (i + 1) * width])
                out.queues.append(QueueStats(queue, depth, tenant))

        return Plan(ops, parse)


AnyLayout = Annotated[
    ListLayout | SortedSetLayout | StreamLayout | LaravelLayout | HorizonLayout | SidekiqLayout | BullMQLayout
    | RQLayout | CeleryLayout,
    Field(discriminator="layout"),
]


def _hashes(reply: Any) -> list[dict[str, Any]]:
    """ZHASHES reply -> one dict per member: the hash fields plus `member` and `score`."""
    if reply == WRONGTYPE or not reply:
        return []
    out = []
    for member, score, flat in reply:
        fields = dict(zip(flat[::2], flat[1::2], strict=False)) if isinstance(flat, list) else {}
        out.append({**fields, "member": str(member), "score": float(score)})
    return out


def _members(reply: Any) -> list[str]:
    return [] if reply == WRONGTYPE or not reply else [str(m) for m in reply]


def _json_dict(raw: Any) -> dict[str, Any]:
    try:
        value = json.loads(raw) if isinstance(raw, str) else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _int(raw: Any) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return 0


def _float(raw: Any) -> float:
    try:
        return float(raw) if raw not in (None, WRONGTYPE) else 0.0
    except ValueError:
        return 0.0
