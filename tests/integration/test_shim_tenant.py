"""Seed 000 against a real Redis: tenant health, landlord (Horizon) health, tenants; every status code,
and Redis stopped (the 503 bodies) and brought back."""

from __future__ import annotations

import json
import time

import pytest
import redis

from tests.support.servers import RedisServer
from tests.support.shims import get, serve

ENV = {"VIEWER_TOKEN": "viewer-secret", "ADMIN_TOKEN": "admin-secret"}


def config(url: str, prefix: str, enabled: bool = True) -> str:
    return f"""
sources:
  - name: redis
    type: redis
    url: {url}
    tenants: {{static: [t1, t2]}}
    queues:
      - {{layout: list, name: events, key: "{prefix}{{tenant}}:events", timestamp_field: ts}}
      - {{layout: list, name: heartbeats, key: "{prefix}{{tenant}}:heartbeats", timestamp_field: ts}}
      - {{layout: horizon, queues: [high, default, audience-sync], prefix: "{prefix}laravel-database-",
          horizon_prefix: "{prefix}horizon:"}}
systems:
  - name: allegro
    sources: [redis]
    queues: [{{source: redis, queue: events, tenant: "*"}}, {{source: redis, queue: heartbeats, tenant: "*"}}]
auth:
  tokens:
    - {{name: viewer, token: "${{VIEWER_TOKEN}}", roles: [viewer], tenants: [t1]}}
    - {{name: admin, token: "${{ADMIN_TOKEN}}", roles: [super_admin]}}
shims:
  tenant: {{enabled: {str(enabled).lower()}, system: allegro, source: redis}}
"""


def seed(client: redis.Redis, prefix: str) -> float:
    now = time.time()
    for age in (34, 20, 5):
        client.rpush(f"{prefix}t1:heartbeats", json.dumps({"ts": now - age}))
    for _ in range(2):
        client.rpush(f"{prefix}laravel-database-queues:default", json.dumps({"pushedAt": now - 1}))
    client.hset(f"{prefix}horizon:queue:default", "runtime", 500)
    client.zadd(f"{prefix}horizon:recent_failed_jobs", {"job-1": -(now - 60)})
    return now


VIEWER = {"Authorization": "Bearer viewer-secret"}
ADMIN = {"Authorization": "Bearer admin-secret"}
UNAUTHENTICATED = {"message": "Unauthenticated."}
FORBIDDEN = {"message": "This action is unauthorized."}


async def test_tenant_health_reports_depth_and_oldest_age(redis_client: redis.Redis, prefix: str) -> None:
    seed(redis_client, prefix)
    async with serve(config("redis://127.0.0.1:6379/0", prefix), ENV) as (client, _):
        status, body = await get(client, "/api/v1/health", **VIEWER)
    assert status == 200
    age = body["queues"]["heartbeats"].pop("oldest_age_seconds")
    assert 34 <= age <= 36
    assert body == {"status": "ok", "tenant": "t1", "redis": {"reachable": True},
                    "queues": {"events": {"depth": 0, "oldest_age_seconds": None}, "heartbeats": {"depth": 3}}}


async def test_tenant_health_auth_and_parameters(redis_client: redis.Redis, prefix: str) -> None:
    async with serve(config("redis://127.0.0.1:6379/0", prefix), ENV) as (client, _):
        assert await get(client, "/api/v1/health") == (401, UNAUTHENTICATED)
        assert await get(client, "/api/v1/health", Authorization="Bearer wrong") == (401, UNAUTHENTICATED)
        assert await get(client, "/api/v1/health", Authorization="Basic dXNlcjpwdw==") == (401, UNAUTHENTICATED)
        assert await get(client, "/api/v1/health?tenant=t2", **VIEWER) == (403, FORBIDDEN)
        assert await get(client, "/api/v1/health", **ADMIN) == (400, {"message": "The tenant parameter is required."})
        assert await get(client, "/api/v1/health?tenant=t9", **ADMIN) == (404, {"message": "Not Found."})
        status, body = await get(client, "/api/v1/health?tenant=t2", **ADMIN)
        assert (status, body["tenant"], body["queues"]["events"]) == (200, "t2", {"depth": 0,
                                                                                 "oldest_age_seconds": None})


async def test_landlord_health_and_tenants(redis_client: redis.Redis, prefix: str) -> None:
    seed(redis_client, prefix)
    async with serve(config("redis://127.0.0.1:6379/0", prefix), ENV) as (client, _):
        assert await get(client, "/api/v1/landlord/health", **ADMIN) == (200, {
            "status": "ok", "redis": {"reachable": True},
            "queues": {"audience-sync": {"pending": 0, "wait_seconds": 0}, "default": {"pending": 2, "wait_seconds": 1},
                       "high": {"pending": 0, "wait_seconds": 0}},
            "failed_jobs": 1})
        assert await get(client, "/api/v1/landlord/tenants", **ADMIN) == (200, {"tenants": ["t1", "t2"]})
        for path in ("/api/v1/landlord/health", "/api/v1/landlord/tenants"):
            assert await get(client, path) == (401, UNAUTHENTICATED)
            assert await get(client, path, **VIEWER) == (403, FORBIDDEN)


async def test_redis_stopped_gives_the_503_bodies_and_recovers(redis_server: RedisServer, prefix: str) -> None:
    seed(redis.Redis.from_url(redis_server.url, decode_responses=True), prefix)
    async with serve(config(redis_server.url, prefix), ENV) as (client, scheduler):
        assert (await get(client, "/api/v1/health", **VIEWER))[0] == 200
        redis_server.stop()
        await scheduler.collect_once()
        assert await get(client, "/api/v1/health", **VIEWER) == (503, {
            "status": "degraded", "tenant": "t1", "redis": {"reachable": False},
            "queues": {"events": {"depth": None, "oldest_age_seconds": None},
                       "heartbeats": {"depth": None, "oldest_age_seconds": None}}})
        assert await get(client, "/api/v1/landlord/health", **ADMIN) == (503, {
            "status": "degraded", "redis": {"reachable": False}, "queues": {}, "failed_jobs": None})
        assert await get(client, "/api/v1/landlord/tenants", **ADMIN) == (503, {"tenants": None})
        metrics = await (await client.get("/metrics")).text()
        assert 'jobqueue_health_status{system="allegro",status="unhealthy"} 1' in metrics
        assert 'jobqueue_health_issue{system="allegro",issue="source_down:redis"} 1' in metrics
        redis_server.start()
        seed(redis.Redis.from_url(redis_server.url, decode_responses=True), prefix)
        await scheduler.collect_once()
        status, body = await get(client, "/api/v1/landlord/health", **ADMIN)
        assert (status, body["queues"]["default"], body["failed_jobs"]) == (200, {"pending": 2, "wait_seconds": 1}, 1)
        metrics = await (await client.get("/metrics")).text()
        assert 'jobqueue_health_status{system="allegro",status="ok"} 1' in metrics


@pytest.mark.parametrize("path", ["/api/v1/health", "/api/v1/landlord/health", "/api/v1/landlord/tenants"])
async def test_disabled_shim_paths_answer_404(prefix: str, path: str) -> None:
    async with serve(config("redis://127.0.0.1:6379/0", prefix, enabled=False), ENV) as (client, _):
        assert await get(client, path, **ADMIN) == (404, {"error": "not_found"})


async def test_items_without_a_readable_time_are_malformed_not_an_empty_queue(redis_client: redis.Redis,
                                                                                prefix: str) -> None:
    """Seed 000: `oldest_age_seconds` is "null when the queue is empty". Two items whose time cannot be read
    (a field that is no time, an item that is not JSON): depth 2, `oldest_age_seconds` null (no age is
    made up), and both counted in jobqueue_malformed_items, as docs/shims.md tells a client."""
    redis_client.rpush(f"{prefix}t1:events", json.dumps({"ts": "garbage"}), "not json")
    async with serve(config("redis://127.0.0.1:6379/0", prefix), ENV) as (client, _):
        status, body = await get(client, "/api/v1/health", **VIEWER)
        metrics = await (await client.get("/metrics")).text()
    assert (status, body["status"], body["queues"]["events"]) == (200, "ok", {"depth": 2, "oldest_age_seconds": None})
    assert 'jobqueue_malformed_items{source="redis"} 2' in metrics
    assert 'jobqueue_depth{source="redis",tenant="t1",queue="events"} 2' in metrics
    assert 'jobqueue_oldest_age_seconds{source="redis",tenant="t1",queue="events"}' not in metrics


async def test_a_request_in_the_first_seconds_waits_for_the_first_collection(redis_client: redis.Redis,
                                                                              prefix: str) -> None:
    """Issue 21 item 8: right after start nothing has been read, and the tenant endpoint answered 503
    ("Redis unreachable") although Redis was fine and no alert rule would page (the rules page on a
    failed collection, never on one not yet made). The request now waits for the first collection
    (at most the source's timeout and a second) and answers what it found."""
    import asyncio

    from aiohttp.test_utils import TestClient, TestServer

    from exporter.cli import build_scheduler
    from exporter.config import parse_config
    from exporter.web.app import build_app

    seed(redis_client, prefix)
    conf = parse_config(config("redis://127.0.0.1:6379/0", prefix), "<test>", ENV)
    scheduler = build_scheduler(conf)
    app = build_app(conf, scheduler, run_scheduler=False)
    try:
        async with TestClient(TestServer(app)) as client:
            answer = asyncio.ensure_future(get(client, "/api/v1/health", **VIEWER))
            done, _ = await asyncio.wait({answer}, timeout=1.0)
            assert not done, f"answered before the first collection: {answer.result()}"
            await scheduler.collect_once()
            status, body = await asyncio.wait_for(answer, 10)
    finally:
        await scheduler.stop()
    assert (status, body["status"], body["redis"], body["queues"]["heartbeats"]["depth"]) == (
        200, "ok", {"reachable": True}, 3)
