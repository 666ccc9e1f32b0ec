"""The Redis read language: each op is one class that owns its command, its reply handling, its
follow-up read and the commands an ACL must allow for it.

An op names its key and arguments by name. The runner (runner.py) sends the first command of every op
of a collection in one round trip and, for the ops whose reply points at more (job hashes, worker
hashes, the items behind an unusable head), the follow-up commands in a second one. A key of the
wrong type reads as WRONGTYPE instead of failing the batch. `Each` runs one op on the keys of many
tenants without an op object per tenant: the hot path of a large collection.

A new op is one class here: `VERB` (the command words before the key), `tail()` (the arguments after
it), `result(reply)` (the op's result, or a `Then` naming the commands to read next and how to finish
from their replies), and `acl()` when it sends more than its first command.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, overload

from exporter.sources.redis.items import TOO_BIG, WRONGTYPE, fast, fast_pattern, number, pick, valid
from exporter.sources.redis.wire import ReplyError, as_exception, pack_each, pack_keys


@dataclass(frozen=True, slots=True)
class Then:
    """The second read an op needs: its commands (each routed by the key at index 1) and how to make
    the op's result from their replies."""

    commands: list[tuple[str, ...]]
    finish: Callable[[list[Any]], Any]


Rows = tuple[list[Any], list[tuple[int, Then]], Any]  # results, follow-ups by row, memo for the next run


@dataclass(frozen=True, slots=True)
class Op:
    """One read of one key. By default: one command, whose reply is the result."""

    key: str
    VERB: ClassVar[tuple[str, ...]] = ()

    def tail(self) -> tuple[str, ...]:
        return ()

    def command(self) -> tuple[str, ...]:
        return (*self.VERB, self.key, *self.tail())

    def result(self, reply: Any) -> Any:
        return reply

    def failed(self, error: str) -> Any:
        """The result of a reply error: WRONGTYPE for a key of another type; anything else fails the run."""
        if "WRONGTYPE" in error:
            return WRONGTYPE
        raise as_exception(ReplyError(error))

    def acl(self) -> list[tuple[str, ...]]:
        """Every command (with its key) running this op may send: what a read-only ACL must allow."""
        return [self.command()]

    def at(self, key: str) -> Op:
        return replace(self, key=key)

    def stable(self) -> Op:
        """What identifies the op between runs (Each caches its packed commands by it)."""
        return self.at("")

    def pack_many(self, keys: Sequence[str]) -> bytes:
        """The first command for each key, in one buffer."""
        return pack_keys(self.VERB, keys, self.tail())

    def pack_each(self, keys: Sequence[str]) -> list[bytes]:
        """The same, one buffer per key (a cluster routes each to its node)."""
        return pack_each(self.VERB, keys, self.tail())

    def results(self, keys: Sequence[str], replies: list[Any], last: Any) -> Rows:
        """The results for many keys (an Each); `last` is what this returned as memo on the last run."""
        rows: list[Any] = [None] * len(replies)
        then: list[tuple[int, Then]] = []
        for i, (key, reply) in enumerate(zip(keys, replies, strict=True)):
            row = settle(self.at(key), reply)
            if isinstance(row, Then):
                then.append((i, row))
            rows[i] = row
        return rows, then, None


def settle(op: Op, reply: Any) -> Any:
    """The result of one first-round reply (or the Then it needs)."""
    return op.failed(str(reply)) if isinstance(reply, ReplyError) else op.result(reply)


# ------------------------------------------------------------------------------------- plain reads


@dataclass(frozen=True, slots=True)
class Count(Op):
    """An integer reply (LLEN and its kin)."""

    def results(self, keys: Sequence[str], replies: list[Any], last: Any) -> Rows:
        if all(type(r) is int for r in replies):  # the common case: every key of the right type
            return replies, [], None
        return Op.results(self, keys, replies, last)


class Llen(Count):
    VERB = ("LLEN",)


class Zcard(Count):
    VERB = ("ZCARD",)


class Scard(Count):
    VERB = ("SCARD",)


class Hlen(Count):
    VERB = ("HLEN",)


class Xlen(Count):
    VERB = ("XLEN",)


class Exists(Count):
    VERB = ("EXISTS",)


@dataclass(frozen=True, slots=True)
class ExistsCount(Count):
    """How many of `key` and `more` exist, in one EXISTS (dramatiq: the consumers holding a queue's messages)."""

    VERB = ("EXISTS",)
    more: tuple[str, ...] = ()

    def tail(self) -> tuple[str, ...]:
        return self.more


class Get(Op):
    """A string, or None."""

    VERB = ("GET",)


class HGetAll(Op):
    """A hash as a flat [field, value, ...] list."""

    VERB = ("HGETALL",)


@dataclass(frozen=True, slots=True)
class HGet(Op):
    """One field of a hash, or None."""

    VERB = ("HGET",)
    field: str = ""

    def tail(self) -> tuple[str, ...]:
        return (self.field,)


@dataclass(frozen=True, slots=True)
class ZCount(Op):
    """Members scored from `low` to `high` (Redis score syntax)."""

    VERB = ("ZCOUNT",)
    low: str = "-inf"
    high: str = "+inf"

    def tail(self) -> tuple[str, ...]:
        return (self.low, self.high)


class ZFirst(Op):
    """[member, score] of the lowest score, or []."""

    VERB = ("ZRANGE",)

    def tail(self) -> tuple[str, ...]:
        return ("0", "0", "WITHSCORES")


@dataclass(frozen=True, slots=True)
class ZMembers(Op):
    """Flat [member, score, ...] of the `cap` lowest scores."""

    VERB = ("ZRANGE",)
    cap: int = 1

    def tail(self) -> tuple[str, ...]:
        return ("0", str(self.cap - 1), "WITHSCORES")


@dataclass(frozen=True, slots=True)
class ZRecent(Op):
    """Flat [member, score, ...] of the `cap` highest scores, highest first (dramatiq's freshest heartbeats)."""

    VERB = ("ZREVRANGE",)
    cap: int = 1

    def tail(self) -> tuple[str, ...]:
        return ("0", str(self.cap - 1), "WITHSCORES")


@dataclass(frozen=True, slots=True)
class LFirst(Op):
    """The first `n` items of a list."""

    VERB = ("LRANGE",)
    n: int = 1

    def tail(self) -> tuple[str, ...]:
        return ("0", str(self.n - 1))


@dataclass(frozen=True, slots=True)
class SMembers(Op):
    """The first `cap` members of a set, sorted (so a capped read is the same every time)."""

    VERB = ("SMEMBERS",)
    cap: int = 1000

    def result(self, reply: Any) -> Any:
        return sorted(reply or ())[: self.cap]


class ClientNames(Op):
    """Sorted names of the connected clients (CLIENT LIST), or None where the ACL refuses `client|list`
    or the server has none. Keyless: the runner sends it once per run (to every primary of a cluster)."""

    VERB = ("CLIENT", "LIST")

    def command(self) -> tuple[str, ...]:
        return self.VERB

    def names(self, replies: list[Any]) -> list[str] | None:
        """The `name=` field of each CLIENT LIST line, as BullMQ's getWorkers reads them (queue-getters.ts
        `parseClientList`; Redis allows no spaces in names)."""
        for reply in replies:
            if isinstance(reply, ReplyError):
                text = str(reply)
                if text.startswith("NOPERM") or "unknown" in text.lower():
                    return None  # ACL without client|list (documented), or a server without CLIENT LIST
                raise as_exception(reply)
        return sorted(field[5:] for reply in replies for line in reply.splitlines() for field in line.split(" ")
                      if field.startswith("name=") and len(field) > 5)


# ------------------------------------------------------------------------------------- heads of lists


@dataclass(frozen=True, slots=True)
class Head(Op):
    """The oldest usable timestamp of a list of JSON items: [value or None, malformed].

    LINDEX of the oldest item (the head, or the tail with `from_tail`); only when it is not usable, the
    first `scan` items are read and those before a usable one count as malformed. `fields` are
    `|`-separated dotted JSON paths ("" = the item itself); `kind` is what a usable value looks like
    (items.valid). An item over the size bound (TOO_BIG) is malformed, and the items behind it are not
    read: they would cross the network whole as well.
    """

    VERB = ("LINDEX",)
    from_tail: bool = False
    fields: str = ""
    scan: int = 10
    kind: str = "any"

    def tail(self) -> tuple[str, ...]:
        return ("-1" if self.from_tail else "0",)

    def window(self) -> tuple[str, ...]:
        if self.from_tail:
            return ("LRANGE", self.key, str(-self.scan), "-1")
        return ("LRANGE", self.key, "0", str(self.scan - 1))

    def acl(self) -> list[tuple[str, ...]]:
        return [self.command(), self.window()]

    def stable(self) -> Op:
        return replace(self, key="", kind="")  # `kind` holds `latest`, which moves with the clock

    def result(self, reply: Any) -> Any:
        if reply is None:
            return [None, 0]
        if reply == TOO_BIG:
            return [None, 1]
        value = pick(reply, self.fields)
        if value is not None and valid(value, self.kind):
            return [value, 0]
        return Then([self.window()], self.scanned)

    def scanned(self, replies: list[Any]) -> Any:
        items = replies[0]
        if isinstance(items, ReplyError):
            return WRONGTYPE
        found, bad = None, 0
        for item in items[::-1] if self.from_tail else items:
            value = pick(item, self.fields) if item != TOO_BIG else None
            if value is not None and valid(value, self.kind):
                found = value
                break
            bad += 1
        return [found, bad]

    def results(self, keys: Sequence[str], replies: list[Any], last: Any) -> Rows:
        """`result` for many keys, with the JSON shortcut inlined: this loop runs once per tenant.

        `last` is the previous run's (kind, replies, rows): a head item whose text is the same as then
        resolves to the same row without being parsed again (queues are usually idle or slow), while the
        kind accepts every time it did then (same unit, `latest` not earlier). Rows that needed the
        second round trip are never reused: the items behind the head may differ.
        """
        kind, fields = self.kind, self.fields
        entry = fast_pattern(fields)
        plain = number if kind == "num" else None
        rows: list[Any] = [None] * len(replies)
        then: list[tuple[int, Then]] = []
        before: Sequence[Any] = ()
        resolved: Sequence[Any] = ()
        if last is not None and _later(last[0], kind) and len(last[1]) == len(replies):
            before, resolved = last[1], last[2]
        for i, reply in enumerate(replies):
            if reply is None:
                rows[i] = [None, 0]
                continue
            if before and type(reply) is str and reply == before[i]:
                row = resolved[i]
                if row is not None:
                    rows[i] = row
                    continue
            value = fast(reply, entry) if entry is not None and type(reply) is str else None
            if value is None and type(reply) is str and reply != TOO_BIG:
                value = pick(reply, fields)
            if value is not None and (plain(value) if plain else valid(value, kind)):
                rows[i] = [value, 0]
                continue
            row = settle(self.at(keys[i]), reply)
            if isinstance(row, Then):
                then.append((i, row))
            else:
                rows[i] = row
        return rows, then, (kind, replies, list(rows))  # kept before the follow-up fills its rows


def _later(before: str, now: str) -> bool:
    """Whether kind `now` accepts every value kind `before` did: the same, or a time kind of the same
    unit whose `latest` is not earlier (a clock set back re-reads all)."""
    if before == now:
        return True
    if not (before.startswith("ts:") and now.startswith("ts:")):
        return False
    _, unit, latest = before.split(":", 2)
    _, unit_now, latest_now = now.split(":", 2)
    return unit == unit_now and float(latest_now) >= float(latest)


@dataclass(frozen=True, slots=True)
class HeadOfIds(Op):
    """A list of job ids whose timestamp lives elsewhere: the first `scan` ids from the oldest end, then
    one read per id; [value or None, malformed] as for Head."""

    VERB = ("LRANGE",)
    from_tail: bool = False
    fields: str = ""
    scan: int = 10
    kind: str = "any"

    def tail(self) -> tuple[str, ...]:
        return (str(-self.scan), "-1") if self.from_tail else ("0", str(self.scan - 1))

    def lookup(self, job_id: str) -> tuple[str, ...]:
        """The command that reads where the value of `job_id` is."""
        raise NotImplementedError

    def value(self, reply: Any) -> str | None:
        """The value in that command's reply: a JSON field of a document by default."""
        return pick(reply, self.fields) if isinstance(reply, str) and reply != TOO_BIG else None

    def acl(self) -> list[tuple[str, ...]]:
        return [self.command(), self.lookup("1")]

    def result(self, reply: Any) -> Any:
        ids = reply[::-1] if self.from_tail else reply
        if not ids:
            return [None, 0]
        return Then([self.lookup(job_id) for job_id in ids], self.first_usable)

    def first_usable(self, replies: list[Any]) -> Any:
        bad = 0
        for reply in replies:
            value = self.value(reply)
            if value is not None and value and valid(value, self.kind):
                return [value, bad]
            bad += 1
        return [None, bad]


@dataclass(frozen=True, slots=True)
class HeadHash(HeadOfIds):
    """Ids of job hashes; the value is the hash field `fields` of `<hash_prefix><id>` (BullMQ, RQ)."""

    hash_prefix: str = ""

    def lookup(self, job_id: str) -> tuple[str, ...]:
        return ("HGET", self.hash_prefix + job_id, self.fields)

    def value(self, reply: Any) -> str | None:
        return reply if isinstance(reply, str) and reply != TOO_BIG else None


@dataclass(frozen=True, slots=True)
class HeadGet(HeadOfIds):
    """Ids naming JSON strings `<key_prefix><id>`; the value is a field of the JSON (saq)."""

    key_prefix: str = ""

    def lookup(self, job_id: str) -> tuple[str, ...]:
        return ("GET", self.key_prefix + job_id)

    def acl(self) -> list[tuple[str, ...]]:
        # without a prefix the ids are whole keys (saq's `saq:job:<queue>:<key>`), in the list's namespace
        return [self.command(), self.lookup("1" if self.key_prefix else f"{self.key}:1")]


@dataclass(frozen=True, slots=True)
class HeadHGet(HeadOfIds):
    """Ids of the fields of one hash of JSON documents; the value is a field of the JSON (dramatiq's
    `.msgs`, Bee-Queue's `jobs`)."""

    hash: str = ""

    def lookup(self, job_id: str) -> tuple[str, ...]:
        return ("HGET", self.hash, job_id)


# ------------------------------------------------------------------------------------- streams


def _stream_id(value: str) -> tuple[int, int]:
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)


def group_info(group: Any) -> dict[str, Any]:
    """One XINFO GROUPS row (a flat list, or a dict from RESP3) as a dict."""
    return group if isinstance(group, dict) else dict(zip(group[::2], group[1::2], strict=False))


def undelivered_from(groups: Any) -> str | None:
    """The earliest last-delivered id over the groups whose lag is not 0 (unknown counts as not 0): the
    entry after it is the oldest one not yet delivered to some group."""
    found: str | None = None
    for group in groups:
        info = group_info(group)
        last, lag = info.get("last-delivered-id"), info.get("lag")
        if last is not None and lag != 0 and (found is None or _stream_id(str(last)) < _stream_id(found)):
            found = str(last)
    return found


def _first_id(replies: list[Any]) -> str | None:
    entries = replies[0]
    return entries[0][0] if isinstance(entries, list) and entries else None


class XFirst(Op):
    """The id of the first entry, or None."""

    VERB = ("XRANGE",)

    def tail(self) -> tuple[str, ...]:
        return ("-", "+", "COUNT", "1")

    def result(self, reply: Any) -> Any:
        return reply[0][0] if reply else None


class XGroups(Op):
    """The XINFO GROUPS reply (a list of flat lists); [] for a missing key."""

    VERB = ("XINFO", "GROUPS")
    MISSING: ClassVar[Any] = []

    def failed(self, error: str) -> Any:
        return self.MISSING if "no such key" in error else Op.failed(self, error)

    def after(self, start: str) -> tuple[str, ...]:
        return ("XRANGE", self.key, start, "+", "COUNT", "1")


@dataclass(frozen=True, slots=True)
class XNext(XGroups):
    """The id of the first entry `group` has not been delivered (after its last-delivered-id; the first
    entry when there is no such group), or None."""

    MISSING = None
    group: str = ""

    def acl(self) -> list[tuple[str, ...]]:
        return [self.command(), self.after("(0-0")]

    def result(self, reply: Any) -> Any:
        start = next((f"({info.get('last-delivered-id')}" for info in map(group_info, reply or ())
                      if info.get("name") == self.group), "-")
        return Then([self.after(start)], _first_id)


class XUndelivered(XGroups):
    """[XINFO GROUPS reply, id of the oldest entry not yet delivered to some group or None]."""

    MISSING = [[], None]

    def acl(self) -> list[tuple[str, ...]]:
        return [self.command(), self.after("(0-0")]

    def result(self, reply: Any) -> Any:
        start = undelivered_from(reply)
        if start is None:
            return [reply, None]
        return Then([self.after("(" + start)], lambda replies: [reply, _first_id(replies)])


# ------------------------------------------------------------------------------------- sorted sets of names


def _pairs(reply: Any) -> list[tuple[str, str]]:
    return list(zip(reply[::2], reply[1::2], strict=True))


@dataclass(frozen=True, slots=True)
class ZHashes(Op):
    """[[member, score, HGETALL <hash_prefix><member> as a flat list], ...] for the `cap` highest scores
    (the freshest heartbeats), highest first."""

    VERB = ("ZREVRANGE",)
    hash_prefix: str = ""
    cap: int = 1000

    def tail(self) -> tuple[str, ...]:
        return ("0", str(self.cap - 1), "WITHSCORES")

    def acl(self) -> list[tuple[str, ...]]:
        return [self.command(), ("HGETALL", self.hash_prefix + "1")]

    def result(self, reply: Any) -> Any:
        pairs = _pairs(reply)
        if not pairs:
            return []

        def finish(hashes: list[Any]) -> Any:
            return [[m, s, h if isinstance(h, list) else []] for (m, s), h in zip(pairs, hashes, strict=True)]

        return Then([("HGETALL", self.hash_prefix + m) for m, _ in pairs], finish)


@dataclass(frozen=True, slots=True)
class ZGets(Op):
    """[[member, score, GET member or None], ...] for the first `cap` members scored `low` or more, lowest
    first (saq's live worker-info keys)."""

    VERB = ("ZRANGEBYSCORE",)
    low: str = "-inf"
    cap: int = 1000

    def tail(self) -> tuple[str, ...]:
        return (self.low, "+inf", "WITHSCORES", "LIMIT", "0", str(self.cap))

    def acl(self) -> list[tuple[str, ...]]:
        return [self.command(), ("GET", self.key + ":1")]

    def result(self, reply: Any) -> Any:
        pairs = _pairs(reply)
        if not pairs:
            return []

        def finish(values: list[Any]) -> Any:
            return [[m, s, v if isinstance(v, str) and v != TOO_BIG else None]
                    for (m, s), v in zip(pairs, values, strict=True)]

        return Then([("GET", m) for m, _ in pairs], finish)


@dataclass(frozen=True, slots=True)
class ZExists(Op):
    """[count, score or None] of the first `cap` members scored `high` or less: how many have a key
    `<key_prefix><member>`, and the score of the first that has none (arq: jobs in progress, and the
    oldest waiting job)."""

    VERB = ("ZRANGEBYSCORE",)
    high: str = "+inf"
    key_prefix: str = ""
    cap: int = 1000

    def tail(self) -> tuple[str, ...]:
        return ("-inf", self.high, "WITHSCORES", "LIMIT", "0", str(self.cap))

    def acl(self) -> list[tuple[str, ...]]:
        return [self.command(), ("EXISTS", self.key_prefix + "1")]

    def result(self, reply: Any) -> Any:
        pairs = _pairs(reply)
        if not pairs:
            return [0, None]

        def finish(flags: list[Any]) -> Any:
            waiting = [score for (_, score), flag in zip(pairs, flags, strict=True) if not flag]
            return [sum(flags), waiting[0] if waiting else None]

        return Then([("EXISTS", self.key_prefix + m) for m, _ in pairs], finish)


# ------------------------------------------------------------------------------------- many tenants


class Keys(Sequence[str]):
    """The keys of an Each (prefix + tenant + suffix), made when asked: the packed commands already hold
    them, and only a reply that needs a second look asks for its key."""

    def __init__(self, prefix: str, tenants: Sequence[str], suffix: str) -> None:
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


@dataclass(frozen=True)
class Each:
    """`op` on the key `<prefix><tenant><suffix>` of each tenant: one result per tenant, in order."""

    op: Op
    prefix: str
    suffix: str
    tenants: tuple[str, ...]

    def keys(self) -> Keys:
        return Keys(self.prefix, self.tenants, self.suffix)

    def identity(self) -> tuple[Any, ...]:
        return (self.prefix, self.suffix, self.tenants, self.op.stable())

    def acl(self) -> list[tuple[str, ...]]:
        return self.op.at(self.prefix + (self.tenants[0] if self.tenants else "") + self.suffix).acl()


AnyOp = Op | Each
