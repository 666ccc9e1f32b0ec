"""How queues lie in Redis, as ops to read and a parser of the replies: the machinery every layout
shares. Each queue library (and each generic shape) has its own module beside this one.

Every layout answers two questions per
tenant: which ops to run first to discover what exists (`discovery`), and, given those replies, which
ops read the queues and how to turn the replies into records (`plan`). Keys and timestamp units
follow `shared/reference/redis-queues.md`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field

from exporter.model import Job, QueueStats, Sample
from exporter.sources.base import Model
from exporter.sources.redis.script import WRONGTYPE, Op
from exporter.values import Unit, as_int, as_time, stored_time


def kind(unit: Unit) -> str:
    """What a stored timestamp of `unit` must look like for the ops to accept it (see ops.valid)."""
    return "iso" if unit == "iso" else "num"


@dataclass
class Parsed:
    """What a plan's parser found for one tenant of one layout."""

    queues: list[QueueStats] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    malformed: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    facts: list[object] = field(default_factory=list)


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
        return stored_time(raw, unit)
    except (ValueError, TypeError, OverflowError):
        out.malformed += 1
        return None


# QueueStats' defaults after `oldest_timestamp`, for building records without its Python __new__.
AFTER_OLDEST = tuple(QueueStats._field_defaults[f] for f in QueueStats._fields[4:])
assert QueueStats._fields[:4] == ("queue", "depth", "tenant", "oldest_timestamp")


def fill_tenant(template: str, tenant: str) -> str:
    return template.replace("{tenant}", tenant)


@dataclass(frozen=True)
class JobRange:
    """Where the jobs of one state of one queue live (the job listing): a list or sorted set, its order,
    and, when items are ids of job hashes, the hash prefix and the text fields to read from each."""

    kind: Literal["list", "zset"]
    key: str
    oldest_first: bool = True  # list: oldest at the head; zset: lowest score first
    hash_prefix: str | None = None
    fields: tuple[str, ...] = ()


def decoded(raw: Any) -> Any:
    """A JSON text decoded, or the text itself when it is not JSON."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def job_of(job_id: Any, queue: str, status: str, payload: Any, message: Any, trace: Any, attempts: Any,
           created: Any, updated: Any) -> Job:
    """A `Job` from the values a library stores; times and counts are read leniently (unknown = None)."""
    stack = "\n".join(map(str, trace)) if isinstance(trace, list) else (str(trace) if trace else None)
    created_at, updated_at = as_time(created), as_time(updated)
    return Job(None if job_id is None else str(job_id), queue, status, payload,
               str(message).splitlines()[0] if message else None, stack if message else None, as_int(attempts),
               created_at, updated_at if updated_at is not None else created_at)


def payload_job(item: str, queue: str, status: str) -> Job:
    """A job stored whole as a JSON item (Laravel, Sidekiq, Celery, plain lists); unknown fields are None."""
    body = decoded(item)
    body = body if isinstance(body, dict) else {"raw": item}
    headers = body.get("headers")
    job_id = body.get("id") or body.get("uuid") or body.get("jid") or (
        headers.get("id") if isinstance(headers, dict) else None)
    return job_of(job_id, queue, status, body.get("data", body.get("args", body)), body.get("error_message"),
                  body.get("error_backtrace"), body.get("attempts", body.get("retry_count")),
                  body.get("createdAt") or body.get("pushedAt") or body.get("created_at") or body.get("enqueued_at")
                  or body.get("timestamp"), body.get("failed_at") or body.get("enqueued_at"))


class Layout(Model):
    """Base of every layout config. A library's module overrides what it knows: `plan` (and `discovery`)
    for the collection, `job_range` and `job` for the job listing (by default: not supported)."""

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

    def serves(self, queue: str) -> bool:
        """Whether this layout reads a queue of that name (`queues: null` means discovered: any name)."""
        name: str | None = getattr(self, "name", None)
        if name is not None:
            return name == queue
        queues: list[str] | None = getattr(self, "queues", None)
        return queues is None or queue in queues

    @property
    def lists_jobs(self) -> bool:
        """Whether the layout supports the job listing at all."""
        return type(self).job_range is not Layout.job_range

    def job_range(self, tenant: str, queue: str, status: str) -> JobRange | None:
        """Where jobs of `status` live, or None when the library keeps no such set per queue."""
        return None

    def job(self, item: str, fields: dict[str, str], queue: str, status: str) -> Job:
        """One listed job from its range item (and its hash fields, for layouts with job hashes)."""
        return payload_job(item, queue, status)


def hashes(reply: Any) -> list[dict[str, Any]]:
    """ZHASHES reply -> one dict per member: the hash fields plus `member` and `score`."""
    if reply == WRONGTYPE or not reply:
        return []
    out = []
    for member, score, flat in reply:
        fields = dict(zip(flat[::2], flat[1::2], strict=False)) if isinstance(flat, list) else {}
        out.append({**fields, "member": str(member), "score": float(score)})
    return out


def members(reply: Any) -> list[str]:
    return [] if reply == WRONGTYPE or not reply else [str(m) for m in reply]


def json_dict(raw: Any) -> dict[str, Any]:
    try:
        value = json.loads(raw) if isinstance(raw, str) else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def to_int(raw: Any) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return 0


def to_float(raw: Any) -> float:
    try:
        return float(raw) if raw not in (None, WRONGTYPE) else 0.0
    except ValueError:
        return 0.0
