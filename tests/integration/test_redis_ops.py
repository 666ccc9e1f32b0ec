"""The op layer itself: the Lua script and the pipeline path give the same result for every op,
on a corpus of awkward items (the Lua JSON shortcut and its Python twin included)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
import redis

from exporter.sources.redis.ops import SEP, WRONGTYPE, OpRunner
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
async def runners() -> AsyncIterator[tuple[OpRunner, OpRunner]]:
    """The op runners of two real sources (batches of 7 keys, so EACH ops span several scripts)."""
    sources = [make_source(REDIS_URL, [{"layout": "rq"}], mode, batch_size=10) for mode in ("lua", "pipeline")]
    for source in sources:
        source.runner.batch_size = 7
    yield sources[0].runner, sources[1].runner
    for source in sources:
        await source.close()


async def test_head_corpus_same_on_both_paths(runners: tuple[OpRunner, OpRunner], redis_client: redis.Redis,
                                              prefix: str) -> None:
    lua, pipe = runners
    ops = []
    for i, item in enumerate(CORPUS):
        key = f"{prefix}one:{i}"
        redis_client.rpush(key, item)
        ops += [("HEAD", key, "0", fields, "3", kind) for fields in FIELDS for kind in KINDS]
    # and whole lists: malformed items before a good one, from either end
    redis_client.rpush(f"{prefix}mixed", *CORPUS)
    ops += [("HEAD", f"{prefix}mixed", index, fields, scan, kind)
            for index in ("0", "-1") for fields in FIELDS for kind in KINDS for scan in ("1", "5", "40")]
    for i, item in enumerate(TIMES):
        redis_client.rpush(f"{prefix}time:{i}", item)
        ops += [("HEAD", f"{prefix}time:{i}", "0", "ts", "3", kind) for kind in KINDS]
    redis_client.rpush(f"{prefix}times", *CORPUS, *TIMES)
    ops += [("HEAD", f"{prefix}times", index, "ts", "40", kind) for index in ("0", "-1") for kind in KINDS]
    a, b = await lua.run(ops), await pipe.run(ops)
    assert lua.used == "lua" and pipe.used == "pipeline"
    assert a == b
    found = dict(zip(ops, a, strict=True))
    assert found[("HEAD", f"{prefix}mixed", "0", "ts", "40", "num")] == ["1700000000", 0]
    assert found[("HEAD", f"{prefix}mixed", "0", "ts", "40", "iso")] == ["2023-11-14T22:13:20Z", 5]
    assert found[("HEAD", f"{prefix}mixed", "-1", "ts", "40", "num")] == ["4", 1]
    ts = {u: f"ts:{u}:{1_700_000_300.0!r}" for u in ("s", "ms", "us", "ns", "auto")}
    # from the tail: -1700000000 is never a time; 1700000000123456789 is one in ns (auto), not in us
    assert found[("HEAD", f"{prefix}times", "-1", "ts", "40", ts["auto"])] == ["1700000000123456789", 1]
    assert found[("HEAD", f"{prefix}times", "-1", "ts", "40", ts["us"])] == ["1700000000123456", 2]
    assert found[("HEAD", f"{prefix}times", "-1", "ts", "40", ts["s"])] == ["1700000300", 4]  # 301 is too far
    assert found[("HEAD", f"{prefix}times", "0", "ts", "40", ts["s"])] == ["1700000000", 0]
    single = {item: found[("HEAD", f"{prefix}time:{i}", "0", "ts", "3", ts["s"])][0] for i, item in enumerate(TIMES)}
    assert [item for item, value in single.items() if value is not None] == ['{"ts": 946684800}',
                                                                          '{"ts": 1700000300}']


async def test_every_op_same_on_both_paths(runners: tuple[OpRunner, OpRunner], redis_client: redis.Redis,
                                           prefix: str) -> None:
    lua, pipe = runners
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
    ops = [
        ("LLEN", f"{p}ids"), ("LLEN", f"{p}str"), ("ZCARD", f"{p}z"), ("SCARD", f"{p}set"), ("HLEN", f"{p}h:a"),
        ("XLEN", f"{p}s"), ("EXISTS", f"{p}str"), ("GET", f"{p}str"), ("HGET", f"{p}h:a", "f"),
        ("ZCOUNT", f"{p}z", "-inf", "1"), ("ZFIRST", f"{p}z"), ("ZFIRST", f"{p}none"), ("ZFIRST", f"{p}str"),
        ("XFIRST", f"{p}s"), ("XFIRST", f"{p}none"), ("XGROUPS", f"{p}s"), ("XGROUPS", f"{p}none"),
        ("XGROUPS", f"{p}str"), ("HGETALL", f"{p}h:a"), ("ZMEMBERS", f"{p}z", "2"),
        ("ZHASHES", f"{p}z", f"{p}h:", "2"), ("ZHASHES", f"{p}none", f"{p}h:", "2"),
        ("SMEMBERS", f"{p}set", "5"), ("SMEMBERS", f"{p}none", "5"), ("SMEMBERS", f"{p}str", "5"),
        ("HEADHASH", f"{p}ids", "0", f"{p}job:", "timestamp", "10", "num"),
        ("HEADHASH", f"{p}ids", "-1", f"{p}job:", "timestamp", "10", "num"),
        ("HEADHASH", f"{p}ids", "0", f"{p}job:", "timestamp", "10", "any"),
        ("HEADHASH", f"{p}str", "0", f"{p}job:", "timestamp", "10", "num"),
        ("EACH", "LLEN", p, ":q", SEP.join(["t1", "t2", "t3"])),
        ("EACH", "HEAD", p, ":q", SEP.join(f"t{i}" for i in range(20)), "0", "ts", "3", "num"),
        ("EACH", "LLEN", p, "", SEP.join(["ids", "str", "none"])),
        ("EACH", "LLEN", p, ":q", ""),  # no tenant at all
    ]
    a, b = await lua.run(ops), await pipe.run(ops)
    assert a == b
    got = dict(zip((op[:3] for op in ops), a, strict=False))
    assert got[("LLEN", f"{p}str")] == WRONGTYPE and got[("XGROUPS", f"{p}str")] == WRONGTYPE
    assert got[("SMEMBERS", f"{p}set", "5")] == ["m0", "m1", "m10", "m11", "m12"]
    assert [row[0] for row in got[("ZHASHES", f"{p}z", f"{p}h:")]] == ["c", "a"]  # highest scores first
    assert a[-2] == [4, WRONGTYPE, 0]
    assert a[-4] == [1, 0, 1] and a[-3][:4] == [[None, 0], ["5", 0], [None, 0], ["5", 0]] and a[-1] == []
    assert a[25:29] == [["1700000000000", 1], ["1700000000000", 2], ["soon", 0], WRONGTYPE]


async def test_head_get_and_hget_same_on_both_paths(runners: tuple[OpRunner, OpRunner], redis_client: redis.Redis,
                                                    prefix: str) -> None:
    """HEADGET (saq: ids naming JSON strings) and HEADHGET (dramatiq, Bee-Queue: ids of one hash's fields)."""
    lua, pipe = runners
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
    ops = [
        ("HEADGET", f"{p}ids", "0", f"{p}doc:", "queued", "10", "num"),
        ("HEADGET", f"{p}ids", "-1", f"{p}doc:", "queued", "10", "num"),
        ("HEADGET", f"{p}ids", "0", f"{p}doc:", "o.t", "10", "num"),
        ("HEADGET", f"{p}ids", "0", f"{p}doc:", "queued", "2", "num"),
        ("HEADHGET", f"{p}ids", "0", f"{p}msgs", "o.t", "10", "num"),
        ("HEADHGET", f"{p}ids", "-1", f"{p}msgs", "o.t", "10", "num"),
        ("HEADHGET", f"{p}ids", "0", f"{p}msgs", "o.t", "10", "any"),
        ("HEADHGET", f"{p}ids", "0", f"{p}hashlist", "o.t", "10", "num"),  # the hash is a list: no value
        ("HEADHGET", f"{p}hashlist2", "0", f"{p}msgs", "o.t", "10", "num"),  # the list is a hash
        ("HEADGET", f"{p}none", "0", f"{p}doc:", "queued", "10", "num"),
    ]
    a, b = await lua.run(ops), await pipe.run(ops)
    assert a == b
    assert a == [["1700000000123", 3], ["1700000000456", 0], ["5", 3], [None, 2], ["7", 3], ["9", 0],
                 ["x", 2], [None, 5], WRONGTYPE, [None, 0]]


async def test_zgets_same_on_both_paths(runners: tuple[OpRunner, OpRunner], redis_client: redis.Redis,
                                       prefix: str) -> None:
    """ZGETS: the strings a zset's members name, for members scored `min` or more (saq's worker info)."""
    lua, pipe = runners
    p = prefix
    redis_client.zadd(f"{p}stats", {f"{p}w:old": 10, f"{p}w:a": 100, f"{p}w:gone": 200, f"{p}w:h": 300,
                                    f"{p}w:b": 400})
    redis_client.set(f"{p}w:a", '{"n": 1}')
    redis_client.set(f"{p}w:b", '{"n": 2}')
    redis_client.hset(f"{p}w:h", "f", "v")
    redis_client.set(f"{p}str", "x")
    ops = [("ZGETS", f"{p}stats", "100", "10"), ("ZGETS", f"{p}stats", "100", "2"),
           ("ZGETS", f"{p}none", "0", "10"), ("ZGETS", f"{p}str", "0", "10")]
    a, b = await lua.run(ops), await pipe.run(ops)
    assert a == b
    assert a == [[[f"{p}w:a", "100", '{"n": 1}'], [f"{p}w:gone", "200", None], [f"{p}w:h", "300", None],
                  [f"{p}w:b", "400", '{"n": 2}']],
                 [[f"{p}w:a", "100", '{"n": 1}'], [f"{p}w:gone", "200", None]], [], WRONGTYPE]


async def test_zexists_same_on_both_paths(runners: tuple[OpRunner, OpRunner], redis_client: redis.Redis,
                                         prefix: str) -> None:
    """ZEXISTS: how many of a zset's first members (by score, up to `max`) have a key of their own, and
    the score of the first that has none."""
    lua, pipe = runners
    p = prefix
    redis_client.zadd(f"{p}q", {"a": 1, "b": 2, "c": 3, "d": 4, "e": 50})
    for member in ("a", "c", "e"):
        redis_client.set(f"{p}ip:{member}", "1")
    redis_client.set(f"{p}str", "x")
    ops = [("ZEXISTS", f"{p}q", "10", f"{p}ip:", "100"), ("ZEXISTS", f"{p}q", "100", f"{p}ip:", "100"),
           ("ZEXISTS", f"{p}q", "10", f"{p}ip:", "2"), ("ZEXISTS", f"{p}q", "0", f"{p}ip:", "100"),
           ("ZEXISTS", f"{p}none", "10", f"{p}ip:", "100"), ("ZEXISTS", f"{p}str", "10", f"{p}ip:", "100")]
    a, b = await lua.run(ops), await pipe.run(ops)
    assert a == b
    assert a == [[2, "2"], [3, "2"], [1, "2"], [0, None], [0, None], WRONGTYPE]


async def test_xnext_same_on_both_paths(runners: tuple[OpRunner, OpRunner], redis_client: redis.Redis,
                                       prefix: str) -> None:
    """XNEXT: the first entry a consumer group has not been delivered (taskiq's oldest waiting task)."""
    lua, pipe = runners
    p = prefix
    for i in range(1, 5):
        redis_client.xadd(f"{p}s", {"data": "x"}, id=f"{i}000-0")
    redis_client.xgroup_create(f"{p}s", "g", id="0")
    redis_client.xgroup_create(f"{p}s", "done", id="$")
    redis_client.xreadgroup("g", "c", {f"{p}s": ">"}, count=2)
    redis_client.set(f"{p}str", "x")
    ops = [("XNEXT", f"{p}s", "g"), ("XNEXT", f"{p}s", "done"), ("XNEXT", f"{p}s", "nogroup"),
           ("XNEXT", f"{p}none", "g"), ("XNEXT", f"{p}str", "g")]
    a, b = await lua.run(ops), await pipe.run(ops)
    assert a == b
    assert a == ["3000-0", None, "1000-0", None, WRONGTYPE]


async def test_only_ops_for_zero_tenants(runners: tuple[OpRunner, OpRunner]) -> None:
    for runner in runners:
        assert await runner.run([("EACH", "LLEN", "x:", ":q", "")]) == [[]]


@pytest.mark.parametrize("mode", ["lua", "pipeline"])
async def test_database_number_in_url(mode: str, redis_server: RedisServer) -> None:
    admin = redis.Redis.from_url(redis_server.url.removesuffix("/0") + "/3", decode_responses=True)
    admin.rpush("q", json.dumps({"ts": NOW - 7}), json.dumps({"ts": NOW - 9}))
    reading = await collect(redis_server.url.removesuffix("/0") + "/3",
                            [{"layout": "list", "name": "q", "key": "q", "timestamp_field": "ts"}], mode)
    assert [(q.depth, q.oldest_timestamp) for q in reading.queues] == [(2, NOW - 7)]
    admin.close()
