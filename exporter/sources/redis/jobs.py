"""A read-only page of one queue's jobs, read live for the platform seed's `/queues/{queue}/jobs`.

The one place a request touches a backend: it reuses the Redis source's client, reads one bounded
range (LRANGE or ZRANGE, at most `limit` <= 100 items) plus the count (LLEN or ZCARD), and for
libraries that keep jobs in hashes (BullMQ, RQ) reads their text fields (HMGET) in one pipeline. Nothing is
ever written; the caller bounds the whole read with its own timeout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from exporter import untrusted
from exporter.health.data import as_int, as_time, iso
from exporter.sources.redis.layouts.base import Layout
from exporter.sources.redis.layouts.bullmq import BullMQLayout
from exporter.sources.redis.layouts.celery import CeleryLayout
from exporter.sources.redis.layouts.horizon import HorizonLayout
from exporter.sources.redis.layouts.laravel import LaravelLayout
from exporter.sources.redis.layouts.list import ListLayout
from exporter.sources.redis.layouts.rq import RQLayout
from exporter.sources.redis.layouts.sidekiq import SidekiqLayout
from exporter.sources.redis.layouts.zset import SortedSetLayout

STATUSES = ("active", "waiting", "failed", "completed")
MAX_LIMIT = 100
MAX_RAW = 64 * 1024  # characters of an item that is not JSON shown as its payload


@dataclass(frozen=True)
class Range:
    """Where one status of one queue lives: a list or sorted set, its order, and what items hold."""

    kind: str  # list | zset
    key: str
    oldest_first: bool = True  # list: oldest at the head; zset: lowest score first
    hash_prefix: str | None = None  # items are ids of hashes at hash_prefix + id
    fields: tuple[str, ...] = ()  # the text fields read from each hash (RQ's `data` is a binary pickle)


_BULL_FIELDS = ("data", "timestamp", "attemptsMade", "failedReason", "stacktrace", "processedOn", "finishedOn")
_RQ_FIELDS = ("description", "created_at", "enqueued_at", "started_at", "ended_at", "exc_info", "retries")


def serves(layout: Layout, queue: str) -> bool:
    """Whether a layout config reads a queue of that name."""
    name = getattr(layout, "name", None)
    if name is not None:
        return name == queue
    queues = getattr(layout, "queues", None)
    return queues is None or queue in queues


def locate(layout: Layout, tenant: str, queue: str, status: str) -> Range | None:
    """The range holding jobs of `status`, or None when the library keeps no such set per queue."""
    fill = lambda text: text.replace("{tenant}", tenant)  # noqa: E731
    if isinstance(layout, ListLayout):
        return Range("list", fill(layout.key), layout.oldest == "head") if status == "waiting" else None
    if isinstance(layout, SortedSetLayout):
        return Range("zset", fill(layout.key)) if status == "waiting" else None
    if isinstance(layout, LaravelLayout):  # Horizon included: its failed/completed sets mix every queue
        key = layout.queue_key(tenant, queue)
        return {"waiting": Range("list", key), "active": Range("zset", f"{key}:reserved")}.get(status)
    if isinstance(layout, BullMQLayout):
        base = f"{fill(layout.prefix)}:{queue}"
        return {"waiting": Range("list", f"{base}:wait", False, f"{base}:", _BULL_FIELDS),
                "active": Range("list", f"{base}:active", False, f"{base}:", _BULL_FIELDS),
                "failed": Range("zset", f"{base}:failed", False, f"{base}:", _BULL_FIELDS),
                "completed": Range("zset", f"{base}:completed", False, f"{base}:", _BULL_FIELDS)}.get(status)
    if isinstance(layout, RQLayout):
        p = fill(layout.prefix)
        job = f"{p}job:"
        return {"waiting": Range("list", f"{p}queue:{queue}", True, job, _RQ_FIELDS),
                "active": Range("zset", f"{p}wip:{queue}", True, job, _RQ_FIELDS),
                "failed": Range("zset", f"{p}failed:{queue}", False, job, _RQ_FIELDS),
                "completed": Range("zset", f"{p}finished:{queue}", False, job, _RQ_FIELDS)}.get(status)
    if isinstance(layout, SidekiqLayout):
        return Range("list", f"{fill(layout.prefix)}queue:{queue}", False) if status == "waiting" else None
    if isinstance(layout, CeleryLayout):
        return Range("list", f"{fill(layout.global_keyprefix)}{queue}", False) if status == "waiting" else None
    return None


async def list_jobs(client: Redis, layout: Layout, tenant: str, queue: str, status: str, limit: int,
                    offset: int) -> tuple[list[dict[str, Any]], int]:
    """(jobs, total) for one page, oldest first for waiting/active and newest first for failed/completed."""
    limit = max(1, min(limit, MAX_LIMIT))
    where = locate(layout, tenant, queue, status)
    if where is None:
        return [], 0
    if where.kind == "list":
        total = int(await client.llen(where.key))
        if where.oldest_first:
            items = await client.lrange(where.key, offset, offset + limit - 1)
        else:
            items = list(reversed(await client.lrange(where.key, -(offset + limit), -(offset + 1))))
    else:
        total = int(await client.zcard(where.key))
        items = await client.zrange(where.key, offset, offset + limit - 1, desc=not where.oldest_first)
    hashes: list[dict[str, Any]] = [{}] * len(items)
    if where.hash_prefix is not None and items:
        async with client.pipeline(transaction=False) as pipe:
            for item in items:
                pipe.hmget(f"{where.hash_prefix}{item}", list(where.fields))
            replies = await pipe.execute()
        hashes = [{k: v for k, v in zip(where.fields, r, strict=True) if v is not None} or {"id": item}
                  for item, r in zip(items, replies, strict=True)]
    jobs = [job_record(item, h, queue, status, isinstance(layout, BullMQLayout)) for item, h in zip(items, hashes,
                                                                                                    strict=True)]
    return jobs, total


def _json(raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:  # NaN is read as the libraries write it; the answer's encoder turns it into null
        return untrusted.loads(raw, finite=False)
    except ValueError:  # not JSON, too deep or too large: shown as (bounded) text, never a 500
        return bounded(raw)


def bounded(raw: str) -> str:
    return raw if len(raw) <= MAX_RAW else raw[:MAX_RAW] + "…"



def job_record(item: str, fields: dict[str, Any], queue: str, status: str, bull: bool = False) -> dict[str, Any]:
    """The seed's job shape from a stored payload (JSON item) or a job hash; unknown fields are null."""
    if fields:
        payload = _json(fields.get("data")) if bull else fields.get("description")
        message = fields.get("failedReason") or fields.get("exc_info") or fields.get("exception")
        trace = _json(fields.get("stacktrace"))
        created = as_time(fields.get("timestamp") if bull else fields.get("created_at") or fields.get("enqueued_at"))
        updated = as_time(fields.get("finishedOn") or fields.get("processedOn") if bull else
                          fields.get("ended_at") or fields.get("started_at"))
        attempts = as_int(fields.get("attemptsMade") if bull else fields.get("retries"))
        job_id = item
    else:
        body = _json(item)
        body = body if isinstance(body, dict) else {"raw": bounded(item)}
        headers = body.get("headers")
        job_id = (body.get("id") or body.get("uuid") or body.get("jid")
                  or (headers.get("id") if isinstance(headers, dict) else None))
        payload = body.get("data", body.get("args", body))
        message = body.get("error_message")
        trace = body.get("error_backtrace")
        created = as_time(body.get("createdAt") or body.get("pushedAt") or body.get("created_at")
                          or body.get("enqueued_at") or body.get("timestamp"))
        updated = as_time(body.get("failed_at") or body.get("enqueued_at"))
        attempts = as_int(body.get("attempts", body.get("retry_count")))
    error = None
    if message:
        stack = "\n".join(map(str, trace)) if isinstance(trace, list) else (str(trace) if trace else None)
        error = {"message": str(message).splitlines()[0] if message else None, "stack_trace": stack}
    return {"id": None if job_id is None else str(job_id), "queue": queue, "status": status, "payload": payload,
            "error": error, "attempts": attempts, "created_at": iso(created),
            "updated_at": iso(updated if updated is not None else created)}


def supported(layout: Layout) -> bool:
    """Layouts with at least a waiting range; Horizon and Laravel are included through LaravelLayout."""
    return isinstance(layout, ListLayout | SortedSetLayout | LaravelLayout | HorizonLayout | BullMQLayout
                      | RQLayout | SidekiqLayout | CeleryLayout)
