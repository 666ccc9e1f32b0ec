"""Tenants through `{tenant}` key templates: static lists, bounded SCAN discovery, include/exclude.

Discovery runs on a redis-server of the test's own, so `INFO commandstats` shows exactly which
commands the exporter sent: SCAN, never KEYS.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace

import pytest
import redis

from exporter.metrics import Renderer
from exporter.model import Reading, SourceStatus
from exporter.sources.redis import source as source_module
from exporter.sources.redis.items import MAX_ITEM
from tests.conftest import REDIS_URL
from tests.support.redis_libs import NOW, collect, comparable, make_source, samples_of, seed_laravel
from tests.support.servers import RedisServer


def commandstats(conn: redis.Redis) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in conn.info("commandstats").items()}


async def test_static_tenants_include_exclude(redis_client: redis.Redis, prefix: str) -> None:
    for tenant, ages in {"acme": [300, 20], "globex": [45], "initech": [], "test-1": [5]}.items():
        for age in ages:
            redis_client.rpush(f"{prefix}tenant_{tenant}:queues:events", json.dumps({"ts": NOW - age}))
    queues = [{"layout": "list", "name": "events", "key": f"{prefix}tenant_{{tenant}}:queues:events",
               "timestamp_field": "ts"}]
    tenants = {"static": ["acme", "globex", "initech", "test-1", "umbrella"], "exclude": "^test-"}
    reading = await collect(REDIS_URL, queues, tenants=tenants)
    got = {q.tenant: (q.depth, q.oldest_timestamp) for q in reading.queues}
    assert got == {"acme": (2, NOW - 300), "globex": (1, NOW - 45), "initech": (0, None), "umbrella": (0, None)}
    assert samples_of(reading, "jobqueue_tenants") == {(): 4}
    assert reading.details["tenants"] == ["acme", "globex", "initech", "umbrella"]
    included = await collect(REDIS_URL, queues, tenants={**tenants, "include": "^(acme|test-1)$"})
    assert [q.tenant for q in included.queues] == ["acme"]


async def test_many_tenants_across_batches(redis_client: redis.Redis, prefix: str) -> None:
    ids = [f"t{i:03d}" for i in range(45)]
    for i, tenant in enumerate(ids):
        for j in range(i % 4):
            redis_client.rpush(f"{prefix}{tenant}:q", json.dumps({"ts": NOW - 100 * (i + 1) + j}))
    queues = [{"layout": "list", "name": "q", "key": f"{prefix}{{tenant}}:q", "timestamp_field": "ts"},
              {"layout": "laravel", "prefix": f"{prefix}{{tenant}}_database_", "queues": ["default"]}]
    seed_laravel(redis_client, f"{prefix}t007_database_", "default", [int(NOW) - 70], delayed=1, reserved=0)
    extra = {"tenants": {"static": ids}, "batch_size": 10}
    reading = await collect(REDIS_URL, queues, **extra)
    lists = {q.tenant: (q.depth, q.oldest_timestamp) for q in reading.queues if q.queue == "q"}
    assert lists == {t: (i % 4, NOW - 100 * (i + 1) if i % 4 else None) for i, t in enumerate(ids)}
    laravel = {q.tenant: (q.depth, q.oldest_timestamp) for q in reading.queues if q.queue == "default"}
    assert laravel["t007"] == (1, NOW - 70) and laravel["t008"] == (0, None) and len(laravel) == 45


async def test_scan_discovery_cap_and_never_keys(redis_server: RedisServer) -> None:
    admin = redis.Redis.from_url(redis_server.url, decode_responses=True)
    for i in range(7):
        admin.rpush(f"tenant_{i}:queues:events", json.dumps({"ts": NOW - i}))
    admin.set("unrelated", "1")
    admin.config_resetstat()
    queues = [{"layout": "list", "name": "events", "key": "tenant_{tenant}:queues:events", "timestamp_field": "ts"}]
    scan = {"match": "tenant_*:queues:events", "regex": "^tenant_(?P<tenant>[^:]+):", "count": 10}
    capped = await collect(redis_server.url, queues, tenants={"scan": {**scan, "cap": 3}})
    assert {q.tenant: q.depth for q in capped.queues} == {"0": 1, "1": 1, "2": 1}
    assert samples_of(capped, "jobqueue_tenants") == {(): 3}
    every = await collect(redis_server.url, queues, tenants={"scan": scan, "exclude": "^[56]$"})
    assert {q.tenant: q.oldest_timestamp for q in every.queues} == {str(i): NOW - i for i in range(5)}
    stats = commandstats(admin)
    assert stats["scan"] >= 2 and "keys" not in stats
    admin.close()


async def test_a_tenant_id_with_control_characters_is_read_not_dropped(redis_server: RedisServer) -> None:
    """A key name may hold any byte; a tenant whose id has a unit separator (\x1f, once the Lua
    script's field separator), a tab or a quote is a tenant like any other, rendered escaped."""
    admin = redis.Redis.from_url(redis_server.url, decode_responses=True)
    odd = ["a\x1fb", "tab\there", 'say "hi"', "plain"]
    for i, tenant in enumerate(odd):
        for _ in range(i + 1):
            admin.rpush(f"tenant_{tenant}:queues:events", json.dumps({"ts": NOW - 10 * (i + 1)}))
    queues = [{"layout": "list", "name": "events", "key": "tenant_{tenant}:queues:events", "timestamp_field": "ts"}]
    scan = {"match": "tenant_*:queues:events", "regex": "^tenant_(?P<tenant>[^:]+):"}
    reading = await collect(redis_server.url, queues, tenants={"scan": scan})
    assert {q.tenant: (q.depth, q.oldest_timestamp) for q in reading.queues} == {
        t: (i + 1, NOW - 10 * (i + 1)) for i, t in enumerate(odd)}
    assert samples_of(reading, "jobqueue_tenants") == {(): 4}
    renderer = Renderer()
    status = SourceStatus("cache", "redis", True, NOW, 0.01, NOW)
    text = b"".join(renderer.source(status, reading, {}, 15.0).values()).decode()
    assert 'jobqueue_depth{source="cache",tenant="a\x1fb",queue="events"} 1' in text
    assert 'jobqueue_depth{source="cache",tenant="say \\"hi\\"",queue="events"} 3' in text
    admin.close()


async def test_a_key_that_is_not_utf8_is_skipped_and_said_once(redis_server: RedisServer,
                                                               caplog: pytest.LogCaptureFixture,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A label value must be UTF-8, so a tenant id that is not cannot be exported. Decoded with
    replacement it became a tenant "\ufffd" read at depth 0 while its queue held jobs; now such keys
    are skipped, and one warning per SCAN pass (rate limited) says how many that pass skipped and
    shows one. (It warned on the first key with skipped=1, and added the rest, again every pass, to
    a count said much later or never.)"""
    admin = redis.Redis.from_url(redis_server.url)
    admin.rpush(b"t_a:q", json.dumps({"ts": NOW - 5}))
    admin.rpush(b"t_\xff:q", json.dumps({"ts": NOW - 30}), json.dumps({"ts": NOW - 20}))
    admin.rpush(b"t_\xfe\xfe:q", json.dumps({"ts": NOW - 40}))
    queues = [{"layout": "list", "name": "q", "key": "t_{tenant}:q", "timestamp_field": "ts"}]
    scan = {"match": "t_*:q", "regex": "^t_(?P<tenant>[^:]+):"}
    with caplog.at_level(logging.WARNING, logger="jobqueue.redis"):
        reading = await collect(redis_server.url, queues, tenants={"scan": scan})
    assert {q.tenant: (q.depth, q.oldest_timestamp) for q in reading.queues} == {"a": (1, NOW - 5)}
    assert samples_of(reading, "jobqueue_tenants") == {(): 1}
    (line,) = [r for r in caplog.records if r.getMessage() == "SCAN keys not UTF-8 skipped"]
    assert line.__dict__["source"] == "r"
    assert line.__dict__["skipped"] == 2
    assert line.__dict__["example"] in (repr(b"t_\xff:q"), repr(b"t_\xfe\xfe:q"))
    # without the rate limit, every pass says its own total: the same keys are not added up again
    monkeypatch.setattr(source_module, "SKIPPED_LOG_EVERY", 0.0)
    caplog.clear()
    source = make_source(redis_server.url, queues, tenants={"scan": scan, "refresh": 0.001})
    try:
        with caplog.at_level(logging.WARNING, logger="jobqueue.redis"):
            for _ in range(3):
                await source.collect()
                await asyncio.sleep(0.01)  # past `refresh`: the next collection discovers again
    finally:
        await source.close()
    said = [r.__dict__["skipped"] for r in caplog.records if r.getMessage() == "SCAN keys not UTF-8 skipped"]
    assert said == [2, 2, 2]
    admin.close()


async def test_a_key_name_over_1_mib_is_no_tenant(redis_client: redis.Redis, prefix: str,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """The lean connection hands a value over 1 MiB as the TOO_BIG marker text, and a SCAN key
    is such a value too: a loose tenant regex (here: the last segment) made the marker's text a
    tenant " value over 1 MiB, not read". Such a key is skipped and said, as one that is not UTF-8."""
    huge = f"{prefix}{'x' * (MAX_ITEM + MAX_ITEM // 10)}"  # a 1.1 MiB key name (Redis allows 512 MB)
    redis_client.rpush(f"{prefix}acme", json.dumps({"ts": NOW - 5}))
    redis_client.set(huge, "1")
    try:
        queues = [{"layout": "list", "name": "q", "key": f"{prefix}{{tenant}}", "timestamp_field": "ts"}]
        scan = {"match": f"{prefix}*", "regex": "(?P<tenant>[^:]+)$"}
        with caplog.at_level(logging.WARNING, logger="jobqueue.redis"):
            reading = await collect(REDIS_URL, queues, tenants={"scan": scan})
    finally:
        redis_client.delete(huge)
    assert {q.tenant: q.depth for q in reading.queues} == {"acme": 1}
    assert reading.details["tenants"] == ["acme"]
    (line,) = [r for r in caplog.records if r.getMessage() == "SCAN keys over 1 MiB skipped"]
    assert (line.__dict__["source"], line.__dict__["skipped"]) == ("r", 1)


async def test_scan_finds_no_tenant(redis_server: RedisServer) -> None:
    queues = [{"layout": "list", "name": "events", "key": "tenant_{tenant}:q", "timestamp_field": "ts"},
              {"layout": "sidekiq", "prefix": "tenant_{tenant}:"}]
    tenants = {"scan": {"match": "tenant_*:q", "regex": "^tenant_(?P<tenant>[^:]+):"}}
    reading = await collect(redis_server.url, queues, tenants=tenants)
    assert (reading.queues, samples_of(reading, "jobqueue_tenants")) == ((), {(): 0})


async def test_scan_is_cached_for_refresh_seconds(redis_server: RedisServer) -> None:
    admin = redis.Redis.from_url(redis_server.url, decode_responses=True)
    admin.rpush("tenant_a:q", "1")
    queues = [{"layout": "list", "name": "q", "key": "tenant_{tenant}:q"}]
    tenants = {"scan": {"match": "tenant_*:q", "regex": "^tenant_(?P<tenant>[^:]+):"}, "refresh": 3600}
    source = make_source(redis_server.url, queues, tenants=tenants)
    try:
        first = await source.collect()
        admin.rpush("tenant_b:q", "1")
        admin.config_resetstat()
        second = await source.collect()
        stats = commandstats(admin)
    finally:
        await source.close()
        admin.close()
    assert [q.tenant for q in first.queues] == [q.tenant for q in second.queues] == ["a"]
    assert "scan" not in stats


async def test_repeated_collections_follow_every_change(redis_client: redis.Redis, prefix: str) -> None:
    """Records and exposition lines of unchanged queues are reused between collections; every change
    (head, depth, a bad timestamp, tenants coming and going) shows in the next reading and rendering,
    which equal those of a fresh source and renderer."""

    key = f"{prefix}tenant_{{tenant}}:queues:events"
    queues = [{"layout": "list", "name": "events", "key": key, "timestamp_field": "ts"}]
    for tenant, age in {"a": 30, "b": 20, "c": 10}.items():
        redis_client.rpush(key.format(tenant=tenant), json.dumps({"ts": NOW - age}), json.dumps({"ts": NOW}))
    redis_client.rpush(key.format(tenant="d"), json.dumps({"ts": 1e999}))  # not a time: malformed each time
    source = make_source(REDIS_URL, queues, tenants={"static": ["a", "b", "c", "d"]})

    renderer = Renderer()  # the daemon's: it keeps what it rendered last time

    def rendered(reading: Reading, fresh: bool) -> dict[str, bytes]:
        """The reading rendered with the memo of the previous renderings, or by a fresh renderer."""
        status = SourceStatus("r", "redis", True, NOW, 0.1, NOW)
        return (Renderer() if fresh else renderer).source(status, replace(reading, latency=None), {})

    try:
        steps = [
            lambda: None,
            lambda: None,
            lambda: redis_client.lpop(key.format(tenant="a")),
            lambda: redis_client.rpush(key.format(tenant="b"), "{}"),
            lambda: source.config.tenants.static.remove("c"),  # type: ignore[union-attr]
            lambda: source.config.tenants.static.insert(0, "e"),  # type: ignore[union-attr]
        ]
        for step in steps:
            step()
            reading = await source.collect()
            expected = await collect(REDIS_URL, queues, tenants={"static": list(source.config.tenants.static)})  # type: ignore[union-attr]
            assert comparable(reading) == comparable(expected)
            assert reading.malformed == 1
            assert rendered(reading, fresh=False) == rendered(expected, fresh=True)
        got = {q.tenant: (q.depth, q.oldest_timestamp) for q in reading.queues}
        assert got == {"e": (0, None), "a": (1, NOW), "b": (3, NOW - 20), "d": (1, None)}
    finally:
        await source.close()
