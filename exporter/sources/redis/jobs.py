"""A read-only page of one queue's jobs, read live for the platform seed's `/queues/{queue}/jobs`.

The one place a request touches a backend. Where a library keeps its jobs is the layout's knowledge
(`Layout.job_range`, `Layout.job`); this module only reads the range: one bounded LRANGE or ZRANGE
(at most MAX_JOB_PAGE items) plus the count (LLEN or ZCARD), and for libraries that keep jobs in
hashes their text fields (HMGET; BullMQ, RQ), or where the item is an id of a job stored elsewhere its
body (HGET in one hash: dramatiq, Bee-Queue; GET: saq), in one pipeline. Nothing is ever written; the caller
bounds the whole read with its own timeout.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from exporter.model import JobPage
from exporter.sources.base import MAX_JOB_PAGE
from exporter.sources.redis.layouts.base import MAX_STREAM_SCAN, JobRange, Layout


async def read_page(client: Redis | RedisCluster, layout: Layout, tenant: str, queue: str, status: str, limit: int,
                    offset: int) -> JobPage:
    """One page, oldest first for waiting/active and newest first for failed/completed."""
    limit = max(1, min(limit, MAX_JOB_PAGE))
    where = layout.job_range(tenant, queue, status)
    if where is None:
        return JobPage((), 0)
    if where.other is not None and await client.type(where.key) == where.other.kind:
        where = where.other
    if where.kind == "stream":
        return await _stream_page(client, layout, where, queue, status, limit, offset)
    raw: list[Any]
    scores: list[Any] = []
    if where.kind == "list":
        total = int(await client.llen(where.key))
        if where.oldest_first:
            raw = await _lrange(client, where, offset, offset + limit - 1)
        else:
            raw = list(reversed(await _lrange(client, where, -(offset + limit), -(offset + 1))))
    else:
        total = int(await client.zcard(where.key))
        if where.binary:
            flat = await client.execute_command("ZRANGE", where.key, offset, offset + limit - 1,
                                                *(() if where.oldest_first else ("REV",)),
                                                *(("WITHSCORES",) if where.scores else ()), NEVER_DECODE=True)
            raw = _score_pairs(flat) if where.scores else flat
        else:
            raw = await client.zrange(where.key, offset, offset + limit - 1, desc=not where.oldest_first,
                                      withscores=where.scores)
        if where.scores:  # (member, score) pairs
            scores = [pair[1] for pair in raw]
            raw = [pair[0] for pair in raw]
    # the client decodes replies (decode_responses=True); binary items are read undecoded
    items = [i.decode("latin-1") if isinstance(i, bytes) else str(i) for i in raw]
    found: list[dict[str, str]] = [{} for _ in items]
    if items and (where.hash_prefix is not None or where.body_hash is not None or where.body_prefix is not None):
        found = await _lookups(client, where, items)
    for fields, score in zip(found, scores, strict=False):
        fields["score"] = repr(float(score))
    return JobPage(tuple(layout.job(item, h, queue, status) for item, h in zip(items, found, strict=True)), total)


async def _stream_page(client: Redis | RedisCluster, layout: Layout, where: JobRange, queue: str, status: str,
                       limit: int, offset: int) -> JobPage:
    """The entries the group has not been delivered, oldest first (all of them while it does not exist).
    XRANGE cannot skip to an offset: a page reads at most MAX_STREAM_SCAN entries from the first one, and
    a page beyond them is empty (the total stays exact)."""
    if await client.type(where.key) != "stream":
        return JobPage((), 0)
    groups = await client.xinfo_groups(where.key)
    info = next((g for g in groups if str(g.get("name")) == where.group), None)
    start = "-" if info is None else "(" + str(info["last-delivered-id"])
    lag = None if info is None else info.get("lag")
    total = int(lag) if lag is not None else int(await client.xlen(where.key))  # NULL lag: XLEN, an upper bound
    entries: list[Any] = [] if offset >= MAX_STREAM_SCAN else list(await client.xrange(
        where.key, start, "+", count=min(offset + limit, MAX_STREAM_SCAN)) or [])
    page = [(entry_id, values or {}) for entry_id, values in entries[offset : offset + limit]]
    return JobPage(tuple(layout.job(str(values.get("data", "")), {"id": str(entry_id)}, queue, status)
                         for entry_id, values in page), total)


def _score_pairs(reply: list[Any]) -> list[tuple[Any, float]]:
    """(member, score) from a raw ZRANGE WITHSCORES: pairs under RESP3, a flat list under RESP2."""
    if reply and isinstance(reply[0], list):
        return [(m, float(s)) for m, s in reply]
    return [(m, float(s)) for m, s in zip(reply[::2], reply[1::2], strict=True)]


async def _lrange(client: Redis | RedisCluster, where: JobRange, start: int, stop: int) -> list[Any]:
    if where.binary:
        return list(await client.execute_command("LRANGE", where.key, start, stop, NEVER_DECODE=True))
    return list(await client.lrange(where.key, start, stop))


async def _lookups(client: Redis | RedisCluster, where: JobRange, items: list[str]) -> list[dict[str, str]]:
    """Each item's job, in one pipeline: the hash's text fields, or its body (HGET in one hash, or GET)."""
    async with client.pipeline(transaction=False) as pipe:
        for item in items:
            if where.hash_prefix is not None:
                pipe.hmget(f"{where.hash_prefix}{item}", list(where.fields))
            elif where.body_hash is not None:
                pipe.hget(where.body_hash, item)
            elif where.binary:
                pipe.execute_command("GET", f"{where.body_prefix}{item}", NEVER_DECODE=True)
            else:
                pipe.get(f"{where.body_prefix}{item}")
        replies: list[Any] = await pipe.execute(raise_on_error=False)
    out: list[dict[str, str]] = []
    for reply in replies:
        if isinstance(reply, Exception):  # a key of another type: that job shows without its body
            out.append({})
        elif where.hash_prefix is not None:
            out.append({k: v for k, v in zip(where.fields, reply, strict=True) if v is not None})
        else:
            text = reply.decode("latin-1") if isinstance(reply, bytes) else reply  # binary: byte for byte
            out.append({} if text is None else {"body": str(text)})
    return out
