"""A read-only page of one queue's jobs, read live for the platform seed's `/queues/{queue}/jobs`.

The one place a request touches a backend. Where a library keeps its jobs is the layout's knowledge
(`Layout.job_range`, `Layout.job`); this module only reads the range: one bounded LRANGE or ZRANGE
(at most MAX_JOB_PAGE items) plus the count (LLEN or ZCARD), and for libraries that keep jobs in
hashes (BullMQ, RQ) their text fields (HMGET) in one pipeline. Nothing is ever written; the caller
bounds the whole read with its own timeout.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from exporter.model import JobPage
from exporter.sources.base import MAX_JOB_PAGE
from exporter.sources.redis.layouts.base import Layout


async def read_page(client: Redis | RedisCluster, layout: Layout, tenant: str, queue: str, status: str, limit: int,
                    offset: int) -> JobPage:
    """One page, oldest first for waiting/active and newest first for failed/completed."""
    limit = max(1, min(limit, MAX_JOB_PAGE))
    where = layout.job_range(tenant, queue, status)
    if where is None:
        return JobPage((), 0)
    raw: list[Any]
    if where.kind == "list":
        total = int(await client.llen(where.key))
        if where.oldest_first:
            raw = await client.lrange(where.key, offset, offset + limit - 1)
        else:
            raw = list(reversed(await client.lrange(where.key, -(offset + limit), -(offset + 1))))
    else:
        total = int(await client.zcard(where.key))
        raw = await client.zrange(where.key, offset, offset + limit - 1, desc=not where.oldest_first)
    items = [str(i) for i in raw]  # the client decodes replies (decode_responses=True)
    hashes: list[dict[str, str]] = [{}] * len(items)
    if where.hash_prefix is not None and items:
        async with client.pipeline(transaction=False) as pipe:
            for item in items:
                pipe.hmget(f"{where.hash_prefix}{item}", list(where.fields))
            replies: list[Any] = await pipe.execute()
        hashes = [{k: v for k, v in zip(where.fields, r, strict=True) if v is not None} for r in replies]
    return JobPage(tuple(layout.job(item, h, queue, status) for item, h in zip(items, hashes, strict=True)), total)
