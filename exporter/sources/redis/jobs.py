"""A read-only page of one queue's jobs, read live for the platform seed's `/queues/{queue}/jobs`.

The one place a request touches a backend. Where a library keeps its jobs is the layout's knowledge
(`Layout.job_range`, `Layout.job`); this module only reads the range: one bounded LRANGE or ZRANGE
(at most MAX_JOB_PAGE items) plus the count (LLEN or ZCARD), and for libraries that keep jobs in
hashes their text fields (HMGET; BullMQ, RQ), or where the item is an id of a job stored elsewhere its
body (HGET in one hash: dramatiq, Bee-Queue; GET: saq), in one pipeline. Nothing is ever written; the caller
bounds the whole read with its own timeout.

The reads go through the lean connection of the collection (wire.py), never redis-py: it holds no
reply over MAX_ITEM (1 MiB) and hands TOO_BIG instead, so a page of 100 items of 50 MB each costs
the daemon 100 MiB at most, not 5 GB (issue 20 item 4). Such an item lists as a job whose body
could not be read: its payload is UNREADABLE, every field it would have given is null. The wire
reads latin-1 (byte for byte); text is decoded here as UTF-8, binary items (huey's pickles) stay bytes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from exporter.model import Job, JobPage
from exporter.sources.base import MAX_JOB_PAGE
from exporter.sources.redis.items import TOO_BIG
from exporter.sources.redis.layouts.base import MAX_STREAM_SCAN, JobRange, Layout
from exporter.sources.redis.wire import ReplyError, Wire, as_exception, pack

if TYPE_CHECKING:  # only a cluster loads its wire (and redis-py's slot hash)
    from exporter.sources.redis.cluster import ClusterWire

LISTING_ENCODING = "latin-1"  # what a listing wire decodes with: every byte kept, see `_text`
UNREADABLE = {"unreadable": "job body over 1 MiB, not read"}


async def read_page(wire: Wire | ClusterWire, layout: Layout, tenant: str, queue: str, status: str, limit: int,
                    offset: int) -> JobPage:
    """One page, oldest first for waiting/active and newest first for failed/completed. `wire` reads
    with LISTING_ENCODING."""
    limit = max(1, min(limit, MAX_JOB_PAGE))
    where = layout.job_range(tenant, queue, status)
    if where is None:
        return JobPage((), 0)
    if where.other is not None and await _one(wire, "TYPE", where.key) == where.other.kind:
        where = where.other
    if where.kind == "stream":
        return await _stream_page(wire, layout, where, queue, status, limit, offset)
    scores: list[Any] = []
    if where.kind == "list":
        window = ((offset, offset + limit - 1) if where.oldest_first else (-(offset + limit), -(offset + 1)))
        count, raw = await _run(wire, [("LLEN", where.key), ("LRANGE", where.key, *window)])
        if not where.oldest_first:
            raw = list(reversed(raw))
    else:  # the same commands redis-py sent (ZREVRANGE for a newest-first text page; see JobRange.acl)
        verb = ("ZRANGE",) if where.oldest_first or where.binary else ("ZREVRANGE",)
        rev = ("REV",) if where.binary and not where.oldest_first else ()
        count, raw = await _run(wire, [("ZCARD", where.key),
                                       (*verb, where.key, offset, offset + limit - 1, *rev,
                                        *(("WITHSCORES",) if where.scores else ()))])
        if where.scores:  # RESP2: member, score, member, score, ...
            scores, raw = raw[1::2], raw[0::2]
    total = int(count)
    items = [_text(i, where.binary) for i in raw]
    found: list[dict[str, str]] = [{} for _ in items]
    if items and (where.hash_prefix is not None or where.body_hash is not None or where.body_prefix is not None):
        found = await _lookups(wire, where, items)
    for fields, score in zip(found, scores, strict=False):
        fields["score"] = repr(float(score))
    return JobPage(tuple(_job(layout, item, h, queue, status) for item, h in zip(items, found, strict=True)), total)


def _job(layout: Layout, item: str, fields: dict[str, str], queue: str, status: str) -> Job:
    """The layout's job, or where the item or a value it points at was over the bound, a job whose body
    could not be read: the id when it is known, payload UNREADABLE, nothing taken from the big value."""
    if item == TOO_BIG:
        return Job(fields.get("id"), queue, status, UNREADABLE)
    if TOO_BIG in fields.values():
        readable = {k: v for k, v in fields.items() if v != TOO_BIG}
        return replace(layout.job(item, readable, queue, status), payload=UNREADABLE)
    return layout.job(item, fields, queue, status)


async def _stream_page(wire: Wire | ClusterWire, layout: Layout, where: JobRange, queue: str, status: str,
                       limit: int, offset: int) -> JobPage:
    """The entries the group has not been delivered, oldest first (all of them while it does not exist).
    XRANGE cannot skip to an offset: a page reads at most MAX_STREAM_SCAN entries from the first one, and
    a page beyond them is empty (the total stays exact)."""
    if await _one(wire, "TYPE", where.key) != "stream":
        return JobPage((), 0)
    groups = [_pairs(g) for g in await _one(wire, "XINFO", "GROUPS", where.key)]
    info = next((g for g in groups if _text(g.get("name"), False) == where.group), None)
    start = "-" if info is None else "(" + str(info["last-delivered-id"])
    lag = None if info is None else info.get("lag")
    total = int(lag) if lag is not None else int(await _one(wire, "XLEN", where.key))  # NULL lag: XLEN, an upper bound
    entries: list[Any] = [] if offset >= MAX_STREAM_SCAN else list(await _one(
        wire, "XRANGE", where.key, start, "+", "COUNT", min(offset + limit, MAX_STREAM_SCAN)) or [])
    page = [(str(entry_id), _pairs(values)) for entry_id, values in entries[offset : offset + limit]]
    return JobPage(tuple(_job(layout, _text(values.get("data", ""), False), {"id": entry_id}, queue, status)
                         for entry_id, values in page), total)


def _pairs(flat: Any) -> dict[str, Any]:
    """A RESP2 flat list of names and values as a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=False)) if isinstance(flat, list) else {}


def _text(value: Any, binary: bool) -> str:
    """A value the listing wire read (latin-1, byte for byte): binary stays so, text is read as UTF-8."""
    if value is None or value == TOO_BIG:
        return "" if value is None else TOO_BIG
    text = str(value)
    return text if binary else text.encode("latin-1").decode("utf-8", "replace")


async def _one(wire: Wire | ClusterWire, *command: str | int) -> Any:
    (reply,) = await _run(wire, [command])
    return reply


Command = tuple[str | bytes | int, ...]


async def _run(wire: Wire | ClusterWire, commands: list[Command], errors: bool = True) -> list[Any]:
    """One round trip; each command's key is its second word (XINFO GROUPS: its third), which routes it
    on a cluster. A reply error raises as redis-py's exception (the source maps it to a failure kind)
    unless `errors` is False."""
    keys = [c[2] if c[0] == "XINFO" else c[1] for c in commands]
    replies = await wire.execute([pack(*c) for c in commands], None,
                                 [k.decode("latin-1") if isinstance(k, bytes) else str(k) for k in keys])
    if errors:
        for reply in replies:
            if isinstance(reply, ReplyError):
                raise as_exception(reply)
    return replies


async def _lookups(wire: Wire | ClusterWire, where: JobRange, items: list[str]) -> list[dict[str, str]]:
    """Each item's job, in one pipeline: the hash's text fields, or its body (HGET in one hash, or GET)."""
    commands: list[Command] = []
    for item in items:
        if where.hash_prefix is not None:
            commands.append(("HMGET", f"{where.hash_prefix}{item}", *where.fields))
        elif where.body_hash is not None:
            commands.append(("HGET", where.body_hash, item))
        else:  # a binary item's id is sent byte for byte
            key = f"{where.body_prefix}{item}"
            commands.append(("GET", key.encode("latin-1") if where.binary else key))
    out: list[dict[str, str]] = []
    for reply in await _run(wire, commands, errors=False):
        if isinstance(reply, ReplyError):  # a key of another type: that job shows without its body
            out.append({})
        elif where.hash_prefix is not None:
            out.append({k: _text(v, False) for k, v in zip(where.fields, reply, strict=True) if v is not None})
        else:
            out.append({} if reply is None else {"body": _text(reply, where.binary)})
    return out
