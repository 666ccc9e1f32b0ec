"""arq, dramatiq, huey, saq, taskiq, Bee-Queue and classic Bull, written (and run) by the real
libraries, read by their layouts.

The Python libraries run on a redis-server of the module's own, each in its own database (arq and
huey keys cannot all be prefixed); Bee-Queue and Bull use the shared Redis under the test's prefix.
Each scenario's numbers are exact, and where a library counts its own queues the test compares
with the library's own figures.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

from tests.conftest import REDIS_URL
from tests.support.redis_libs import (
    by_queue,
    collect,
    make_source,
    samples_of,
    seed_arq,
    seed_dramatiq,
    seed_huey,
    seed_node,
    seed_saq,
    seed_taskiq,
)
from tests.support.servers import RedisServer, redis_per_module

server = redis_per_module("libs")  # arq and huey keys cannot be prefixed


def ms(seconds: float | None) -> int | None:
    """A time in whole milliseconds, as the libraries store it (seconds * 1e-3 is not always exact)."""
    return None if seconds is None else round(seconds * 1000)



@pytest.fixture(scope="module")
def arq_seeded(server: RedisServer) -> tuple[str, dict[str, Any], float]:
    import asyncio

    url = server.db(1)
    view = asyncio.run(seed_arq(url, "arq:queue"))
    return url, view, time.time()


async def test_arq(arq_seeded: tuple[str, dict[str, Any], float]) -> None:
    url, view, now = arq_seeded
    assert view["counters"] == (1, 1, 1)  # the burst worker: complete, failed, retried
    reading = await collect(url, [{"layout": "arq"}], now)  # default queue: arq:queue
    q = by_queue(reading)["arq:queue"]
    # ready: the 2 waiting jobs; deferred: the retried job (+1 h) and the one deferred by 10 min
    assert (q.depth, dict(q.states)) == (2, {"queued": 2, "in_progress": 0, "deferred": 2})
    assert ms(q.oldest_timestamp) == view["enqueued_ms"][0]  # the score is the enqueue time (ms)
    labels = ("", "arq:queue")
    assert samples_of(reading, "jobqueue_workers") == {(*labels, "busy"): 0, (*labels, "idle"): 1,
                                                       (*labels, "paused"): 0}
    # the health key holds j_complete=1 j_failed=1, but only the latest writer's: never a queue counter
    assert samples_of(reading, "jobqueue_jobs_processed") == {}
    assert samples_of(reading, "jobqueue_jobs_failed") == {}
    assert samples_of(reading, "jobqueue_worker_busy_slots") == {labels: 0}
    assert reading.malformed == 0
    # an hour later every job is due; no health-check key on another queue: no worker, no counters
    later = await collect(url, [{"layout": "arq", "queues": ["arq:queue", "other"]}], now + 3700)
    assert by_queue(later)["arq:queue"].depth == 4
    assert samples_of(later, "jobqueue_workers")[("", "other", "idle")] == 0
    assert ("", "other") not in samples_of(later, "jobqueue_jobs_processed")


async def test_arq_job_in_progress(server: RedisServer) -> None:
    """A job arq's worker is running (its in-progress key set) is not waiting; the next one is."""
    import asyncio

    from arq import create_pool
    from arq.connections import RedisSettings
    from arq.jobs import Job, JobStatus
    from arq.worker import Worker

    from tests.support.redis_libs import arq_block, arq_ok

    url = server.db(7)
    settings = RedisSettings.from_dsn(url)
    pool = await create_pool(settings)
    gate = asyncio.Event()
    try:
        running = await pool.enqueue_job("arq_block")
        await asyncio.sleep(0.005)  # a later score: arq picks the lowest first
        waiting = await pool.enqueue_job("arq_ok")
        assert running is not None and waiting is not None
        worker = Worker(functions=[arq_block, arq_ok], redis_settings=settings, burst=True, max_burst_jobs=1,
                        poll_delay=0.01, handle_signals=False, ctx={"gate": gate})
        task = asyncio.create_task(worker.async_run())
        for _ in range(500):
            if await running.status() == JobStatus.in_progress:
                break
            await asyncio.sleep(0.01)
        assert (await running.status(), await waiting.status()) == (JobStatus.in_progress, JobStatus.queued)
        info = await Job(waiting.job_id, pool).info()
        assert info is not None
        reading = await collect(url, [{"layout": "arq"}], time.time())
        gate.set()
        await task
        await worker.pool.aclose()
    finally:
        gate.set()
        await pool.flushdb()
        await pool.aclose()
    q = by_queue(reading)["arq:queue"]
    assert (q.depth, dict(q.states)) == (1, {"queued": 1, "in_progress": 1, "deferred": 0})
    assert ms(q.oldest_timestamp) == round(info.enqueue_time.timestamp() * 1000)  # the waiting job, not the running
    labels = ("", "arq:queue")
    # the health check written while the job ran: one ongoing job
    assert samples_of(reading, "jobqueue_workers") == {(*labels, "busy"): 1, (*labels, "idle"): 0,
                                                       (*labels, "paused"): 0}
    assert samples_of(reading, "jobqueue_worker_busy_slots") == {labels: 1}


@pytest.fixture(scope="module")
def dramatiq_seeded(server: RedisServer) -> tuple[str, dict[str, Any], float]:
    url = server.db(2)
    return url, seed_dramatiq(url, "dq"), time.time()


async def test_dramatiq(dramatiq_seeded: tuple[str, dict[str, Any], float]) -> None:
    url, view, now = dramatiq_seeded
    reading = await collect(url, [{"layout": "dramatiq", "namespace": "dq"}], now)
    q = by_queue(reading)["default"]
    assert view["taken"] == view["first"]  # the consumer holds the first message, unacknowledged
    assert (q.depth, dict(q.states), q.failed) == (2, {"queued": 2, "unacked": 1, "delayed": 2, "dead": 1}, 1)
    assert ms(q.oldest_timestamp) == view["oldest_ms"]  # message_timestamp of the oldest message still waiting
    # the consumer holds the message it fetched (its `__acks__.<broker id>.default` set): one consumer;
    # the worker that ran the first messages is stopped and holds nothing
    assert samples_of(reading, "jobqueue_workers") == {("", "default", "busy"): 1}
    assert reading.malformed == 0
    # past dramatiq's heartbeat timeout the process is no longer live
    later = await collect(url, [{"layout": "dramatiq", "namespace": "dq"}], now + 61)
    assert samples_of(later, "jobqueue_workers") == {("", "default", "busy"): 0}


async def test_dramatiq_unacked_and_foreign_ids(server: RedisServer) -> None:
    """A fetched message stays in `.msgs` until acked; an id with no message is skipped and counted."""
    url = server.db(2)
    conn = redis.Redis.from_url(url, decode_responses=True)
    try:
        conn.rpush("fx:q", "gone", "m2")
        conn.hset("fx:q.msgs", mapping={"m1": '{"message_timestamp": 1699999990000}',
                                        "m2": '{"message_timestamp": 1699999995000}'})
        reading = await collect(url, [{"layout": "dramatiq", "namespace": "fx", "queues": ["q"]}], 1_700_000_000)
    finally:
        conn.delete("fx:q", "fx:q.msgs")
        conn.close()
    q = by_queue(reading)["q"]
    assert (q.depth, dict(q.states)["unacked"], q.oldest_timestamp) == (2, 0, 1_699_999_995.0)
    assert reading.malformed == 1


@pytest.fixture(scope="module")
def huey_seeded(server: RedisServer) -> tuple[str, dict[str, Any]]:
    url = server.db(3)
    return url, seed_huey(url, "jq-huey")


async def test_huey(huey_seeded: tuple[str, dict[str, Any]]) -> None:
    url, counts = huey_seeded
    reading = await collect(url, [{"layout": "huey", "queues": ["jq-huey"]}], time.time())
    q = by_queue(reading)["jq-huey"]
    # 6 enqueued, 4 taken; scheduled: the scheduled task and the flaky retry; results: the good task's
    # value, the failed task's error and the flaky task's error of its first try (store_errors)
    assert (q.depth, dict(q.states), q.oldest_timestamp) == (2, {"queued": 2, "scheduled": 2, "results": 3}, None)
    assert counts == {"pending": 2, "scheduled": 2, "results": 3}  # huey's own counts
    assert reading.malformed == 0


async def test_huey_priority_storage(server: RedisServer) -> None:
    """PriorityRedisHuey keeps its queue as a zset under the same key: the depth is its ZCARD."""
    from huey import PriorityRedisHuey

    url = server.db(8)
    huey = PriorityRedisHuey("jq.prio", url=url)

    @huey.task()
    def job(n: int) -> int:
        return n

    for priority in (None, 5, 9):
        huey.enqueue(job.s(priority or 0, priority=priority))
    try:
        assert huey.pending_count() == 3
        reading = await collect(url, [{"layout": "huey", "queues": ["jq.prio"]}], time.time())
    finally:
        huey.storage.conn.flushdb()
        huey.storage.conn.close()
    q = by_queue(reading)["jq.prio"]  # the `queue` label is the configured name; keys use "jqprio"
    assert (q.depth, dict(q.states), reading.malformed) == (3, {"queued": 3, "scheduled": 0, "results": 0}, 0)


@pytest.fixture(scope="module")
def saq_seeded(server: RedisServer) -> tuple[str, dict[str, Any], float]:
    import asyncio

    url = server.db(4)
    return url, asyncio.run(seed_saq(url, "jq")), time.time()


async def test_saq(saq_seeded: tuple[str, dict[str, Any], float]) -> None:
    url, view, now = saq_seeded
    reading = await collect(url, [{"layout": "saq", "queues": ["jq", "none"]}], now)
    q = by_queue(reading)["jq"]
    assert view["taken"] == view["first"]
    assert (q.depth, dict(q.states)) == (2, {"queued": 2, "active": 1, "scheduled": 2})
    assert dict(q.states) == view["info"]  # saq's own Queue.info()
    assert ms(q.oldest_timestamp) == view["oldest_ms"]  # `queued` (ms) of the first waiting job
    assert samples_of(reading, "jobqueue_workers") == {("", "jq", "unknown"): view["workers"],
                                                       ("", "none", "unknown"): 0}
    assert view["workers"] == 1
    # the worker's own stats: 1 complete, 1 failed (the flaky job was retried, not finished)
    assert samples_of(reading, "jobqueue_jobs_processed") == {("", "jq"): 2, ("", "none"): 0}
    assert samples_of(reading, "jobqueue_jobs_failed") == {("", "jq"): 1, ("", "none"): 0}
    # past the worker info's ttl (60 s) the worker is gone; the source keeps the counts it saw of it
    source = make_source(url, [{"layout": "saq", "queues": ["jq"]}], now)
    try:
        first = await source.collect()
        source.clock = lambda: now + 61
        later = await source.collect()
    finally:
        await source.close()
    assert samples_of(later, "jobqueue_workers") == {("", "jq", "unknown"): 0}
    for seen in (first, later):
        assert samples_of(seen, "jobqueue_jobs_processed") == {("", "jq"): 2}
        assert samples_of(seen, "jobqueue_jobs_failed") == {("", "jq"): 1}
    assert (by_queue(reading)["none"].depth, by_queue(reading)["none"].oldest_timestamp) == (0, None)
    assert reading.malformed == 0


@pytest.fixture(scope="module")
def taskiq_seeded(server: RedisServer) -> str:
    import asyncio

    url = server.db(5)
    asyncio.run(seed_taskiq(url, "jq-list", "jq-stream"))
    return url


async def test_taskiq_list_and_stream(taskiq_seeded: str) -> None:
    url = taskiq_seeded
    queues = [{"layout": "taskiq", "queues": ["jq-list"]},
              {"layout": "taskiq", "broker": "stream", "queues": ["jq-stream", "jq-none"]}]
    reading = await collect(url, queues, time.time())
    got = by_queue(reading)
    assert (got["jq-list"].depth, dict(got["jq-list"].states)) == (3, {"queued": 3})
    # 4 kicked; the group took 2 and acknowledged 1: 2 undelivered, 1 pending (acked entries stay)
    assert (got["jq-stream"].depth, dict(got["jq-stream"].states)) == (2, {"queued": 2, "pending": 1})
    conn = redis.Redis.from_url(url, decode_responses=True)
    entries = [entry_id for entry_id, _ in conn.xrange("jq-stream")]
    conn.close()
    assert len(entries) == 4  # acknowledged entries stay in the stream
    # the oldest waiting task: the third entry, the first the group has not been delivered
    assert ms(got["jq-stream"].oldest_timestamp) == int(entries[2].split("-")[0])
    assert got["jq-list"].oldest_timestamp is None and got["jq-none"].oldest_timestamp is None
    assert (got["jq-none"].depth, dict(got["jq-none"].states)) == (0, {"queued": 0, "pending": 0})
    assert reading.malformed == 0


async def test_beequeue(redis_client: redis.Redis, prefix: str) -> None:
    bq = prefix.rstrip(":")
    report = seed_node("beequeue_seed.js", REDIS_URL, bq)
    reading = await collect(REDIS_URL, [{"layout": "beequeue", "prefix": bq, "queues": ["work", "none"]}],
                         time.time())
    q = by_queue(reading)["work"]
    health = report["health"]  # Bee-Queue's own Queue#checkHealth
    assert (q.depth, dict(q.states), q.failed) == (
        2, {"active": 1, "succeeded": 1, "failed": 1, "delayed": 2}, 1)
    assert q.depth == health["waiting"] and dict(q.states) == {k: health[k] for k in dict(q.states)}
    # options.timestamp of the oldest job still waiting (the first one is active)
    assert ms(q.oldest_timestamp) == report["timestamps"][1]
    assert (by_queue(reading)["none"].depth, by_queue(reading)["none"].oldest_timestamp) == (0, None)
    assert reading.malformed == 0


async def test_bull_classic_read_by_the_bullmq_layout(redis_client: redis.Redis, prefix: str) -> None:
    bull = prefix.rstrip(":")
    report = seed_node("bull_seed.js", REDIS_URL, bull)
    # classic Bull pauses by RENAMEing `wait` to `paused` and sets both `meta-paused` and `meta.paused`
    assert redis_client.type(f"{bull}:held:paused") == "list" and redis_client.exists(f"{bull}:held:wait") == 0
    assert redis_client.hget(f"{bull}:held:meta", "paused") == "1"
    queues = [{"layout": "bullmq", "prefix": bull, "queues": ["work", "held"]}]
    reading = await collect(REDIS_URL, queues, time.time())
    work, held = by_queue(reading)["work"], by_queue(reading)["held"]
    counts = report["queues"]["work"]["counts"]  # Bull's own getJobCounts()
    # the first of the 3 jobs added last is active: the oldest waiting is the second
    assert (work.depth, work.paused, work.failed, ms(work.oldest_timestamp)) == (2, False, 1, report["timestamps"][1])
    assert dict(work.states) == {"active": 1, "delayed": 2, "prioritized": 0, "waiting-children": 0,
                                 "completed": 1, "failed": 1}
    assert {k: counts[k] for k in ("active", "delayed", "completed", "failed")} == {
        k: v for k, v in dict(work.states).items() if k in counts}
    assert work.depth == counts["waiting"]
    assert (held.depth, held.paused, ms(held.oldest_timestamp)) == (2, True, report["heldTimestamps"][0])
    assert report["queues"]["held"]["counts"]["paused"] == 2 and report["queues"]["held"]["paused"] is True
    assert reading.malformed == 0


async def test_foreign_and_malformed_items_counted_and_skipped(server: RedisServer) -> None:
    """Keys of the wrong type, ids with no job, job documents that are not JSON and a health value
    that is not arq's: each counted once as malformed, the rest of the queue still read."""
    url = server.db(6)
    conn = redis.Redis.from_url(url, decode_responses=True)
    try:
        conn.rpush("aq", "x")  # arq queue that is a list
        conn.set("ok:health-check", "hello")  # not arq's health string
        conn.set("huey.redis.hq", "x")  # huey queue that is a string
        conn.rpush("saq:sq:queued", "saq:job:sq:none", "saq:job:sq:bad", "saq:job:sq:good")
        conn.set("saq:job:sq:bad", "{not json")
        conn.set("saq:job:sq:good", '{"queued": 1699999990000}')
        conn.zadd("saq:sq:stats", {"saq:sq:worker_info:w1": 1_700_000_060_000})
        conn.set("saq:sq:worker_info:w1", "[]")  # not saq's worker info
        conn.hset("tl", "f", "v")  # taskiq list broker key that is a hash
        conn.rpush("ts", "x")  # taskiq stream that is a list
        conn.lpush("bq:bw:waiting", "3", "2", "1")  # pushed first, oldest: 3 (no job), then 2 (not JSON), 1
        conn.hset("bq:bw:jobs", mapping={"2": "nope", "1": '{"options": {"timestamp": 1699999980000}}'})
        queues = [{"layout": "arq", "queues": ["aq", "ok"]}, {"layout": "huey", "queues": ["hq"]},
                  {"layout": "saq", "queues": ["sq"]}, {"layout": "taskiq", "queues": ["tl"]},
                  {"layout": "taskiq", "broker": "stream", "queues": ["ts"]},
                  {"layout": "beequeue", "queues": ["bw"]}]
        reading = await collect(url, queues, 1_700_000_000)
    finally:
        conn.flushdb()
        conn.close()
    got = {q.queue: (q.depth, ms(q.oldest_timestamp)) for q in reading.queues}
    assert got == {"aq": (0, None), "ok": (0, None), "hq": (0, None), "sq": (3, 1699999990000), "tl": (0, None),
                   "ts": (0, None), "bw": (3, 1699999980000)}
    # arq 2, huey 1, saq 2 items + 1 worker, taskiq 2, Bee-Queue 2
    assert reading.malformed == 10


async def test_taskiq_stream_whose_lag_redis_cannot_tell_is_not_empty(redis_client: redis.Redis,
                                                                      prefix: str) -> None:
    """An entry deleted after the group's last-delivered-id (XDEL, or trimming past a slow group) makes
    XINFO GROUPS report lag NULL: the backlog is unknown, not 0 (as for the `stream` layout: XLEN)."""
    key = f"{prefix}ts"
    for n in (1, 2, 3, 4):
        redis_client.xadd(key, {"data": "m"}, id=f"{1_699_999_990_000 + n}-0")
    redis_client.xgroup_create(key, "taskiq", id="0")
    redis_client.xreadgroup("taskiq", "c1", {key: ">"}, count=1)  # 1 delivered, 1 pending
    redis_client.xdel(key, f"{1_699_999_990_003}-0")  # a hole after last-delivered-id: lag NULL
    assert redis_client.xinfo_groups(key)[0]["lag"] is None
    reading = await collect(REDIS_URL, [{"layout": "taskiq", "broker": "stream", "queues": [key]}],
                         1_700_000_000)
    q = by_queue(reading)[key]
    # XLEN 3 (the delivered entry stays in the stream): an upper bound, where 0 would hide the backlog
    assert (q.depth, dict(q.states)) == (3, {"queued": 3, "pending": 1})
    assert ms(q.oldest_timestamp) == 1_699_999_990_002  # the first entry after last-delivered-id


async def test_new_layouts_per_tenant(redis_client: redis.Redis, prefix: str) -> None:
    """`{tenant}` in a prefix, namespace or queue name reads one queue per tenant in the same batch."""
    for tenant, n in (("a", 2), ("b", 1)):
        for i in range(n):
            redis_client.lpush(f"{prefix}{tenant}:bq:mail:waiting", str(i))
            redis_client.rpush(f"{prefix}{tenant}:dq:default", f"m{i}")
        redis_client.zadd(f"{prefix}{tenant}:arq", {f"j{i}": 1_699_999_000_000 + i for i in range(n)})
    queues = [{"layout": "beequeue", "prefix": f"{prefix}{{tenant}}:bq", "queues": ["mail"]},
              {"layout": "dramatiq", "namespace": f"{prefix}{{tenant}}:dq"},
              {"layout": "arq", "queues": [f"{prefix}{{tenant}}:arq"]}]
    reading = await collect(REDIS_URL, queues, 1_700_000_000, tenants={"static": ["a", "b"]})
    got = sorted((q.tenant, q.queue.removeprefix(prefix), q.depth) for q in reading.queues)
    assert got == [("a", "a:arq", 2), ("a", "default", 2), ("a", "mail", 2),
                   ("b", "b:arq", 1), ("b", "default", 1), ("b", "mail", 1)]
    # ids with no job behind them: each oldest read skips them and counts them (Bee-Queue 3, dramatiq 3)
    assert reading.malformed == 6
