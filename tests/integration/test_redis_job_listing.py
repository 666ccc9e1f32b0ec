"""The queue-platform shim's job listing (`GET /api/v1/platform/system/queues/{queue}/jobs`, seed 003)
for arq, dramatiq, saq, taskiq and Bee-Queue, with jobs written by the real libraries, compared with
each library's own view where it has one (arq `queued_jobs`, saq `info(jobs=True)`, Bee-Queue
`getJobs`). Python libraries run on a redis-server of the module's own (arq keys cannot be prefixed),
one database each; Bee-Queue uses the shared Redis under the test's prefix.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis

from tests.conftest import REDIS_URL
from tests.support.redis_libs import seed_node, seed_saq, seed_taskiq
from tests.support.servers import RedisServer, redis_per_module
from tests.support.shims import get, serve

ENV = {"OPS_TOKEN": "ops-secret"}
OPS = {"Authorization": "Bearer ops-secret"}
PATH = "/api/v1/platform/system/queues/{queue_name}/jobs"


server = redis_per_module("listing")  # arq and huey keys cannot be prefixed



def config(url: str, layout: str, queues: list[str]) -> str:
    rules = "\n".join(f"      - {{source: r, queue: {q!r}}}" for q in queues)
    return f"""
sources:
  - name: r
    type: redis
    url: {url}
    queues:
      - {layout}
systems:
  - name: s
    sources: [r]
    queues:
{rules}
auth:
  tokens:
    - {{name: ops, token: "${{OPS_TOKEN}}", roles: [ops]}}
shims:
  platform:
    system: s
"""


async def page(client: Any, queue: str, query: str = "") -> dict[str, Any]:
    status, body = await get(client, f"/api/v1/platform/system/queues/{queue}/jobs?{query}", PATH, **OPS)
    assert status == 200, body
    return dict(body["data"])


def iso(ms: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(ms / 1000)))


async def test_arq_jobs_with_their_scores(server: RedisServer) -> None:
    """arq's own `queued_jobs()` (ids and scores) is the listing, lowest score first; the pickled job
    itself is never read."""
    from arq import create_pool
    from arq.connections import RedisSettings

    url = server.db(1)
    pool = await create_pool(RedisSettings.from_dsn(url))
    try:
        for i in range(3):
            await pool.enqueue_job("arq_ok", i)
            await asyncio.sleep(0.002)  # distinct scores (ms)
        await pool.enqueue_job("arq_ok", _defer_by=600)
        own = await pool.queued_jobs()  # arq's own view, in the zset's order (JobDef has no id)
        ids = [job_id.decode() for job_id in await pool.zrange("arq:queue", 0, -1)]
        async with serve(config(url, "{layout: arq}", ["arq:queue"]), ENV) as (client, _):
            data = await page(client, "arq:queue", "limit=2&offset=1")
    finally:
        await pool.flushdb()
        await pool.aclose()
    assert data["pagination"] == {"total": 4, "limit": 2, "offset": 1}
    assert [(j["id"], j["updated_at"]) for j in data["jobs"]] == [
        (job_id, iso(j.score)) for job_id, j in zip(ids[1:3], own[1:3], strict=True)]
    assert [j.args for j in own[1:3]] == [(1,), (2,)]
    # the pickled job's function, tries and `et`, read from its opcodes (arq's own JobDef unpickles it)
    assert [(j["status"], j["payload"], j["attempts"], j["created_at"]) for j in data["jobs"]] == [
        ("waiting", {"function": j.function}, j.job_try, iso(j.enqueue_time.timestamp() * 1000)) for j in own[1:3]]


def seed_dramatiq_listing(url: str, namespace: str) -> list[Any]:
    """With dramatiq's real Worker: a message that fails once (max_retries=0) and one that fails, is
    retried and fails again (max_retries=1): both dead-lettered; then, the worker stopped, 3 messages
    sent that wait. Returns the waiting messages."""
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker
    from dramatiq.worker import Worker

    broker = RedisBroker(url=url, namespace=namespace)

    @dramatiq.actor(broker=broker, max_retries=0, actor_name="boom")
    def boom() -> None:
        raise RuntimeError("boom")

    @dramatiq.actor(broker=broker, actor_name="ok")
    def ok(n: int) -> None:
        """Never run here: its messages wait."""

    @dramatiq.actor(broker=broker, max_retries=1, min_backoff=10, max_backoff=10, actor_name="twice")
    def twice(n: int) -> None:
        raise ValueError(f"twice {n}")

    boom.send()
    time.sleep(0.005)
    twice.send(7)
    worker = Worker(broker, worker_threads=1, worker_timeout=50)
    worker.start()
    deadline = time.monotonic() + 30
    while broker.client.zcard(f"{namespace}:default.XQ") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.stop()
    waiting = []
    for i in range(3):
        waiting.append(ok.send(i))
        time.sleep(0.002)  # distinct message_timestamps (ms)
    broker.close()
    return waiting


async def test_dramatiq_waiting_and_dead_letters(server: RedisServer) -> None:
    """Waiting: the queue's ids, oldest first, each message from the `.msgs` hash; failed: the
    dead-letter set `.XQ`, newest first. `nack` (dispatch.lua) moves the message as it was last
    enqueued, so a dead letter carries the traceback the Retries middleware (dramatiq/middleware/
    retries.py) put in `options` when it retried it, and none when it failed on its first try."""
    url = server.db(2)
    sent = seed_dramatiq_listing(url, "dl")
    conn = redis.Redis.from_url(url, decode_responses=True)
    try:
        dead_at = [score for _, score in conn.zrange("dl:default.XQ", 0, -1, withscores=True, desc=True)]
        async with serve(config(url, "{layout: dramatiq, namespace: dl}", ["default"]), ENV) as (client, _):
            waiting = await page(client, "default", "limit=2")
            failed = await page(client, "default", "status=failed")
            active = await page(client, "default", "status=active")
    finally:
        conn.flushdb()
        conn.close()
    assert waiting["pagination"] == {"total": 3, "limit": 2, "offset": 0}
    assert [(j["id"], j["status"], j["payload"], j["attempts"], j["error"], j["created_at"])
            for j in waiting["jobs"]] == [
        (m.message_id, "waiting", {"actor_name": "ok", "args": [i], "kwargs": {}}, None, None,
         iso(m.message_timestamp)) for i, m in enumerate(sent[:2])]
    assert failed["pagination"]["total"] == 2
    retried, once = failed["jobs"]  # newest dead letter first
    assert (retried["payload"], retried["attempts"]) == ({"actor_name": "twice", "args": [7], "kwargs": {}}, 1)
    assert retried["error"]["message"] == "ValueError: twice 7"
    assert retried["error"]["stack_trace"].startswith("Traceback (most recent call last):")
    assert (once["payload"]["actor_name"], once["attempts"], once["error"]) == ("boom", None, None)
    assert [retried["updated_at"], once["updated_at"]] == [iso(at) for at in dead_at]  # when dead-lettered
    assert active == {"jobs": [], "pagination": {"total": 0, "limit": 50, "offset": 0}}


async def test_saq_queued_and_active(server: RedisServer) -> None:
    """saq's queued and active lists; the active page equals saq's own `info(jobs=True)`."""
    from saq import Queue

    url = server.db(4)
    view = await seed_saq(url, "jq")
    queue = Queue.from_url(url, name="jq")
    try:
        own = (await queue.info(jobs=True))["jobs"]
        async with serve(config(url, "{layout: saq, queues: [jq]}", ["jq"]), ENV) as (client, _):
            waiting = await page(client, "jq")
            active = await page(client, "jq", "status=active")
    finally:
        await queue.redis.flushdb()
        await queue.disconnect()
    assert waiting["pagination"]["total"] == 2
    assert [j["payload"] for j in waiting["jobs"]] == [{"function": "saq_ok", "kwargs": {"n": 1}},
                                                       {"function": "saq_ok", "kwargs": {"n": 2}}]
    assert waiting["jobs"][0]["created_at"] == iso(view["oldest_ms"])  # `queued` (ms)
    assert [j["id"] for j in active["jobs"]] == [view["taken"]]  # dequeued: moved to `active`
    assert view["taken"] in {j["key"] for j in own}  # info(jobs=True): the active list, then `incomplete`


async def test_taskiq_list_broker(server: RedisServer) -> None:
    """The list broker's messages, and the stream broker's entries the consumer group has not been
    delivered (taskiq_redis RedisStreamBroker: XADD, XREADGROUP), oldest first."""
    url = server.db(5)
    await seed_taskiq(url, "jq-list", "jq-stream")
    conn = redis.Redis.from_url(url, decode_responses=True)
    entries = [entry_id for entry_id, _ in conn.xrange("jq-stream")]  # XADD `*`: each id starts with its time (ms)
    try:
        layouts = "{layout: taskiq, queues: [jq-list]}\n      - {layout: taskiq, broker: stream, queues: [jq-stream]}"
        async with serve(config(url, layouts, ["jq-list", "jq-stream"]), ENV) as (client, _):
            listed = await page(client, "jq-list", "limit=2")
            streamed = await page(client, "jq-stream")
    finally:
        conn.flushdb()
        conn.close()
    assert listed["pagination"] == {"total": 3, "limit": 2, "offset": 0}
    # kicked add(0, 1), add(1, 1), add(2, 1): the oldest first
    assert [j["payload"]["args"] for j in listed["jobs"]] == [[0, 1], [1, 1]]
    assert {j["payload"]["task_name"] for j in listed["jobs"]} == {"jq.add"}
    assert all(len(j["id"]) == 32 for j in listed["jobs"])  # taskiq's task_id (uuid4 hex)
    # 4 kicked mul(i, 2); the group was delivered 2: the waiting entries are the last 2, oldest first
    assert streamed["pagination"]["total"] == 2
    assert [j["payload"]["args"] for j in streamed["jobs"]] == [[2, 2], [3, 2]]
    assert [j["created_at"] for j in streamed["jobs"]] == [iso(int(e.split("-")[0])) for e in entries[2:]]


async def test_beequeue_waiting_and_active(redis_client: redis.Redis, prefix: str) -> None:
    """Bee-Queue's own `getJobs` (newest first) against the listing (oldest first)."""
    bq = prefix.rstrip(":")
    report = seed_node("beequeue_seed.js", REDIS_URL, bq)
    layout = f"{{layout: beequeue, prefix: {bq!r}, queues: [work]}}"
    async with serve(config(REDIS_URL, layout, ["work"]), ENV) as (client, _):
        waiting = await page(client, "work")
        active = await page(client, "work", "status=active")
    own = report["jobs"]
    assert [(j["id"], j["payload"], j["created_at"]) for j in waiting["jobs"]] == [
        (j["id"], j["data"], iso(j["timestamp"])) for j in reversed(own["waiting"])]
    assert [j["id"] for j in active["jobs"]] == [j["id"] for j in own["active"]]
    assert (waiting["pagination"]["total"], active["pagination"]["total"]) == (2, 1)


async def test_huey_pickles_read_without_unpickling(server: RedisServer) -> None:
    """huey's own `pending()` (which unpickles) against the listing, which reads each message's id and
    task name from its opcodes only; the priority storage's zset in huey's dequeue order, with the
    enqueue time each member starts with (huey/storage.py RedisPriorityQueue.enqueue)."""
    from huey import PriorityRedisHuey, RedisHuey

    url = server.db(3)
    plain = RedisHuey("jq-plain", url=url)
    prio = PriorityRedisHuey("jq.prio", url=url)

    @plain.task()
    def mail(n: int) -> int:
        return n

    @prio.task()
    def urgent(n: int) -> int:
        return n

    try:
        for i in range(3):
            mail(i)
        before = time.time()
        for priority in (1, 9, 5):
            prio.enqueue(urgent.s(priority, priority=priority))
        after = time.time()
        own_plain, own_prio = plain.pending(), prio.pending()
        layouts = "{layout: huey, queues: [jq-plain, jq.prio]}"
        async with serve(config(url, layouts, ["jq-plain", "jq.prio"]), ENV) as (client, _):
            listed = await page(client, "jq-plain", "limit=2&offset=1")
            prioritized = await page(client, "jq.prio")
    finally:
        plain.storage.conn.flushdb()
        plain.storage.conn.close()
        prio.storage.conn.close()
    assert listed["pagination"] == {"total": 3, "limit": 2, "offset": 1}
    assert [(j["id"], j["payload"]) for j in listed["jobs"]] == [
        (m.id, {"task": plain._registry.task_to_string(type(m))}) for m in own_plain[1:3]]  # its registry key
    assert [m.args for m in own_prio] == [(9,), (5,), (1,)]  # huey's order: highest priority first
    assert [j["id"] for j in prioritized["jobs"]] == [m.id for m in own_prio]
    stamps = [j["created_at"] for j in prioritized["jobs"]]
    assert all(iso(before * 1000 - 1000) <= s <= iso(after * 1000 + 1000) for s in stamps)
