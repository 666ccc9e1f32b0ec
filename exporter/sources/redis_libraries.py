"""The queue libraries' own Redis layouts: Horizon, Sidekiq, BullMQ, RQ and Celery.

Keys, timestamp units and counting rules follow `shared/reference/redis-queues.md`; the machinery
they share (ops, `Plan`, `Parsed`, time parsing) and the generic layouts are in `redis_layouts.py`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from exporter.model import QueueStats, Sample
from exporter.sources.redis_layouts import (
    LaravelLayout,
    Layout,
    ListLayout,
    Parsed,
    Plan,
    SortedSetLayout,
    StreamLayout,
    count,
    fill_tenant,
    head_time,
)
from exporter.sources.redis_script import WRONGTYPE, Op


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
        hp = fill_tenant(self.horizon_prefix, tenant)
        return [
            ("ZHASHES", f"{hp}masters", f"{hp}master:", str(self.cap)),
            ("ZHASHES", f"{hp}supervisors", f"{hp}supervisor:", str(self.cap)),
        ]

    def plan(self, tenant: str, found: list[Any], now: float) -> Plan:
        hp = fill_tenant(self.horizon_prefix, tenant)
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
        p = fill_tenant(self.prefix, tenant)
        return [("SMEMBERS", f"{p}queues", str(self.cap)), ("SMEMBERS", f"{p}paused", str(self.cap))]

    def plan(self, tenant: str, found: list[Any], now: float) -> Plan:
        p = fill_tenant(self.prefix, tenant)
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
            base = f"{fill_tenant(self.prefix, tenant)}:{queue}"
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
        return [("SMEMBERS", f"{fill_tenant(self.prefix, tenant)}queues", str(self.cap))]

    def plan(self, tenant: str, found: list[Any], now: float) -> Plan:
        p = fill_tenant(self.prefix, tenant)
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
        p = fill_tenant(self.global_keyprefix, tenant)
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
