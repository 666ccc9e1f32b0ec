"""Batched, read-only Redis reads: one op list, run as plain pipelined commands or by a Lua script.

Layouts describe what they need as ops (tuples of strings); `OpRunner.run` executes every op of a
collection in one round trip (plus one for what the first points at): by default as hand-packed
plain commands on the lean connection of `wire.py`; with `scripts: auto|lua` as a pipeline of
`EVALSHA_RO` calls of the script in `script.py`, one per batch. Both paths return the same
values, so a layout never knows which one ran.

Ops and their results:
  LLEN|ZCARD|SCARD|HLEN|XLEN|EXISTS key            -> int
  GET key / HGET key field                         -> str or None
  ZCOUNT key min max                               -> int
  HEAD key index fields scan kind                  -> [value or None, malformed]
      the first of up to `scan` items from `index` (0 = head, -1 = tail) whose JSON has one of the
      `|`-separated dotted `fields` with a value of `kind` (num: a decimal number; ts:<unit>:<latest>:
      a number that is a plausible time in its unit, from 2000 up to `latest`; iso: an ISO 8601
      date-time; any); `fields` "" takes the raw item; items before it count as malformed
  HEADHASH key index hashprefix field scan kind    -> [value or None, malformed]
      the same, but items are ids and the value is HGET hashprefix..id field (BullMQ, RQ)
  HEADGET key index keyprefix fields scan kind    -> [value or None, malformed]
      the same, but the value is a JSON field of the string GET keyprefix..id (saq)
  HEADHGET key index hash fields scan kind        -> [value or None, malformed]
      the same, but the value is a JSON field of HGET hash id (dramatiq's `.msgs`, Bee-Queue's `jobs`)
  ZFIRST key                                       -> [member, score] or []
  XFIRST key                                       -> first entry id or None
  XGROUPS key                                      -> XINFO GROUPS reply (list of flat lists) or []
  XNEXT key group                                  -> id of the first entry the group has not been
      delivered (after its last-delivered-id; the first entry when there is no such group) or None
  XUNDELIVERED key                                 -> [XINFO GROUPS reply, id of the oldest entry not yet
      delivered to some group or None]: the entry after the earliest last-delivered id of the groups
      whose lag is not 0 (see undelivered_from)
  HGETALL key                                      -> flat [field, value, ...]
  LFIRST key n                                     -> the first `n` items of a list
  ZMEMBERS key cap                                 -> flat [member, score, ...] of the first `cap`
  ZRECENT key cap                                  -> flat [member, score, ...] of the `cap` highest scores,
      highest first (dramatiq's freshest heartbeats)
  ZHASHES key hashprefix cap                       -> [[member, score, HGETALL hashprefix..member], ...]
      for the `cap` members with the highest scores (the freshest heartbeats), highest first
  ZGETS key min cap                                -> [[member, score, GET member or None], ...]
      for the first `cap` members scored `min` or more, lowest first (saq's live worker-info keys)
  ZEXISTS key max keyprefix cap                    -> [count, score or None]
      of the first `cap` members scored `max` or less: how many have a key keyprefix..member, and
      the score of the first that has none (arq: jobs in progress, and the oldest waiting job)
  SMEMBERS key cap                                 -> the first `cap` members of a set, sorted
  EACH op prefix suffix tenants ARGS...             -> [result of `op prefix..t..suffix ARGS` for each t]
      `tenants` is one string of ids joined by \x1f: a per-tenant queue costs no op of its own
  CLIENTNAMES ""                                   -> sorted names of the connected clients (CLIENT LIST),
      or None where the ACL refuses `client|list` or the server has no CLIENT LIST; Redis refuses
      CLIENT inside scripts, so both paths send it as one plain command, once per run
A key of the wrong type yields WRONGTYPE instead of failing the batch.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, overload

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError, NoScriptError, ResponseError

from exporter import untrusted
from exporter.sources.redis.cluster import ClusterWire
from exporter.sources.redis.script import LUA, OPS, SEP, WRONGTYPE, Op, batches, command, flatten, sha1
from exporter.sources.redis.wire import ReplyError, Wire, as_exception, pack, pack_each, pack_keys
from exporter.values import dig

log = logging.getLogger("jobqueue.redis")




_WS = "[ \t\n\v\f\r]*"  # Lua's %s
_NUMBER = re.compile(r"-?[0-9]+\.?[0-9]*(?:[eE][+-]?[0-9]+)?")
_ISO = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}")
_FAST: dict[str, tuple[re.Pattern[str], str] | None] = {}


def _stream_id(value: str) -> tuple[int, int]:
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)


def group_info(group: Any) -> dict[str, Any]:
    """One XINFO GROUPS row (a flat list, or a dict from RESP3) as a dict."""
    return group if isinstance(group, dict) else dict(zip(group[::2], group[1::2], strict=False))


def undelivered_from(groups: Any) -> str | None:
    """The Python twin of the Lua `undelivered_from`: the earliest last-delivered id over the groups
    whose lag is not 0 (unknown counts as not 0); the entry after it is the oldest undelivered one."""
    found: str | None = None
    for group in groups:
        info = group_info(group)
        last, lag = info.get("last-delivered-id"), info.get("lag")
        if last is not None and lag != 0 and (found is None or _stream_id(str(last)) < _stream_id(found)):
            found = str(last)
    return found


EPOCH_2000 = 946684800.0
_DIV = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}


_SPANS: dict[str, tuple[float | None, float]] = {}


def plausible(value: str, kind: str) -> bool:
    """The Python twin of the Lua `plausible`: kind `ts:<unit>:<latest>`, a number that read in its unit
    (auto: by magnitude) is a time from 2000-01-01 up to `latest`."""
    if _NUMBER.fullmatch(value) is None:
        return False
    span = _SPANS.get(kind)
    if span is None:
        if len(_SPANS) > 1000:  # `latest` moves every collection: keep the memo small
            _SPANS.clear()
        _, unit, latest = kind.split(":", 2)
        span = _SPANS[kind] = (_DIV.get(unit), float(latest))
    x, div = float(value), span[0]
    if div is not None:
        x = x / div
    elif x > 1e11:
        x = x / (1e9 if x > 1e17 else 1e6 if x > 1e14 else 1e3)
    return EPOCH_2000 <= x <= span[1]


def valid(value: str, kind: str) -> bool:
    """The Python twin of the Lua `valid`: is `value` a usable timestamp of `kind` (num, ts:..., iso, any)?"""
    if kind == "num":
        return _NUMBER.fullmatch(value) is not None
    if kind.startswith("ts:"):
        return plausible(value, kind)
    if kind == "iso":
        return _ISO.match(value) is not None
    return True


def _fast(item: str, fields: str) -> str | None:
    """The Python twin of the Lua `fast`: a plain top-level key of flat JSON, found by pattern.

    One alternation instead of Lua's two patterns: in flat JSON a key appears once, so the leftmost
    match of either form is the one Lua finds.
    """
    entry = _FAST.get(fields)
    if entry is None:
        if fields in _FAST:
            return None
        key = '"' + re.escape(fields) + '"' + _WS + ":" + _WS
        simple = "|" not in fields and "." not in fields
        entry = (re.compile(key + r'(?:"([^"\\]+)"|(-?[0-9][0-9.eE+-]*)' + _WS + "[,}])"), f'"{fields}"')
        _FAST[fields] = entry if simple else None
        if not simple:
            return None
    pattern, needle = entry
    if not item.startswith("{") or item.find("{", 1) >= 0:
        return None
    at = item.find(needle)
    while at >= 0:  # a plain find, then an anchored match: the key may also occur as a value
        match = pattern.match(item, at)
        if match:
            return match.group(1) or match.group(2)
        at = item.find(needle, at + 1)
    return None


def pick(item: str, fields: str) -> str | None:
    """The Python twin of the Lua `pick`: the first present field of a JSON item, as text."""
    if fields == "":
        return item
    quick = _fast(item, fields)
    if quick is not None:
        return quick
    try:  # the bounds of Redis' cjson (decode_max_depth 1000, no size cap) so both paths agree
        doc = untrusted.loads(item, max_bytes=len(item), max_depth=1000, finite=False)
    except (ValueError, TypeError):
        return None
    if not isinstance(doc, dict):
        return None
    for alt in fields.split("|"):
        value = dig(doc, alt, lists=False)  # cjson tables: a step into an array finds nothing
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):  # cjson decodes every number to a double, printed with %.17g
            return format(float(value), ".17g")
        if isinstance(value, str) and value:
            return value
    return None


class Keys(Sequence[str]):
    """The keys of an EACH op (prefix + tenant + suffix), made when asked: the packed commands
    already hold them, and only a reply that needs a second look asks for its key."""

    def __init__(self, prefix: str, tenants: list[str], suffix: str) -> None:
        self.prefix, self.tenants, self.suffix = prefix, tenants, suffix

    def __len__(self) -> int:
        return len(self.tenants)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self.prefix + t + self.suffix for t in self.tenants[index]]
        return self.prefix + self.tenants[index] + self.suffix

    def __iter__(self) -> Iterator[str]:
        prefix, suffix = self.prefix, self.suffix
        return (prefix + t + suffix for t in self.tenants)


class OpRunner:
    """Runs op lists against one Redis client; remembers whether scripts work there."""

    def __init__(self, client: Redis | RedisCluster, wire: Wire | ClusterWire, batch_size: int = 2000,
                 mode: str = "auto") -> None:
        self.client = client
        self.wire = wire
        self.routed = isinstance(wire, ClusterWire)  # a cluster: one command per key, routed by key
        self.batch_size = batch_size
        self.mode = mode  # auto | lua | pipeline
        self._sha: str | None = None
        self.used = "pipeline" if mode == "pipeline" else "lua"
        # Between collections (tenants and queues rarely change): the packed commands of each EACH op,
        # and each HEAD op's replies with what they resolved to, so an unchanged head item is not
        # parsed again. Rebuilt every run from the ops of that run, so it never outgrows them.
        self._packed: dict[Op, tuple[Keys, bytes]] = {}
        self._heads: dict[Op, tuple[str, list[Any], list[Any]]] = {}

    async def run(self, ops: Sequence[Op]) -> list[Any]:
        """One result per op, in order (an EACH op's result is the list of its per-tenant results)."""
        if not ops:
            return []
        if any(op[0] == "CLIENTNAMES" for op in ops):
            names = await self._client_names()
            rest = iter(await self.run([op for op in ops if op[0] != "CLIENTNAMES"]))
            return [names if op[0] == "CLIENTNAMES" else next(rest) for op in ops]
        if self.used == "lua":
            try:
                return _normalise(ops, await self._expand(ops, self._run_lua))
            except (NoPermissionError, ResponseError) as err:
                if self.mode == "lua" or not _script_unsupported(err):
                    raise
                log.warning("read-only scripts unavailable, using pipelines", extra={"error": str(err)})
                self.used = "pipeline"
        return _normalise(ops, await self._run_pipeline(ops))

    async def _client_names(self) -> list[str] | None:
        """Names of the connected clients, the way BullMQ's getWorkers reads them (queue-getters.ts
        `parseClientList`: the `name=` field of each CLIENT LIST line; Redis allows no spaces in names)."""
        command = pack("CLIENT", "LIST")
        if isinstance(self.wire, ClusterWire):  # a cluster: the clients of every primary
            replies = await self.wire.everywhere(command)
        else:
            replies = await self._wire([command])
        for reply in replies:
            if isinstance(reply, ReplyError):
                text = str(reply)
                if text.startswith("NOPERM") or "unknown" in text.lower():
                    return None  # ACL without client|list (documented), or a server without CLIENT LIST
                raise as_exception(reply)
        return sorted(field[5:] for reply in replies for line in reply.splitlines() for field in line.split(" ")
                      if field.startswith("name=") and len(field) > 5)

    async def _expand(self, ops: Sequence[Op],
                      execute: Callable[[Sequence[Op]], Awaitable[list[Any]]]) -> list[Any]:
        """Split EACH ops into chunks of `batch_size` tenants, so no script blocks Redis for long,
        execute, and put the results back together."""
        if not any(op[0] == "EACH" for op in ops):
            return await execute(ops)
        split: list[Op] = []
        spans: list[tuple[bool, int]] = []  # (is_each, number of split ops or, negative, of per-key ops)
        for op in ops:
            if op[0] != "EACH":
                split.append(op)
                spans.append((False, 1))
                continue
            tenants = op[4].split(SEP) if op[4] else []
            chunks = [tenants[i : i + self.batch_size] for i in range(0, len(tenants), self.batch_size)]
            split.extend((*op[:4], SEP.join(c), *op[5:]) for c in chunks)
            spans.append((True, len(chunks)))
        flat = await execute(split)
        out: list[Any] = []
        pos = 0
        for is_each, n in spans:
            if not is_each:
                out.append(flat[pos])
                pos += 1
            elif n <= 0:
                out.append(flat[pos : pos - n])
                pos -= n
            else:
                out.append([row for chunk in flat[pos : pos + n] for row in chunk])
                pos += n
        return out

    async def _run_lua(self, ops: Sequence[Op]) -> list[Any]:
        if not ops:  # e.g. an EACH op over zero tenants
            return []
        chunks = list(batches(ops, self.batch_size))
        if self._sha is None:
            # EVAL_RO caches the script server-side without SCRIPT LOAD, which a read-only ACL may deny.
            first = await self.client.execute_command("EVAL_RO", LUA, 0, *flatten(chunks[0]))
            self._sha = sha1(LUA)
            rest = await self._evalsha(chunks[1:]) if len(chunks) > 1 else []
            return [*first, *rest]
        try:
            return await self._evalsha(chunks)
        except NoScriptError:
            self._sha = None
            return await self._run_lua(ops)

    async def _evalsha(self, batches: Sequence[Sequence[Op]]) -> list[Any]:
        assert self._sha is not None
        pipe = self.client.pipeline(transaction=False)
        for batch in batches:
            pipe.execute_command("EVALSHA_RO", self._sha, 0, *flatten(batch))
        out: list[Any] = []
        for reply in await pipe.execute():
            out.extend(reply)
        return out

    async def _wire(self, commands: list[bytes], count: int | None = None, keys: list[str] | None = None
                    ) -> list[Any]:
        """Reads are idempotent: after a dropped connection (a Redis restart since the last collection
        leaves a dead socket) try once more on a new one, so recovery costs no failed collection."""
        try:
            return await self.wire.execute(commands, count, keys)
        except (RedisConnectionError, ConnectionError):
            return await self.wire.execute(commands, count, keys)

    async def _run_pipeline(self, ops: Sequence[Op]) -> list[Any]:
        """Plain commands on the lean connection; a second round trip only for what the first points at
        (job hashes, supervisor hashes, and the few lists whose oldest item was not usable).

        An EACH op becomes one command per tenant, packed and settled in bulk without per-tenant ops.
        """
        commands: list[bytes] = []
        routing: list[str] = []
        spans: list[tuple[Op, Sequence[str] | None]] = []
        packed, self._packed = self._packed, {}
        heads, self._heads = self._heads, {}
        split: dict[str, list[str]] = {}  # the EACH ops of one layout share their tenant ids
        for op in ops:
            if op[0] == "EACH":
                inner: Op = (op[1], "", *op[5:])
                if self.routed:  # a cluster routes each key to its node: one buffer per key
                    keys = [op[2] + t + op[3] for t in op[4].split(SEP)] if op[4] else []
                    commands.extend(_pack_each(inner, keys))
                    routing.extend(keys)
                    spans.append((inner, keys))
                    continue
                wire_op = op[:6] if op[1] == "HEAD" else op  # LINDEX key index: the rest is read here
                known = packed.get(wire_op)
                if known is None:
                    ids = split.get(op[4])
                    if ids is None:
                        ids = split[op[4]] = op[4].split(SEP) if op[4] else []
                    cached = Keys(op[2], ids, op[3])
                    known = (cached, _pack_many(inner, list(cached)))
                self._packed[wire_op] = known
                commands.append(known[1])
                spans.append((inner, known[0]))
            else:
                commands.append(_pack_many(op, [op[1]]))
                routing.append(op[1])
                spans.append((op, None))
        raw = await self._wire(commands, sum(1 if keys is None else len(keys) for _, keys in spans),
                               routing if self.routed else None)
        results: list[Any] = [None] * len(ops)
        follow: list[tuple[list[Any], int, Op, list[str]]] = []
        pos = 0
        for index, ((op, span_keys), whole) in enumerate(zip(spans, ops, strict=True)):
            if span_keys is None:
                _settle(op, raw[pos], follow, results, index)
                pos += 1
                continue
            replies = raw[pos : pos + len(span_keys)]
            pos += len(span_keys)
            if op[0] in _COUNTS and all(type(r) is int for r in replies):
                results[index] = replies  # the common case: every key of the right type
                continue
            if op[0] == "HEAD":
                # Keyed without the kind, whose `latest` moves with the clock: a time accepted then is
                # still accepted while `latest` has not gone back (a clock set back re-reads all).
                kind, same = op[5], whole[:8]
                last = heads.get(same)
                fits = last is not None and (last[0] == kind or _later(last[0], kind))
                found = _heads(op, span_keys, replies, follow, last[1:] if fits and last else None)
                self._heads[same] = (kind, replies, list(found))  # before the follow-up fills its rows
                results[index] = found
                continue
            rows: list[Any] = [None] * len(span_keys)
            for i, (key, reply) in enumerate(zip(span_keys, replies, strict=True)):
                _settle((op[0], key, *op[2:]), reply, follow, rows, i)
            results[index] = rows
        if follow:
            await self._follow_up(follow)
        return results

    async def _follow_up(self, follow: list[tuple[list[Any], int, Op, list[str]]]) -> None:
        """Second round trip of the pipeline path."""
        commands: list[bytes] = []
        keys: list[str] = []
        for _, _, op, items in follow:
            if op[0] == "HEAD":
                scan = int(op[4])
                commands.append(pack("LRANGE", op[1], 0, scan - 1) if int(op[2]) == 0 else
                                pack("LRANGE", op[1], -scan, -1))
                keys.append(op[1])
            elif op[0] == "HEADHASH":
                commands.extend(pack("HGET", op[3] + job_id, op[4]) for job_id in items)
                keys.extend(op[3] + job_id for job_id in items)
            elif op[0] == "HEADGET":
                commands.extend(pack("GET", op[3] + job_id) for job_id in items)
                keys.extend(op[3] + job_id for job_id in items)
            elif op[0] == "HEADHGET":
                commands.extend(pack("HGET", op[3], job_id) for job_id in items)
                keys.extend(op[3] for _ in items)
            elif op[0] == "XNEXT":
                commands.append(pack("XRANGE", op[1], items[0], "+", "COUNT", 1))
                keys.append(op[1])
            elif op[0] == "ZGETS":
                commands.extend(pack("GET", member) for member in items[::2])
                keys.extend(items[::2])
            elif op[0] == "ZEXISTS":
                commands.extend(pack("EXISTS", op[3] + member) for member in items[::2])
                keys.extend(op[3] + member for member in items[::2])
            elif op[0] == "XUNDELIVERED":
                commands.append(pack("XRANGE", op[1], "(" + items[0], "+", "COUNT", 1))
                keys.append(op[1])
            else:
                commands.extend(pack("HGETALL", op[2] + member) for member in items[::2])
                keys.extend(op[2] + member for member in items[::2])
        values = iter(await self._wire(commands, None, keys if self.routed else None))
        for results, index, op, items in follow:
            if op[0] == "HEAD":
                window = next(values)
                results[index] = WRONGTYPE if isinstance(window, ReplyError) else _finish_plain(op, window)
                continue
            if op[0] == "XUNDELIVERED":
                entries = next(values)
                results[index][1] = entries[0][0] if isinstance(entries, list) and entries else None
                continue
            if op[0] == "ZHASHES":
                pairs = zip(items[::2], items[1::2], strict=True)
                results[index] = [[member, score, _flat_hash(next(values))] for member, score in pairs]
                continue
            if op[0] == "XNEXT":
                entries = next(values)
                results[index] = entries[0][0] if entries else None
                continue
            if op[0] == "ZEXISTS":
                flags = [next(values) for _ in items[::2]]
                waiting = [score for score, flag in zip(items[1::2], flags, strict=True) if not flag]
                results[index] = [sum(flags), waiting[0] if waiting else None]
                continue
            if op[0] == "ZGETS":
                pairs = zip(items[::2], items[1::2], strict=True)
                results[index] = [[member, score, _text(next(values))] for member, score in pairs]
                continue
            found, bad = None, 0
            for _ in items:
                value = next(values)
                if found is not None:
                    continue
                if op[0] != "HEADHASH":  # HEADGET / HEADHGET: a JSON document, not the value itself
                    value = pick(value, op[4]) if isinstance(value, str) else None
                if isinstance(value, str) and value and valid(value, op[6]):
                    found = value
                else:
                    bad += 1
            results[index] = [found, bad]


def commands_of(op: Op, scripts: bool = False) -> list[tuple[str, ...]]:
    """The Redis commands (with their key and arguments) that running `op` may send: what an ACL must
    allow, and what `doctor` asks `ACL DRYRUN` about. With scripts, the script runs the same reads."""
    name = op[0]
    if name == "EACH":
        tenants = op[4].split(SEP) if op[4] else [""]
        return commands_of((op[1], op[2] + tenants[0] + op[3], *op[5:]), scripts)
    if name == "CLIENTNAMES":
        return [("CLIENT", "LIST")]
    spec = OPS.get(name)
    if spec is None:
        raise ValueError(f"unknown op {name!r}")
    key = op[1]
    if spec.command:  # a plain op: its one command, from the op table
        return [tuple(command(spec, key, op[2:]))]
    if name == "HEAD":
        return [("LINDEX", key, op[2]), ("LRANGE", key, "0", str(int(op[4]) - 1))]
    if name == "HEADHASH":
        return [("LRANGE", key, "0", str(int(op[5]) - 1)), ("HGET", op[3] + "1", op[4])]
    if name == "HEADGET":
        return [("LRANGE", key, "0", str(int(op[5]) - 1)), ("GET", op[3] + "1")]
    if name == "HEADHGET":
        return [("LRANGE", key, "0", str(int(op[5]) - 1)), ("HGET", op[3], "1")]
    if name == "ZHASHES":
        return [("ZREVRANGE", key, "0", "0", "WITHSCORES"), ("HGETALL", op[2] + "1")]
    if name == "ZGETS":
        return [("ZRANGEBYSCORE", key, op[2], "+inf", "WITHSCORES", "LIMIT", "0", op[3]), ("GET", key + ":1")]
    if name == "ZEXISTS":
        return [("ZRANGEBYSCORE", key, "-inf", op[2], "WITHSCORES", "LIMIT", "0", op[4]), ("EXISTS", op[3] + "1")]
    if name == "XFIRST":
        return [("XRANGE", key, "-", "+", "COUNT", "1")]
    groups = [("XINFO", "GROUPS", key), *([("TYPE", key)] if scripts else [])]
    if name == "XGROUPS":
        return groups
    if name == "XUNDELIVERED":
        return [*groups, ("XRANGE", key, "(0-0", "+", "COUNT", "1")]
    if name == "XNEXT":
        return [*groups, ("XRANGE", key, "(0-0", "+", "COUNT", "1")]
    raise ValueError(f"op {name!r}: commands_of does not know what it sends")


def _normalise(ops: Sequence[Op], results: list[Any]) -> list[Any]:
    """Post-processing shared by both paths: SMEMBERS replies sorted and capped."""
    for i, op in enumerate(ops):
        if op[0] == "SMEMBERS":
            results[i] = _capped_members(results[i], int(op[2]))
        elif op[0] == "EACH" and op[1] == "SMEMBERS":
            results[i] = [_capped_members(r, int(op[5])) for r in results[i]]
    return results


def _capped_members(reply: Any, cap: int) -> Any:
    return reply if reply == WRONGTYPE else sorted(reply or ())[:cap]


def _flat_hash(reply: Any) -> list[str]:
    if isinstance(reply, dict):
        return [x for kv in reply.items() for x in kv]
    return reply if isinstance(reply, list) else []


def _after(groups: Any, group: str) -> str:
    """The XRANGE start of the entries `group` has not been delivered: after its last-delivered-id."""
    for raw in groups or ():
        info = raw if isinstance(raw, dict) else dict(zip(raw[::2], raw[1::2], strict=False))
        if info.get("name") == group:
            return "(" + str(info.get("last-delivered-id"))
    return "-"


def _text(reply: Any) -> str | None:
    """A GET reply as the script returns it: a wrong type (an error here, false in Lua) is None."""
    return reply if isinstance(reply, str) else None


def _script_unsupported(err: Exception) -> bool:
    text = str(err).lower()
    return isinstance(err, NoPermissionError) or "unknown command" in text or "noperm" in text


_HEADS = frozenset({"HEADHASH", "HEADGET", "HEADHGET"})  # list items naming where the value is
_COUNTS = frozenset({"LLEN", "ZCARD", "SCARD", "HLEN", "XLEN", "EXISTS"})


def _later(before: str, now: str) -> bool:
    """Whether kind `now` accepts every time kind `before` did: the same unit, `latest` not earlier."""
    if not (before.startswith("ts:") and now.startswith("ts:")):
        return False
    _, unit, latest = before.split(":", 2)
    _, unit_now, latest_now = now.split(":", 2)
    return unit == unit_now and float(latest_now) >= float(latest)


def _pack_many(op: Op, keys: list[str]) -> bytes:
    """The command that starts `op`, for each key, in one buffer; the hot shapes are packed in bulk."""
    name = op[0]
    if name in _COUNTS or name == "GET":
        return pack_keys(name, keys)
    if name == "HEAD":
        return pack_keys("LINDEX", keys, op[2])
    return b"".join(_pack_one((name, key, *op[2:])) for key in keys)


def _pack_each(op: Op, keys: list[str]) -> list[bytes]:
    """`_pack_many`, one buffer per key (for a cluster, which routes each key to its node)."""
    name = op[0]
    if name in _COUNTS or name == "GET":
        return pack_each(name, keys)
    if name == "HEAD":
        return pack_each("LINDEX", keys, op[2])
    return [_pack_one((name, key, *op[2:])) for key in keys]


def _heads(op: Op, keys: Sequence[str], replies: list[Any], follow: list[tuple[list[Any], int, Op, list[str]]],
           last: tuple[list[Any], list[Any]] | None = None) -> list[Any]:
    """_settle for an EACH of HEAD, with the JSON shortcut inlined: this loop runs once per tenant.

    `last` is the previous run's (replies, rows) of the same op: a head item whose text is the same
    as then resolves to the same row without being parsed again (queues are usually idle or slow).
    Rows that needed the second round trip are never reused: the items behind the head may differ.
    """
    fields, kind = op[3], op[5]
    pick("{}", fields)  # compiles the shortcut for `fields`, if it has one
    entry = _FAST.get(fields)
    number = _NUMBER.fullmatch if kind == "num" else None
    rows: list[Any] = [None] * len(keys)
    before, resolved = last if last is not None and len(last[0]) == len(replies) else ((), ())
    for i, reply in enumerate(replies):
        if reply is None:
            rows[i] = [None, 0]
            continue
        if before and type(reply) is str and reply == before[i]:
            row = resolved[i]
            if row is not None:
                rows[i] = row
                continue
        value = None
        if entry is not None and type(reply) is str and reply[:1] == "{" and reply.find("{", 1) < 0:
            at = reply.find(entry[1])
            match = entry[0].match(reply, at) if at >= 0 else None
            if match:
                value = match.group(1) or match.group(2)
        if value is None and type(reply) is str:
            value = pick(reply, fields)
        if value is not None and (number(value) if number else valid(value, kind)):
            rows[i] = [value, 0]
        else:
            _settle((op[0], keys[i], *op[2:]), reply, follow, rows, i)
    return rows


def _settle(op: Op, reply: Any, follow: list[tuple[list[Any], int, Op, list[str]]], target: list[Any],
            index: int) -> None:
    """Put the result of one plain-command reply at target[index], or queue the read it needs next."""
    name = op[0]
    if isinstance(reply, ReplyError):
        text = str(reply)
        if name == "XGROUPS" and "no such key" in text:
            target[index] = []
        elif name == "XNEXT" and "no such key" in text:
            target[index] = None
        elif name == "XUNDELIVERED" and "no such key" in text:
            target[index] = [[], None]
        elif "WRONGTYPE" in text:
            target[index] = WRONGTYPE
        else:
            raise as_exception(reply)
        return
    if name == "HEAD":  # LINDEX of the oldest item; scan the window only if it is not usable
        value = None if reply is None else pick(reply, op[3])
        if reply is None or (value is not None and valid(value, op[5])):
            target[index] = [value, 0]
        else:
            follow.append((target, index, op, []))
        return
    if name == "XUNDELIVERED":
        start = undelivered_from(reply)
        target[index] = [reply, None]
        if start is not None:
            follow.append((target, index, op, [start]))
        return
    target[index] = _finish_plain(op, reply)
    if name in _HEADS:
        follow.append((target, index, op, _ordered(reply, int(op[2]))))
    elif name in ("ZHASHES", "ZGETS", "ZEXISTS"):
        follow.append((target, index, op, reply))
    elif name == "XNEXT":
        follow.append((target, index, op, [_after(reply, op[2])]))


def _pack_one(op: Op) -> bytes:
    name, key = op[0], op[1]
    spec = OPS.get(name)
    if spec is None:
        raise ValueError(f"unknown op {name!r}")
    if spec.command:
        return pack(*command(spec, key, op[2:]))
    if name in _HEADS:
        scan = int(op[5])
        return pack("LRANGE", key, 0, scan - 1) if int(op[2]) == 0 else pack("LRANGE", key, -scan, -1)
    if name == "ZHASHES":
        return pack("ZREVRANGE", key, 0, int(op[3]) - 1, "WITHSCORES")
    if name == "ZGETS":
        return pack("ZRANGEBYSCORE", key, op[2], "+inf", "WITHSCORES", "LIMIT", 0, int(op[3]))
    if name == "ZEXISTS":
        return pack("ZRANGEBYSCORE", key, "-inf", op[2], "WITHSCORES", "LIMIT", 0, int(op[4]))
    if name == "XFIRST":
        return pack("XRANGE", key, "-", "+", "COUNT", 1)
    if name in ("XGROUPS", "XNEXT", "XUNDELIVERED"):
        return pack("XINFO", "GROUPS", key)
    raise ValueError(f"op {name!r} has no command")


def _ordered(items: list[str], index: int) -> list[str]:
    return items if index == 0 else items[::-1]


def _finish_plain(op: Op, reply: Any) -> Any:
    name = op[0]
    if name == "HEAD":
        found, bad = None, 0
        for item in _ordered(reply, int(op[2])):
            value = pick(item, op[3])
            if value is not None and valid(value, op[5]):
                found = value
                break
            bad += 1
        return [found, bad]
    if name in _HEADS or name in ("ZHASHES", "ZGETS", "ZEXISTS", "XNEXT"):
        return [None, 0]  # resolved by the follow-up pipeline
    if name == "XFIRST":
        return reply[0][0] if reply else None
    return reply
