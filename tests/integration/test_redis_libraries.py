"""RQ, Celery/kombu and BullMQ queues written by the real libraries, read by the exporter.

Where a library can count its own queues, the test compares the exporter's numbers with the
library's own, and with the exact numbers the scenario produces. RQ's key names cannot be
prefixed (`rq:queues` is global), so RQ runs on a redis-server of its own; the others use the
shared Redis under the test's prefix.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from tests.conftest import REDIS_URL
from tests.support.redis_libs import (
    by_queue,
    collect,
    complete_bullmq,
    samples_of,
    seed_bullmq,
    seed_celery,
    seed_rq,
    take_unacked,
)
from tests.support.servers import RedisServer


@pytest.fixture(scope="module")
def rq_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, dict]]:
    server = RedisServer(tmp_path_factory.mktemp("rq")).start()
    conn = redis.Redis.from_url(server.url)
    try:
        yield server, seed_rq(conn, "mail")
    finally:
        conn.close()
        server.stop()


async def test_rq_real_enqueue_and_registries(rq_server: tuple[RedisServer, dict]) -> None:
    server, rq_view = rq_server
    # queues discovered from rq:queues; the real clock, since RQ stamped the jobs with it (a time
    # after the source's clock would be implausible)
    reading = await collect(server.url, [{"layout": "rq"}], now=None)
    queues = by_queue(reading)
    assert sorted(queues) == ["mail", "mail-parked"]
    q = queues["mail"]
    states = dict(q.states)
    # exact numbers of the scenario, and RQ's own counts (get_job_count(cleanup=False))
    assert (q.depth, states) == (3, {"started": 1, "failed": 1, "finished": 1, "scheduled": 1, "deferred": 1,
                                     "canceled": 1, "ready": 0})
    assert (q.depth, states) == (rq_view["depth"], rq_view["states"])
    assert q.oldest_timestamp == rq_view["oldest"]  # enqueued_at of the first waiting job, to the microsecond
    assert q.failed == 1
    assert by_queue(reading)["mail-parked"].depth == 1


async def test_celery_priorities_prefix_and_unacked(redis_client: redis.Redis, prefix: str) -> None:
    seed_celery(REDIS_URL, prefix, "jq", [None, 0, 2, 3, 5, 6, 7, 9])
    seed_celery(REDIS_URL, prefix, "other", [None])
    # kombu's own key names: bare name for step 0, name + \x06\x16 + step for the others
    assert {k: redis_client.llen(k) for k in redis_client.scan_iter(f"{prefix}jq*")} == {
        f"{prefix}jq": 3, f"{prefix}jq\x06\x163": 2, f"{prefix}jq\x06\x166": 2, f"{prefix}jq\x06\x169": 1}
    conn, simple, _held = take_unacked(REDIS_URL, prefix, "other", 1)
    try:
        assert redis_client.hlen(f"{prefix}unacked") == 1
        queues = [{"layout": "celery", "queues": ["jq", "other", "idle"], "global_keyprefix": prefix}]
        reading = await collect(REDIS_URL, queues)
    finally:
        simple.close()
        conn.release()
    got = {q.queue: (q.depth, q.oldest_timestamp) for q in reading.queues}
    assert got == {"jq": (8, None), "other": (0, None), "idle": (0, None)}  # protocol v2 stores no send time
    assert samples_of(reading, "jobqueue_library_jobs") == {("", "unacked"): 1}


async def test_bullmq_v6(redis_client: redis.Redis, prefix: str) -> None:
    bull_prefix = prefix.rstrip(":")
    base = 1_699_999_000_000
    report = seed_bullmq(REDIS_URL, bull_prefix, base)
    # BullMQ 6 writes no `paused` list: a paused queue keeps its jobs in `wait`, meta.paused = 1
    assert f"{bull_prefix}:held:paused" not in report["keys"]
    assert redis_client.hget(f"{bull_prefix}:held:meta", "paused") == "1"
    queues = [{"layout": "bullmq", "prefix": bull_prefix, "queues": ["work", "held", "none"]}]
    reading = await collect(REDIS_URL, queues)
    got = by_queue(reading)
    work, held = got["work"], got["held"]
    counts = report["queues"]["work"]["counts"]
    # ready = wait + prioritized; the oldest of `wait` is the first job added (base ms)
    assert (work.depth, work.oldest_timestamp, work.paused, work.failed) == (4, base / 1000, False, 0)
    assert work.depth == counts["wait"] + counts["prioritized"]
    assert dict(work.states) == {"active": 0, "delayed": 1, "prioritized": 1, "waiting-children": 0,
                                 "completed": 0, "failed": 0}
    assert {k: v for k, v in dict(work.states).items()} == {k: counts[k] for k in dict(work.states)}
    assert (held.depth, held.oldest_timestamp, held.paused) == (2, (base + 10_000) / 1000, True)
    assert report["queues"]["held"]["paused"] is True
    assert (got["none"].depth, got["none"].oldest_timestamp, got["none"].paused) == (0, None, False)
    assert reading.malformed == 0


async def test_bullmq_completed_last_hour_with_and_without_remove_on_complete(
        redis_client: redis.Redis, prefix: str) -> None:
    """Real BullMQ Workers finish 7 jobs per queue: kept in the completed set (scores = finishedOn),
    removed on completion but counted by BullMQ's worker metrics, removed with no metrics (unknown)."""
    bull_prefix = prefix.rstrip(":")
    report = complete_bullmq(REDIS_URL, bull_prefix, 7)
    assert report == {"kept": {"completed": 7}, "dropped": {"completed": 0, "metrics": 7}, "blind": {"completed": 0}}
    queues = [{"layout": "bullmq", "prefix": bull_prefix, "queues": ["kept", "dropped", "blind"]}]
    reading = await collect(REDIS_URL, queues, now=None)  # BullMQ stamped the jobs with the real clock
    got = {q.queue: q.completed_last_hour for q in reading.queues}
    assert got == {"kept": 7, "dropped": 7, "blind": None}
    # an hour later nothing of it is recent: the set's scores and the metrics' minute both say 0
    later = await collect(REDIS_URL, queues, now=time.time() + 3700)
    assert {q.queue: q.completed_last_hour for q in later.queues} == {"kept": 0, "dropped": 0, "blind": None}


async def test_bullmq_v5_paused_list_still_counts(redis_client: redis.Redis, prefix: str) -> None:
    """BullMQ 5 paused by RENAMEing `wait` to `paused`; such data may still sit in an upgraded Redis."""
    base = f"{prefix}b:q"
    for job_id, ts in (("1", 1_699_999_100_000), ("2", 1_699_999_200_000)):
        redis_client.hset(f"{base}:{job_id}", mapping={"name": "j", "data": "{}", "opts": "{}", "timestamp": ts})
        redis_client.lpush(f"{base}:paused", job_id)
    redis_client.hset(f"{base}:meta", "paused", "1")
    reading = await collect(REDIS_URL, [{"layout": "bullmq", "prefix": f"{prefix}b", "queues": ["q"]}])
    q = by_queue(reading)["q"]
    assert (q.depth, q.oldest_timestamp, q.paused) == (2, 1_699_999_100.0, True)
