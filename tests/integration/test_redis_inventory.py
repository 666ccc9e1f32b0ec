"""The queue and tenant inventory: a queue once known never vanishes because its key drained or the
process that announces it died; it reads depth 0 until gone for `forget_after`. Tenant discovery
filters and shards before the cap, and counts what the cap drops."""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from typing import Any

import redis

from tests.conftest import REDIS_URL
from tests.support.redis_libs import (
    NOW,
    by_queue,
    collect,
    complete_bullmq,
    make_source,
    samples_of,
    seed_horizon,
    seed_laravel,
    seed_sidekiq,
)
from tests.support.servers import RedisServer
from tests.support.shims import get, serve


class Clock:
    """The source's clock, moved by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_horizon_backlog_survives_horizon_down(redis_client: redis.Redis, prefix: str) -> None:
    """Horizon without `queues`: supervisors announce `high`; Horizon dies with 100 jobs on `high`."""
    hp = f"{prefix}horizon:"
    app = f"{prefix}laravel-database-"
    seed_horizon(redis_client, hp, [("m1", "running", NOW - 1)], [("m1:s1", "m1", NOW - 1, {"redis:high": 2})],
                 {"high": 100.0}, [], [])
    queues = [{"layout": "horizon", "prefix": app, "horizon_prefix": hp}]
    clock = Clock(NOW)
    source = make_source(REDIS_URL, queues)
    source.clock = clock
    try:
        first = await source.collect()
        assert by_queue(first)["high"].depth == 0
        assert samples_of(first, "jobqueue_workers") == {("", "high", "unknown"): 2, ("", "high", "paused"): 0}
        redis_client.delete(f"{hp}supervisors", f"{hp}masters")  # Horizon is gone...
        seed_laravel(redis_client, app, "high", [int(NOW) - 600 + i for i in range(100)], delayed=0, reserved=0)
        clock.now = NOW + 60
        down = await source.collect()
        high = by_queue(down)["high"]  # ...and its backlog still pages
        assert (high.depth, high.oldest_timestamp) == (100, NOW - 600)
        assert samples_of(down, "jobqueue_horizon_masters") == {("", "running"): 0, ("", "paused"): 0}
        # no live worker beside the backlog: the workers series of the known queue read 0, not absent
        assert samples_of(down, "jobqueue_workers") == {("", "high", "unknown"): 0, ("", "high", "paused"): 0}
        assert samples_of(down, "jobqueue_worker_capacity") == {("", "high"): 0}
        assert down.details["horizon"][""]["queues"]["high"]["pending"] == 100
    finally:
        await source.close()


async def test_sidekiq_queue_kept_until_forget_after(redis_client: redis.Redis, prefix: str) -> None:
    """A queue dropped from Sidekiq's `queues` set (as `Sidekiq::Queue#clear` does) reads 0 until it has
    been gone for forget_after, and comes back as soon as it holds jobs."""
    seed_sidekiq(redis_client, prefix, "mail", [NOW - 30])
    seed_sidekiq(redis_client, prefix, "sms", [NOW - 10])
    clock = Clock(NOW)
    source = make_source(REDIS_URL, [{"layout": "sidekiq", "prefix": prefix}], forget_after="1h")
    source.clock = clock
    try:
        assert {q.queue: q.depth for q in (await source.collect()).queues} == {"mail": 1, "sms": 1}
        redis_client.srem(f"{prefix}queues", "mail")
        redis_client.delete(f"{prefix}queue:mail")
        for step in (60, 3000):
            clock.now = NOW + step
            reading = await source.collect()
            got = {q.queue: (q.depth, q.oldest_timestamp) for q in reading.queues}
            assert got == {"mail": (0, None), "sms": (1, NOW - 10)}
            # its workers series too (no Sidekiq process here): 0 for every state of both queues
            assert samples_of(reading, "jobqueue_workers") == {
                ("", q, state): 0 for q in ("mail", "sms") for state in ("busy", "idle", "paused")}
        clock.now = NOW + 3700  # gone for over an hour: reported once more, then forgotten
        assert {q.queue for q in (await source.collect()).queues} == {"mail", "sms"}
        clock.now = NOW + 3760
        forgotten = await source.collect()
        assert {q.queue for q in forgotten.queues} == {"sms"}
        assert {labels[1] for labels in samples_of(forgotten, "jobqueue_workers")} == {"sms"}
        redis_client.sadd(f"{prefix}queues", "mail")
        assert {q.queue for q in (await source.collect()).queues} == {"mail", "sms"}
    finally:
        await source.close()


async def test_scan_cap_after_include_exclude_and_shard(redis_server: RedisServer) -> None:
    admin = redis.Redis.from_url(redis_server.url, decode_responses=True)
    ids = [f"t{i:02d}" for i in range(36)]
    for tenant in ids:
        admin.rpush(f"tenant_{tenant}:queues:events", json.dumps({"ts": NOW}))
    queues = [{"layout": "list", "name": "events", "key": "tenant_{tenant}:queues:events", "timestamp_field": "ts"}]
    scan = {"match": "tenant_*:queues:*", "regex": "^tenant_(?P<tenant>[^:]+):", "count": 10, "cap": 10}

    async def tenants(shard: tuple[int, int] = (0, 1), **spec: Any) -> tuple[list[str], dict[Any, float]]:
        source = make_source(redis_server.url, queues, tenants={"scan": scan, **spec})
        source.context = type(source.context)(snapshot=source.context.snapshot, shard=shard)
        try:
            reading = await source.collect()
        finally:
            await source.close()
        dropped = samples_of(reading, "jobqueue_tenants_dropped")[()]
        return reading.details["tenants"], {**samples_of(reading, "jobqueue_tenants"), ("dropped",): dropped}

    got, counts = await tenants(exclude="^t0")  # excluded ids no longer eat the cap
    assert got == ids[10:20] and counts == {(): 10, ("dropped",): 16}
    got, counts = await tenants(include="^t3")
    assert got == ids[30:] and counts == {(): 6, ("dropped",): 0}
    shards = [await tenants((i, 2)) for i in range(2)]
    for i, (got, counts) in enumerate(shards):  # each replica caps its own share, first ids in order
        mine = [t for t in ids if zlib.crc32(t.encode()) % 2 == i]
        assert got == mine[:10] and counts == {(): 10, ("dropped",): len(mine) - 10}
    admin.close()


CONFIG = """
sources:
  - name: redis
    type: redis
    url: {url}
    interval: 1h
    tenants: {{scan: {{match: "{prefix}tenant_*:queues:*", regex: "^{prefix}tenant_(?P<tenant>[^:]+):"}},
              refresh: 0.01}}
    queues:
      - {{layout: list, name: events, key: "{prefix}tenant_{{tenant}}:queues:events", timestamp_field: ts}}
      - {{layout: list, name: heartbeats, key: "{prefix}tenant_{{tenant}}:queues:heartbeats", timestamp_field: ts}}
systems:
  - name: allegro
    sources: [redis]
    queues: [{{source: redis, queue: events, tenant: "*"}}]
auth:
  tokens:
    - {{name: admin, token: "admin-secret", roles: [super_admin]}}
shims:
  tenant: {{enabled: true, system: allegro, source: redis}}
"""


async def test_daemon_drained_tenant_reads_zero_and_answers_200(redis_client: redis.Redis, prefix: str) -> None:
    """The seed-000 example tenant: events empty, heartbeats 12; then every key of it drains."""
    now = time.time()
    for i in range(12):
        redis_client.rpush(f"{prefix}tenant_acme:queues:heartbeats", json.dumps({"ts": now - 40 + i}))
    async with serve(CONFIG.format(url=REDIS_URL, prefix=prefix)) as (client, scheduler):
        admin = {"Authorization": "Bearer admin-secret"}
        status, body = await get(client, "/api/v1/health?tenant=acme", **admin)
        assert status == 200 and body["queues"]["events"] == {"depth": 0, "oldest_age_seconds": None}
        assert body["queues"]["heartbeats"]["depth"] == 12
        redis_client.delete(f"{prefix}tenant_acme:queues:heartbeats")  # Redis deletes a drained list
        await asyncio.sleep(0.05)  # past the discovery refresh: the next SCAN finds no key of acme
        await scheduler.collect_once()
        status, body = await get(client, "/api/v1/health?tenant=acme", **admin)
        assert (status, body["queues"]) == (200, {"events": {"depth": 0, "oldest_age_seconds": None},
                                                  "heartbeats": {"depth": 0, "oldest_age_seconds": None}})
        metrics = await (await client.get("/metrics")).text()
        assert 'jobqueue_depth{source="redis",tenant="acme",queue="heartbeats"} 0\n' in metrics
        assert 'jobqueue_oldest_timestamp_seconds{source="redis",tenant="acme"' not in metrics
        assert await get(client, "/api/v1/health?tenant=never-seen", **admin) == (404, {"message": "Not Found."})
        assert (await get(client, "/api/v1/landlord/tenants", **admin))[1] == {"tenants": ["acme"]}


async def test_restart_while_horizon_is_down_still_finds_the_backlog(redis_client: redis.Redis,
                                                                     prefix: str) -> None:
    """A fresh exporter, no live supervisor: Laravel's `queues:*` lists are found by a bounded SCAN."""
    app, hp = f"{prefix}laravel-database-", f"{prefix}horizon:"
    seed_laravel(redis_client, app, "high", [int(NOW) - 300 + i for i in range(100)], delayed=2, reserved=1)
    seed_laravel(redis_client, app, "later", [], delayed=1, reserved=0)  # only a :delayed set
    reading = await collect(REDIS_URL, [{"layout": "horizon", "prefix": app, "horizon_prefix": hp}])
    got = {q.queue: (q.depth, q.oldest_timestamp, dict(q.states)) for q in reading.queues}
    assert got == {"high": (100, NOW - 300, {"delayed": 2, "reserved": 1})}
    # `later` has no list of its own: its :delayed companion names no queue until jobs are due


async def test_bullmq_queues_found_by_their_meta_hash(redis_client: redis.Redis, prefix: str) -> None:
    """BullMQ without `queues`: every queue BullMQ created (it writes `<prefix>:<queue>:meta`)."""
    bull_prefix = prefix.rstrip(":")
    report = complete_bullmq(REDIS_URL, bull_prefix, 2)
    assert report["kept"]["completed"] == 2
    reading = await collect(REDIS_URL, [{"layout": "bullmq", "prefix": bull_prefix}], now=None)
    assert {q.queue: q.completed_last_hour for q in reading.queues} == {"blind": None, "dropped": 2, "kept": 2}
