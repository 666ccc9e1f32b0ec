"""Pure parsing of the Redis source on literal inputs: timestamps, JSON fields, Horizon's wait, tenants."""

from __future__ import annotations

import json

import pytest

from exporter.sources.redis.items import pick, valid
from exporter.sources.redis.layouts.base import Parsed, head_time
from exporter.sources.redis.layouts.horizon import horizon_wait
from exporter.sources.redis.ops import SMembers
from exporter.sources.redis.source import Tenants, filter_tenants


def test_head_time_counts_malformed() -> None:
    out = Parsed()
    assert head_time(["12", 2], "s", out) == 12.0 and out.malformed == 2
    assert head_time([None, 3], "s", out) is None and out.malformed == 5
    assert head_time("!WRONGTYPE", "s", out) is None and out.malformed == 6
    assert head_time(["1e999", 0], "s", out) is None and out.malformed == 7


@pytest.mark.parametrize(("item", "fields", "expected"), [
    ('{"ts": 1700000000}', "ts", "1700000000"),
    ('{"ts": 1700000000.25, "x": 1}', "ts", "1700000000.25"),
    ('{"ts":"1700000000.1234"}', "ts", "1700000000.1234"),
    ('{"a": {"b": 5}}', "a.b", "5"),
    ('{"pushedAt": "12.5", "createdAt": 10}', "createdAt|pushedAt", "10"),
    ('{"pushedAt": "12.5"}', "createdAt|pushedAt", "12.5"),
    ('{"createdAt": "", "pushedAt": "7"}', "createdAt|pushedAt", "7"),
    ('{"ts": true}', "ts", None),
    ('{"ts": null}', "ts", None),
    ('{"ts": 1.5e3}', "ts", "1.5e3"),                # flat JSON: the number's own text
    ('{"n": {"x": 1}, "ts": 1.5e3}', "ts", "1500"),  # nested: decoded, printed like cjson (%.17g)
    ("[1, 2]", "ts", None),
    ("not json", "ts", None),
    ("raw", "", "raw"),
])
def test_pick(item: str, fields: str, expected: str | None) -> None:
    assert pick(item, fields) == expected


def test_pick_fast_path_agrees_with_json_on_flat_objects() -> None:
    """The pattern shortcut (mirrored from the Lua script) must find what a JSON decoder finds."""
    docs = [
        {"ts": 1_700_000_000, "id": "a"}, {"id": "b, \"ts\": 5", "ts": 17}, {"tags": ["x", "ts"], "ts": 3.25},
        {"ts": "2023-11-14T22:13:20Z"}, {"t": 1, "ts": -4}, {"ts": 1e-7},
    ]
    for doc in docs:
        for text in (json.dumps(doc), json.dumps(doc, separators=(",", ":")), json.dumps(doc, indent=2)):
            assert float(pick(text, "ts")) == float(doc["ts"]) if not isinstance(doc["ts"], str) \
                else pick(text, "ts") == doc["ts"]


@pytest.mark.parametrize(("value", "kind", "ok"), [
    ("1700000000", "num", True), ("-1.5", "num", True), ("1.7e+09", "num", True), ("12.", "num", True),
    ("inf", "num", False), ("nan", "num", False), ("0x10", "num", False), (" 12", "num", False),
    ("1_000", "num", False), ("12\n", "num", False), ("yesterday", "num", False),
    ("2023-11-14T22:13:20.5Z", "iso", True), ("2023-11-14 22:13", "iso", True), ("14/11/2023", "iso", False),
    ("anything", "any", True),
])
def test_valid(value: str, kind: str, ok: bool) -> None:
    assert valid(value, kind) is ok


@pytest.mark.parametrize(("ready", "runtime_ms", "processes", "seconds"), [
    (7, 1234.5, 3, 3),      # 2880.5 ms
    (1, 400, 1, 0),
    (4, 2500, 0, 10),       # no processes: not divided
    (3, 500, 1, 2),         # 1.5 s: PHP round() goes half away from zero
    (0, 9999, 2, 0),
])
def test_horizon_wait(ready: int, runtime_ms: float, processes: int, seconds: int) -> None:
    assert horizon_wait(ready, runtime_ms, processes) == seconds


def test_filter_tenants() -> None:
    spec = Tenants(static=[], include="^t", exclude="-test$")
    ids = ["t1", "t2-test", "x1", "", "t\x1f3", "t4"]
    assert filter_tenants(ids, spec) == ["t1", "t\x1f3", "t4"]  # an empty id is no tenant; any other is
    shards = [filter_tenants([f"t{i}" for i in range(100)], Tenants(static=[]), (i, 3)) for i in range(3)]
    assert sorted(t for shard in shards for t in shard) == sorted(f"t{i}" for i in range(100))
    assert all(shards) and not set(shards[0]) & set(shards[1])


def test_smembers_sorted_and_capped() -> None:
    assert SMembers("k", cap=2).result({"c", "a", "b"}) == ["a", "b"]
    assert SMembers("k", cap=2).result(None) == []
    assert SMembers("k", cap=2).failed("WRONGTYPE Operation against a key") == "!WRONGTYPE"
