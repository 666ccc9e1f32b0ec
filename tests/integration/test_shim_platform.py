"""Seed 003 against a real Redis holding BullMQ queues: queues, live job pages, infrastructure health,
alerts; 400, 401, 403, 404, 429 and the 503 of a hung backend."""

from __future__ import annotations

import asyncio
import json
import time

import redis

from exporter.web.shims.platform import alertmanager_alerts
from tests.support.servers import RedisServer
from tests.support.shims import get, serve

ENV = {"OPS_TOKEN": "ops-secret", "VIEWER_TOKEN": "viewer-secret"}
OPS = {"Authorization": "Bearer ops-secret"}


def config(url: str, prefix: str, rate: int = 1000, timeout: str = "2s") -> str:
    return f"""
sources:
  - name: redis
    type: redis
    url: {url}
    timeout: 2s
    queues:
      - {{layout: bullmq, queues: [email-high, email, bulk], prefix: "{prefix}bull"}}
systems:
  - name: email
    sources: [redis]
    queues:
      - {{source: redis, queue: email-high, priority: high}}
      - {{source: redis, queue: email}}
      - {{source: redis, queue: bulk, priority: low}}
auth:
  tokens:
    - {{name: ops, token: "${{OPS_TOKEN}}", roles: [ops]}}
    - {{name: viewer, token: "${{VIEWER_TOKEN}}", roles: [viewer], tenants: ["*"]}}
shims:
  platform:
    system: email
    jobs_timeout: {timeout}
    rate_limit: {{requests: {rate}, per: 60s}}
    service_names: {{redis: Queue Redis}}
"""


def seed(client: redis.Redis, prefix: str, now: float) -> None:
    base = f"{prefix}bull"
    pipe = client.pipeline()
    for i in range(45):
        pipe.lpush(f"{base}:email-high:wait", f"h{i}")
    for i in range(12):
        pipe.lpush(f"{base}:email-high:active", f"a{i}")
    pipe.zadd(f"{base}:email-high:failed", {"f1": now - 10, "f2": now - 5})
    for i in range(150):
        pipe.lpush(f"{base}:email:wait", f"e{i}")
        pipe.hset(f"{base}:email:e{i}", mapping={"name": "send", "data": json.dumps({"n": i}),
                                                 "timestamp": int((now - 300 + i) * 1000), "attemptsMade": 0})
    pipe.zadd(f"{base}:bulk:failed", {f"b{i}": now - 100 + i for i in range(11)})
    for i in range(11):
        pipe.hset(f"{base}:bulk:b{i}", mapping={
            "name": "bulk", "data": json.dumps({"campaign_id": f"cmp_{i}", "recipient_count": 1000}),
            "timestamp": int((now - 3600) * 1000), "finishedOn": int((now - 100 + i) * 1000), "attemptsMade": 3,
            "failedReason": "SMTP connection timeout",
            "stacktrace": json.dumps(["Error: SMTP connection timeout\n at x"])})
    # BullMQ scores the completed set with finishedOn in ms: 5 within the hour, 2 from two hours ago
    pipe.zadd(f"{base}:bulk:completed", {f"c{i}": (now - 50) * 1000 for i in range(5)})
    pipe.zadd(f"{base}:bulk:completed", {f"old{i}": (now - 7200) * 1000 for i in range(2)})
    pipe.execute()


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


async def test_queues_list_with_thresholds_and_completed_last_hour(redis_client: redis.Redis, prefix: str) -> None:
    now = time.time()
    seed(redis_client, prefix, now)
    async with serve(config("redis://127.0.0.1:6379/0", prefix), ENV) as (client, scheduler):
        redis_client.zadd(f"{prefix}bull:bulk:completed", {f"c{i}": now * 1000 for i in range(5, 8)})
        await scheduler.collect_once()
        # completions in the last 3600 s from the finish times; null where no completed job is kept
        # (BullMQ cannot tell none finished from removeOnComplete): never a made-up 0
        assert await get(client, "/api/v1/platform/system/queues", **OPS) == (200, {"success": True, "data": {
            "queues": [
                {"name": "email-high", "priority": "high", "active_jobs": 12, "waiting_jobs": 45,
                 "completed_last_hour": None, "failed_jobs": 2, "status": "healthy"},
                {"name": "email", "priority": "normal", "active_jobs": 0, "waiting_jobs": 150,
                 "completed_last_hour": None, "failed_jobs": 0, "status": "warning"},
                {"name": "bulk", "priority": "low", "active_jobs": 0, "waiting_jobs": 0,
                 "completed_last_hour": 8, "failed_jobs": 11, "status": "critical"},
            ]}})


async def test_job_pages_are_read_live(redis_client: redis.Redis, prefix: str) -> None:
    now = time.time()
    seed(redis_client, prefix, now)
    async with serve(config("redis://127.0.0.1:6379/0", prefix), ENV) as (client, _):
        path = "/api/v1/platform/system/queues/{queue_name}/jobs"
        status, body = await get(client, "/api/v1/platform/system/queues/bulk/jobs?status=failed&limit=2", path,
                                 **OPS)
        assert status == 200
        assert body["data"]["pagination"] == {"total": 11, "limit": 2, "offset": 0}
        assert body["data"]["jobs"][0] == {
            "id": "b10", "queue": "bulk", "status": "failed",
            "payload": {"campaign_id": "cmp_10", "recipient_count": 1000},
            "error": {"message": "SMTP connection timeout", "stack_trace": "Error: SMTP connection timeout\n at x"},
            "attempts": 3, "created_at": iso(int(now - 3600)), "updated_at": iso(int(now - 90))}
        assert body["data"]["jobs"][1]["id"] == "b9"
        status, body = await get(client, "/api/v1/platform/system/queues/email/jobs?limit=3&offset=1", path, **OPS)
        assert [j["id"] for j in body["data"]["jobs"]] == ["e1", "e2", "e3"]  # oldest first
        assert body["data"]["jobs"][0]["payload"] == {"n": 1}
        assert body["data"]["pagination"] == {"total": 150, "limit": 3, "offset": 1}
        status, body = await get(client, "/api/v1/platform/system/queues/email/jobs", path, **OPS)
        assert (len(body["data"]["jobs"]), body["data"]["pagination"]["limit"]) == (50, 50)
        bad = {"success": False, "error": {"code": "INVALID_PARAMETER"}}
        for query in ("limit=101", "limit=0", "limit=x", "offset=-1", "status=paused", "limit=%C2%B2",
                      "limit=" + "9" * 5000):
            status, body = await get(client, f"/api/v1/platform/system/queues/email/jobs?{query}", path, **OPS)
            assert (status, body["success"], body["error"]["code"]) == (400, False, bad["error"]["code"])
        assert await get(client, "/api/v1/platform/system/queues/nope/jobs", path, **OPS) == (404, {
            "success": False, "error": {"code": "NOT_FOUND", "message": "Queue 'nope' not found"}})


async def test_auth_and_rate_limit(redis_client: redis.Redis, prefix: str) -> None:
    async with serve(config("redis://127.0.0.1:6379/0", prefix, rate=3), ENV) as (client, _):
        url = "/api/v1/platform/system/queues"
        assert await get(client, url) == (401, {"success": False, "error": {
            "code": "UNAUTHORIZED", "message": "Missing or invalid token"}})
        assert await get(client, url, Authorization="Bearer viewer-secret") == (403, {"success": False, "error": {
            "code": "FORBIDDEN", "message": "Ops role required"}})
        assert (await get(client, url, **OPS))[0] == 200
        assert (await get(client, url, **OPS))[0] == 200
        assert (await get(client, url, **OPS))[0] == 200
        response = await client.get(url, headers=OPS)
        assert (response.status, await response.json()) == (429, {"success": False, "error": {
            "code": "RATE_LIMITED", "message": "Rate limit exceeded"}})
        assert int(response.headers["Retry-After"]) >= 1


async def test_infrastructure_alerts_and_a_hung_backend(redis_server: RedisServer, prefix: str) -> None:
    seed(redis.Redis.from_url(redis_server.url, decode_responses=True), prefix, time.time())
    async with serve(config(redis_server.url, prefix, timeout="500ms"), ENV) as (client, scheduler):
        status, body = await get(client, "/api/v1/platform/system/infrastructure/health", **OPS)
        [service] = body["data"]["services"]
        assert (service["name"], service["status"], service["error_rate_percent"], service["queue_backlog"]) == (
            "Queue Redis", "degraded", 0.0, 195)
        assert service["reason"] == "Queue email: 150 waiting (>= 100); Queue bulk: 11 failed jobs (> 10)"
        assert set(service["response_time_ms"]) == {"avg", "p95", "p99"}
        redis_server.pause()
        try:
            response = await client.get("/api/v1/platform/system/queues/email/jobs", headers=OPS)
            assert (response.status, await response.json()) == (503, {"success": False, "error": {
                "code": "BACKEND_UNAVAILABLE", "message": "The queue backend did not answer in time"}})
        finally:
            redis_server.resume()
        redis_server.stop()
        await scheduler.collect_once()
        status, body = await get(client, "/api/v1/platform/system/infrastructure/health", **OPS)
        [service] = body["data"]["services"]
        assert (service["status"], service["error_rate_percent"]) == ("down", 50.0)
        status, body = await get(client, "/api/v1/platform/system/queues", **OPS)
        assert body["data"]["queues"][0] == {"name": "email-high", "priority": "high", "active_jobs": None,
                                             "waiting_jobs": None, "completed_last_hour": None, "failed_jobs": None,
                                             "status": "critical"}
        status, body = await get(client, "/api/v1/platform/system/infrastructure/alerts", **OPS)
        messages = [(a["severity"], a["service"], a["message"]) for a in body["data"]["alerts"]]
        assert messages == [("error", "redis", "redis unreachable (unreachable)"),
                            ("error", "redis", "Queue bulk: 11 failed jobs (> 10)"),
                            ("warning", "redis", "Queue email: 150 waiting (>= 100)")]
        status, body = await get(client, "/api/v1/platform/system/infrastructure/alerts?severity=warning", **OPS)
        assert [a["message"] for a in body["data"]["alerts"]] == ["Queue email: 150 waiting (>= 100)"]
        for query in ("hours=0", "hours=169", "hours=x", "severity=critical"):
            status, body = await get(client, f"/api/v1/platform/system/infrastructure/alerts?{query}",
                                     "/api/v1/platform/system/infrastructure/alerts", **OPS)
            assert status == 400


def test_alertmanager_alerts_map_onto_the_seed() -> None:
    raw = [
        {"fingerprint": "abc", "startsAt": "2025-12-04T11:30:00.000Z", "labels": {
            "alertname": "JobQueueDepthCritical", "severity": "critical", "system": "SMTP"},
         "annotations": {"summary": "Queue size exceeded 10k threshold"}, "status": {"state": "active"}},
        {"fingerprint": "old", "startsAt": "2025-12-01T00:00:00Z", "labels": {"severity": "warning"},
         "annotations": {}, "status": {"state": "active"}},
        {"fingerprint": "sil", "startsAt": "2025-12-04T12:00:00Z", "labels": {"severity": "warning", "job": "x"},
         "annotations": {"description": "d"}, "status": {"state": "suppressed"}},
    ]
    now = 1764852000.0  # 2025-12-04T12:40:00Z
    assert alertmanager_alerts(raw, 24, None, now) == [
        {"id": "alert_sil", "timestamp": "2025-12-04T12:00:00Z", "severity": "warning", "service": "x",
         "message": "d", "acknowledged": True},
        {"id": "alert_abc", "timestamp": "2025-12-04T11:30:00Z", "severity": "error", "service": "SMTP",
         "message": "Queue size exceeded 10k threshold", "acknowledged": False},
    ]
    assert [a["id"] for a in alertmanager_alerts(raw, 24, "error", now)] == ["alert_abc"]


async def test_rq_jobs_written_by_the_real_library(redis_client: redis.Redis) -> None:
    import uuid

    from rq import Queue

    name = f"jq{uuid.uuid4().hex[:8]}"
    queue = Queue(name, connection=redis.Redis())
    jobs = [queue.enqueue("builtins.print", f"mail-{i}") for i in range(3)]
    text = f"""
sources:
  - {{name: redis, type: redis, queues: [{{layout: rq, queues: [{name}]}}]}}
systems: [{{name: email, queues: [{{source: redis, queue: {name}}}]}}]
auth: {{tokens: [{{name: ops, token: "${{OPS_TOKEN}}", roles: [ops]}}]}}
shims: {{platform: {{system: email}}}}
"""
    try:
        async with serve(text, ENV) as (client, _):
            status, body = await get(client, f"/api/v1/platform/system/queues/{name}/jobs?limit=2",
                                     "/api/v1/platform/system/queues/{queue_name}/jobs", **OPS)
        assert status == 200
        assert body["data"]["pagination"] == {"total": 3, "limit": 2, "offset": 0}
        first = body["data"]["jobs"][0]
        created = first.pop("created_at")
        assert created == iso(jobs[0].created_at.timestamp()) and first.pop("updated_at") == created
        assert first == {"id": jobs[0].id, "queue": name, "status": "waiting",
                         "payload": "builtins.print('mail-0')", "error": None, "attempts": None}
        assert body["data"]["jobs"][1]["id"] == jobs[1].id
    finally:
        keys = [f"rq:queue:{name}", *(f"rq:job:{j.id}" for j in jobs)]
        redis_client.delete(*keys)
        redis_client.srem("rq:queues", f"rq:queue:{name}")


async def test_undecodable_credentials_are_a_401_not_a_500(redis_client: redis.Redis, prefix: str) -> None:
    """Header bytes that are not UTF-8 (aiohttp keeps them as surrogates) once crashed every endpoint."""
    async with serve(config("redis://127.0.0.1:6379/0", prefix), ENV) as (client, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
        writer.write(b"GET /api/v1/platform/system/queues HTTP/1.1\r\nHost: x\r\n"
                     b"Authorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n")
        await writer.drain()
        answer = await reader.read()
        writer.close()
        assert answer.startswith(b"HTTP/1.1 401 ")
        assert answer.endswith(b'{"success": false, "error": {"code": "UNAUTHORIZED", '
                               b'"message": "Missing or invalid token"}}')


async def test_active_jobs_from_the_workers_where_the_library_keeps_them(redis_client: redis.Redis,
                                                                         prefix: str) -> None:
    """Sidekiq has no active list: active_jobs counts the jobs its live processes run (`:work` hashes);
    Celery without events keeps nothing of what runs, so active_jobs is null."""
    from tests.support.redis_libs import seed_sidekiq, sidekiq_process

    now = time.time()
    seed_sidekiq(redis_client, f"{prefix}sk:", "mail", [now - 5])
    sidekiq_process(redis_client, f"{prefix}sk:", "h:1:a", now - 1, 3, False, 5, ["mail"])
    sidekiq_process(redis_client, f"{prefix}sk:", "h:2:b", now - 90, 2, False, 5, ["mail"])  # dead: beat too old
    redis_client.lpush(f"{prefix}celery", "{}")
    text = config("redis://127.0.0.1:6379/0", prefix).replace(
        f'- {{layout: bullmq, queues: [email-high, email, bulk], prefix: "{prefix}bull"}}',
        f'- {{layout: sidekiq, prefix: "{prefix}sk:"}}\n      - {{layout: celery, global_keyprefix: "{prefix}"}}'
    ).replace("""      - {source: redis, queue: email-high, priority: high}
      - {source: redis, queue: email}
      - {source: redis, queue: bulk, priority: low}""", """      - {source: redis, queue: mail}
      - {source: redis, queue: celery}""")
    async with serve(text, ENV) as (client, scheduler):
        await scheduler.collect_once()
        status, body = await get(client, "/api/v1/platform/system/queues", **OPS)
    assert status == 200
    rows = {q["name"]: (q["active_jobs"], q["waiting_jobs"]) for q in body["data"]["queues"]}
    assert rows == {"mail": (3, 1), "celery": (None, 1)}


async def test_a_brief_stall_answers_503_to_the_listing_and_pages_nobody(redis_server: RedisServer,
                                                                          prefix: str) -> None:
    """Issue 21 item 8: the job listing's BACKEND_UNAVAILABLE while Redis stalls for a moment. Decision:
    that one answer pages no one (it says when to retry); the collections decide, and while they succeed
    the system's verdict, jobqueue_source_up and the rules stay as they were. A stall long enough to fail
    a collection is `backend down` in the agreement table: unhealthy, JobQueueSourceDown pages."""
    seed(redis.Redis.from_url(redis_server.url, decode_responses=True), prefix, time.time())
    async with serve(config(redis_server.url, prefix, timeout="500ms"), ENV) as (client, _):
        redis_server.pause()
        try:
            response = await client.get("/api/v1/platform/system/queues/email/jobs", headers=OPS)
            assert (response.status, response.headers["Retry-After"]) == (503, "1")
            assert (await response.json())["error"]["code"] == "BACKEND_UNAVAILABLE"
            metrics = await (await client.get("/metrics")).text()
        finally:
            redis_server.resume()
        assert 'jobqueue_source_up{source="redis",backend="redis"} 1' in metrics
        assert 'jobqueue_health_issue{system="email",issue="source_down:redis"}' not in metrics
        status, body = await get(client, "/api/v1/platform/system/queues/email/jobs?limit=1",
                                 "/api/v1/platform/system/queues/{queue_name}/jobs", **OPS)
        assert (status, body["data"]["pagination"]["total"]) == (200, 150)
