"""Poisoned data (issue 15, item 2): one item nested 100,000 levels deep, a 2 MB item, NaN in a
payload. Each is one malformed item, counted and skipped; the source stays up, its healthy queues
stay, and the job listing answers valid JSON for any item."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from exporter.sources.postgres.checks import jsonable
from exporter.sources.redis.jobs import UNREADABLE
from tests.conftest import REDIS_URL
from tests.integration.test_nats import Js, collect, scheduler_for
from tests.integration.test_nats import jsc as jsc
from tests.support.redis_libs import NOW, by_queue
from tests.support.redis_libs import collect as redis_collect
from tests.support.shims import listing_config, serve

POISON = ["[" * 100_000, '{"a":' * 50_000, '{"ts": ' + "[" * 5_000 + "]" * 5_000 + "}"]


def strict_json(text: str) -> Any:
    """json.loads that refuses NaN and Infinity, as every other JSON parser does."""
    def refuse(name: str) -> Any:
        raise ValueError(f"{name} in a JSON body")
    return json.loads(text, parse_constant=refuse)


async def test_deep_items_are_malformed_not_a_failed_source(redis_client: redis.Redis,
                                                            prefix: str) -> None:
    key = f"{prefix}events"
    redis_client.rpush(key, *POISON, json.dumps({"ts": NOW - 30}), json.dumps({"ts": NOW - 10}))
    redis_client.rpush(f"{prefix}healthy", json.dumps({"ts": NOW - 5}))
    reading = await redis_collect(REDIS_URL, [
        {"layout": "list", "name": "events", "key": key, "timestamp_field": "ts"},
        {"layout": "list", "name": "healthy", "key": f"{prefix}healthy", "timestamp_field": "ts"}])
    queues = by_queue(reading)
    assert (queues["events"].depth, queues["events"].oldest_timestamp) == (5, NOW - 30)
    assert (queues["healthy"].depth, queues["healthy"].oldest_timestamp) == (1, NOW - 5)
    assert reading.malformed == 3


async def test_job_listing_answers_json_for_any_item(redis_client: redis.Redis, prefix: str) -> None:
    key = f"{prefix}jobs"
    big = json.dumps({"id": "big", "data": "x" * (2 << 20)})
    redis_client.rpush(key, *POISON, '{"id": "nan", "data": {"n": NaN, "m": -Infinity}, "attempts": 1e308}',
                       big, json.dumps({"id": "good", "data": {"n": 1}}))
    text = listing_config(REDIS_URL, key)
    async with serve(text, {"OPS_TOKEN": "ops-secret"}) as (client, scheduler):
        assert scheduler.snapshot.sources["redis"].status.up
        response = await client.get("/api/v1/platform/system/queues/jobs/jobs?status=waiting",
                                    headers={"Authorization": "Bearer ops-secret"})
        assert (response.status, response.content_type) == (200, "application/json")
        body = strict_json(await response.text())
    jobs = body["data"]["jobs"]
    assert [j["id"] for j in jobs] == [None, None, None, "nan", None, "good"]
    assert jobs[0]["payload"] == {"raw": "[" * (64 * 1024) + "…"}  # bounded text, not the 100 KB item
    assert jobs[1]["payload"] == {"raw": POISON[1][: 64 * 1024] + "…"}
    assert (jobs[3]["payload"], jobs[3]["attempts"]) == ({"n": None, "m": None}, None)  # NaN -> null; 1e308 no count
    assert jobs[4]["payload"] == UNREADABLE  # the 2 MB item, over the size bound: never held (jobs.py)
    assert jobs[5]["payload"] == {"n": 1}


async def test_nats_registry_with_poisoned_values(jsc: Js) -> None:
    jobs = await jsc.kv("jobs")
    await jobs.put("j1", json.dumps({"status": "completed"}).encode())
    await jobs.put("j2", json.dumps({"status": "failed"}).encode())
    for i, poison in enumerate(POISON):
        await jobs.put(f"p{i}", poison.encode())
    await jobs.put("nan", b'{"status": "completed", "created": NaN}')
    agents = await jsc.kv("agents")
    await agents.put("a1", json.dumps({"hostname": "web-01", "status": "Ready", "heartbeat": time.time()}).encode())
    await agents.put("a2", b"{" * 100_000)
    scheduler = scheduler_for(jsc, f"""    jobs: {{bucket: {jsc.name('jobs')}, queue: jobs}}
    agents: {{bucket: {jsc.name('agents')}, heartbeat_field: heartbeat}}
""")
    try:
        values, details = await collect(scheduler)  # asserts the source is up
    finally:
        await scheduler.stop()
    assert (details["jobs"]["completed"], details["jobs"]["failed"]) == (1, 1)
    assert details["agents"]["total"] == 1
    assert values['jobqueue_malformed_items{source="nats"}'] == 5  # 3 deep + NaN job, 1 deep agent


def test_sql_cells_are_bounded_and_finite() -> None:
    import decimal

    assert jsonable(decimal.Decimal("NaN")) is None
    assert jsonable(decimal.Decimal("Infinity")) is None
    assert jsonable(float("inf")) is None
    assert jsonable(decimal.Decimal("1e400")) == float("inf")  # finite() in the web layer makes it null
    assert len(jsonable("x" * 1_000_000)) == 4097
