"""The op layer itself, on a real Redis: every op's result on a corpus of awkward items (the JSON
shortcut included), head windows from either end, and the reuse of unchanged heads between runs.

These values are the ones the removed Lua path was held to (the parity tests it had): one read path now.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
import redis

from exporter.sources.redis.items import WRONGTYPE
from exporter.sources.redis.ops import (
    Each,
    Exists,
    Get,
    Head,
    HeadGet,
    HeadHash,
    HeadHGet,
    HGet,
    HGetAll,
    Hlen,
    Llen,
    Op,
    Scard,
    SMembers,
    XFirst,
    XGroups,
    Xlen,
    XNext,
    Zcard,
    ZCount,
    ZExists,
    ZFirst,
    ZGets,
    ZHashes,
    ZMembers,
)
from exporter.sources.redis.runner import OpRunner
from tests.conftest import REDIS_URL
from tests.support.redis_libs import NOW, collect, make_source
from tests.support.servers import RedisServer

CORPUS = [
    '{"ts": 1700000000}', '{"ts":1700000000.125,"x":"y"}', '{ "ts" : "1700000000.5" }', '{"ts": 1.7e9}',
    '{"ts": -3}', '{"ts": "2023-11-14T22:13:20Z"}', '{"ts": "2023-11-14 22:13"}',
    '{"ts": "yesterday"}', '{"ts": ""}', '{"ts": null}', '{"ts": true}', '{"ts": [1]}', '{"ts": {"v": 1}}',
    '{"a": {"b": 1}, "ts": 17}', '{"ts": 5, broken', '{"ts": 1e999}', '{"ts": "1e5"}', '{"ts": "\\u0031"}',
    '{"note": "\\"ts\\": 9", "ts": 10}', '{"t\\"s": 1, "ts": 2}', '{"TS": 1}', '[{"ts": 1}]', '"ts"', "42", "",
    "not json", '{"createdAt": 1700000000, "pushedAt": "1700000001.0000"}', '{"pushedAt": "1700000001.2500"}',
    '{"meta": {"at": 1700000000123}}', '{"meta": {"at": "x"}, "ts": 4}', '{"ts": "  7"}',
]
# Times for the plausibility kinds (with the corpus above): out of range, at the bounds, in each unit.
TIMES = ['{"ts": 1e300}', '{"ts": "NaN"}', '{"ts": 946684799}', '{"ts": 946684800}', '{"ts": 1700000300}',
         '{"ts": 1700000301}', '{"ts": 1700000000123456}', '{"ts": 1700000000123456789}', '{"ts": -1700000000}']
# Not in the corpus: invalid JSON numbers that Redis's cjson accepts and Python's json rejects (12.,
# 0x10, +5, 012, inf, Infinity): no library writes them; docs/sources/redis.md names the difference.
FIELDS = ["ts", "createdAt|pushedAt", "pushedAt|createdAt", "meta.at", "meta.at|ts", ""]
# ts kinds: plausible times up to 1700000300 (NOW + 300 s), in each unit; the bounds are inclusive
KINDS = ["num", "iso", "any", *(f"ts:{u}:{1_700_000_300.0!r}" for u in ("s", "ms", "us", "ns", "auto"))]


@pytest.fixture
async def runner() -> AsyncIterator[OpRunner]:
    """The op runner of a real source."""
    source = make_source(REDIS_URL, [{"layout": "rq"}])
    yield source.runner
    await source.close()


def head(key: str, index: str, fields: str, scan: str, kind: str) -> Head:
    return Head(key, from_tail=index == "-1", fields=fields, scan=int(scan), kind=kind)


async def test_head_corpus(runner: OpRunner, redis_client: redis.Redis, prefix: str) -> None:
    ops: list[Op] = []
    for i, item in enumerate(CORPUS):
        key = f"{prefix}one:{i}"
        redis_client.rpush(key, item)
        ops += [head(key, "0", fields, "3", kind) for fields in FIELDS for kind in KINDS]
    # and whole lists: malformed items before a good one, from either end
    redis_client.rpush(f"{prefix}mixed", *CORPUS)
    ops += [head(f"{prefix}mixed", index, fields, scan, kind)
            for index in ("0", "-1") for fields in FIELDS for kind in KINDS for scan in ("1", "5", "40")]
    for i, item in enumerate(TIMES):
        redis_client.rpush(f"{prefix}time:{i}", item)
        ops += [head(f"{prefix}time:{i}", "0", "ts", "3", kind) for kind in KINDS]
    redis_client.rpush(f"{prefix}times", *CORPUS, *TIMES)
    ops += [head(f"{prefix}times", index, "ts", "40", kind) for index in ("0", "-1") for kind in KINDS]
    a = await runner.run(ops)
    found = dict(zip(ops, a, strict=True))
    assert found[head(f"{prefix}mixed", "0", "ts", "40", "num")] == ["1700000000", 0]
    assert found[head(f"{prefix}mixed", "0", "ts", "40", "iso")] == ["2023-11-14T22:13:20Z", 5]
    assert found[head(f"{prefix}mixed", "-1", "ts", "40", "num")] == ["4", 1]
    ts = {u: f"ts:{u}:{1_700_000_300.0!r}" for u in ("s", "ms", "us", "ns", "auto")}
    # from the tail: -1700000000 is never a time; 1700000000123456789 is one in ns (auto), not in us
    assert found[head(f"{prefix}times", "-1", "ts", "40", ts["auto"])] == ["1700000000123456789", 1]
    assert found[head(f"{prefix}times", "-1", "ts", "40", ts["us"])] == ["1700000000123456", 2]
    assert found[head(f"{prefix}times", "-1", "ts", "40", ts["s"])] == ["1700000300", 4]  # 301 is too far
    assert found[head(f"{prefix}times", "0", "ts", "40", ts["s"])] == ["1700000000", 0]
    single = {item: found[head(f"{prefix}time:{i}", "0", "ts", "3", ts["s"])][0] for i, item in enumerate(TIMES)}
    assert [item for item, value in single.items() if value is not None] == ['{"ts": 946684800}',
                                                                          '{"ts": 1700000300}']


async def test_every_op(runner: OpRunner, redis_client: redis.Redis, prefix: str) -> None:
    p = prefix
    redis_client.rpush(f"{p}ids", "1", "2", "3", "nohash")
    redis_client.hset(f"{p}job:2", "timestamp", "1700000000000")
    redis_client.hset(f"{p}job:1", "timestamp", "soon")
    redis_client.zadd(f"{p}z", {"a": 1.5, "b": 0.1, "c": 1e20})
    redis_client.sadd(f"{p}set", *[f"m{i}" for i in range(30)])
    redis_client.hset(f"{p}h:a", mapping={"f": "1"})
    redis_client.xadd(f"{p}s", {"k": "v"}, id="5-1")
    redis_client.xgroup_create(f"{p}s", "g", id="0")
    redis_client.set(f"{p}str", "x")
    for t in ("t1", "t3"):
        redis_client.rpush(f"{p}{t}:q", json.dumps({"ts": 5}))
    def hh(key: str, index: str, kind: str) -> HeadHash:
        return HeadHash(key, from_tail=index == "-1", hash_prefix=f"{p}job:", fields="timestamp", scan=10, kind=kind)

    ops = [
        Llen(f"{p}ids"), Llen(f"{p}str"), Zcard(f"{p}z"), Scard(f"{p}set"), Hlen(f"{p}h:a"),
        Xlen(f"{p}s"), Exists(f"{p}str"), Get(f"{p}str"), HGet(f"{p}h:a", field="f"),
        ZCount(f"{p}z", low="-inf", high="1"), ZFirst(f"{p}z"), ZFirst(f"{p}none"), ZFirst(f"{p}str"),
        XFirst(f"{p}s"), XFirst(f"{p}none"), XGroups(f"{p}s"), XGroups(f"{p}none"),
        XGroups(f"{p}str"), HGetAll(f"{p}h:a"), ZMembers(f"{p}z", cap=2),
        ZHashes(f"{p}z", hash_prefix=f"{p}h:", cap=2), ZHashes(f"{p}none", hash_prefix=f"{p}h:", cap=2),
        SMembers(f"{p}set", cap=5), SMembers(f"{p}none", cap=5), SMembers(f"{p}str", cap=5),
        hh(f"{p}ids", "0", "num"), hh(f"{p}ids", "-1", "num"), hh(f"{p}ids", "0", "any"), hh(f"{p}str", "0", "num"),
        Each(Llen(""), p, ":q", ("t1", "t2", "t3")),
        Each(head("", "0", "ts", "3", "num"), p, ":q", tuple(f"t{i}" for i in range(20))),
        Each(Llen(""), p, "", ("ids", "str", "none")),
        Each(Llen(""), p, ":q", ()),  # no tenant at all
    ]
    a = await runner.run(ops)
    got = dict(zip(ops, a, strict=True))
    assert got[Llen(f"{p}str")] == WRONGTYPE and got[XGroups(f"{p}str")] == WRONGTYPE
    assert got[SMembers(f"{p}set", cap=5)] == ["m0", "m1", "m10", "m11", "m12"]
    assert [row[0] for row in got[ZHashes(f"{p}z", hash_prefix=f"{p}h:", cap=2)]] == ["c", "a"]  # highest first
    assert got[ZFirst(f"{p}z")][0] == "b" and got[ZFirst(f"{p}none")] == []
    assert got[XFirst(f"{p}s")] == "5-1" and got[XGroups(f"{p}none")] == []
    assert a[-2] == [4, WRONGTYPE, 0]
    assert a[-4] == [1, 0, 1] and a[-3][:4] == [[None, 0], ["5", 0], [None, 0], ["5", 0]] and a[-1] == []
    assert a[25:29] == [["1700000000000", 1], ["1700000000000", 2], ["soon", 0], WRONGTYPE]


async def test_head_get_and_hget(runner: OpRunner, redis_client: redis.Redis, prefix: str) -> None:
    """HeadGet (saq: ids naming JSON strings) and HeadHGet (dramatiq, Bee-Queue: ids of one hash's fields)."""
    p = prefix
    redis_client.rpush(f"{p}ids", "a", "b", "c", "d", "e")
    # a: no document, b: not JSON, c: no usable field, d: nested field, e: plain field
    redis_client.set(f"{p}doc:b", "not json")
    redis_client.set(f"{p}doc:c", json.dumps({"queued": "soon"}))
    redis_client.set(f"{p}doc:d", json.dumps({"queued": 1700000000123, "o": {"t": 5}}))
    redis_client.set(f"{p}doc:e", json.dumps({"queued": 1700000000456}))
    redis_client.hset(f"{p}msgs", mapping={"b": "[1]", "c": json.dumps({"o": {"t": "x"}}),
                                           "d": json.dumps({"o": {"t": 7}}), "e": json.dumps({"o": {"t": 9}})})
    redis_client.rpush(f"{p}hashlist", "x")
    redis_client.hset(f"{p}hashlist2", "f", "v")
    def get(key: str, tail: bool, fields: str, scan: int = 10) -> HeadGet:
        return HeadGet(key, from_tail=tail, key_prefix=f"{p}doc:", fields=fields, scan=scan, kind="num")

    def hget(key: str, tail: bool, hash: str, kind: str = "num") -> HeadHGet:
        return HeadHGet(key, from_tail=tail, hash=hash, fields="o.t", scan=10, kind=kind)

    ops = [
        get(f"{p}ids", False, "queued"), get(f"{p}ids", True, "queued"), get(f"{p}ids", False, "o.t"),
        get(f"{p}ids", False, "queued", 2),
        hget(f"{p}ids", False, f"{p}msgs"), hget(f"{p}ids", True, f"{p}msgs"),
        hget(f"{p}ids", False, f"{p}msgs", "any"),
        hget(f"{p}ids", False, f"{p}hashlist"),  # the hash is a list: no value
        hget(f"{p}hashlist2", False, f"{p}msgs"),  # the list is a hash
        get(f"{p}none", False, "queued"),
    ]
    a = await runner.run(ops)
    assert a == [["1700000000123", 3], ["1700000000456", 0], ["5", 3], [None, 2], ["7", 3], ["9", 0],
                 ["x", 2], [None, 5], WRONGTYPE, [None, 0]]


async def test_zgets(runner: OpRunner, redis_client: redis.Redis, prefix: str) -> None:
    """ZGets: the strings a zset's members name, for members scored `low` or more (saq's worker info)."""
    p = prefix
    redis_client.zadd(f"{p}stats", {f"{p}w:old": 10, f"{p}w:a": 100, f"{p}w:gone": 200, f"{p}w:h": 300,
                                    f"{p}w:b": 400})
    redis_client.set(f"{p}w:a", '{"n": 1}')
    redis_client.set(f"{p}w:b", '{"n": 2}')
    redis_client.hset(f"{p}w:h", "f", "v")
    redis_client.set(f"{p}str", "x")
    ops = [ZGets(f"{p}stats", low="100", cap=10), ZGets(f"{p}stats", low="100", cap=2),
           ZGets(f"{p}none", low="0", cap=10), ZGets(f"{p}str", low="0", cap=10)]
    a = await runner.run(ops)
    assert a == [[[f"{p}w:a", "100", '{"n": 1}'], [f"{p}w:gone", "200", None], [f"{p}w:h", "300", None],
                  [f"{p}w:b", "400", '{"n": 2}']],
                 [[f"{p}w:a", "100", '{"n": 1}'], [f"{p}w:gone", "200", None]], [], WRONGTYPE]


async def test_zexists(runner: OpRunner, redis_client: redis.Redis, prefix: str) -> None:
    """ZExists: how many of a zset's first members (by score, up to `max`) have a key of their own, and
    the score of the first that has none."""
    p = prefix
    redis_client.zadd(f"{p}q", {"a": 1, "b": 2, "c": 3, "d": 4, "e": 50})
    for member in ("a", "c", "e"):
        redis_client.set(f"{p}ip:{member}", "1")
    redis_client.set(f"{p}str", "x")
    def ze(key: str, high: str, cap: int = 100) -> ZExists:
        return ZExists(key, high=high, key_prefix=f"{p}ip:", cap=cap)

    ops = [ze(f"{p}q", "10"), ze(f"{p}q", "100"), ze(f"{p}q", "10", 2), ze(f"{p}q", "0"), ze(f"{p}none", "10"),
           ze(f"{p}str", "10")]
    a = await runner.run(ops)
    assert a == [[2, "2"], [3, "2"], [1, "2"], [0, None], [0, None], WRONGTYPE]


async def test_xnext(runner: OpRunner, redis_client: redis.Redis, prefix: str) -> None:
    """XNext: the first entry a consumer group has not been delivered (taskiq's oldest waiting task)."""
    p = prefix
    for i in range(1, 5):
        redis_client.xadd(f"{p}s", {"data": "x"}, id=f"{i}000-0")
    redis_client.xgroup_create(f"{p}s", "g", id="0")
    redis_client.xgroup_create(f"{p}s", "done", id="$")
    redis_client.xreadgroup("g", "c", {f"{p}s": ">"}, count=2)
    redis_client.set(f"{p}str", "x")
    ops = [XNext(f"{p}s", group="g"), XNext(f"{p}s", group="done"), XNext(f"{p}s", group="nogroup"),
           XNext(f"{p}none", group="g"), XNext(f"{p}str", group="g")]
    a = await runner.run(ops)
    assert a == ["3000-0", None, "1000-0", None, WRONGTYPE]


async def test_only_ops_for_zero_tenants(runner: OpRunner) -> None:
    assert await runner.run([Each(Llen(""), "x:", ":q", ())]) == [[]]


async def test_database_number_in_url(redis_server: RedisServer) -> None:
    admin = redis.Redis.from_url(redis_server.url.removesuffix("/0") + "/3", decode_responses=True)
    admin.rpush("q", json.dumps({"ts": NOW - 7}), json.dumps({"ts": NOW - 9}))
    reading = await collect(redis_server.url.removesuffix("/0") + "/3",
                            [{"layout": "list", "name": "q", "key": "q", "timestamp_field": "ts"}])
    assert [(q.depth, q.oldest_timestamp) for q in reading.queues] == [(2, NOW - 7)]
    admin.close()


async def test_repeated_runs_follow_every_change(runner: OpRunner, redis_client: redis.Redis, prefix: str) -> None:
    """The runner reuses packed commands and unchanged head items between runs: each run still answers
    what Redis holds then (what a fresh runner reads), unusable heads included every time."""
    fresh = make_source(REDIS_URL, [{"layout": "rq"}])
    pipe = runner
    p = prefix
    tenants = [f"t{i}" for i in range(12)]
    for i, t in enumerate(tenants):
        redis_client.rpush(f"{p}{t}:q", json.dumps({"ts": 100 + i}), json.dumps({"ts": 900}))
    redis_client.rpush(f"{p}t3:q", "x")  # tail only: the head stays usable
    redis_client.delete(f"{p}t5:q")
    redis_client.rpush(f"{p}t5:q", "broken", json.dumps({"ts": 7}))  # needs the window every time
    ops: list[Op | Each] = [Each(Llen(""), p, ":q", tuple(tenants)),
                            Each(head("", "0", "ts", "3", "num"), p, ":q", tuple(tenants))]
    first = await pipe.run(ops)
    assert first == await OpRunner(fresh.wire).run(ops)
    assert first[1][5] == ["7", 1] and first[1][0] == ["100", 0]
    again = await pipe.run(ops)
    assert again == first and again[1][5] == ["7", 1]  # the malformed head counts again
    redis_client.lpop(f"{p}t0:q")  # the head changes: 900 now
    redis_client.lpush(f"{p}t1:q", "junk")  # an unusable head in front of a reused one
    redis_client.lset(f"{p}t5:q", 1, json.dumps({"ts": 8}))  # behind the same unusable head
    redis_client.delete(f"{p}t2:q")
    changed = await pipe.run(ops)
    assert changed == await OpRunner(fresh.wire).run(ops)
    assert changed[0][:3] == [1, 3, 0]
    assert changed[1][:3] == [["900", 0], ["101", 1], [None, 0]] and changed[1][5] == ["8", 1]
    fewer: list[Op | Each] = [Each(head("", "0", "ts", "3", "num"), p, ":q", tuple(tenants[1:]))]
    assert await pipe.run(fewer) == await OpRunner(fresh.wire).run(fewer) == [changed[1][1:]]
    await fresh.close()
