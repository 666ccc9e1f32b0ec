"""Flow and workers (issue 11) from what each library keeps, read by the exporter.

RQ and BullMQ run their real workers here (an `rq worker` process, a BullMQ Worker in node with
metrics enabled); Sidekiq cannot run here, so its process hashes are written exactly as
launcher.rb `❤` writes them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import REDIS_URL
from tests.support.redis_libs import (
    NODE_DIR,
    NOW,
    collect,
    make_source,
    samples_of,
    seed_sidekiq,
    sidekiq_process,
)
from tests.support.servers import RedisServer

ROOT = Path(__file__).resolve().parents[2]


def wait_for(check: Callable[[], bool], seconds: float = 120) -> None:
    """Bounded poll for what a real worker does on its own time."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def flow_of(reading: Any) -> dict[str, dict[tuple[str, ...], float]]:
    return {m: samples_of(reading, m) for m in (
        "jobqueue_jobs_processed", "jobqueue_jobs_failed", "jobqueue_workers", "jobqueue_worker_capacity",
        "jobqueue_worker_busy_slots", "jobqueue_job_runtime_seconds")}


# ---------------------------------------------------------------------------------------------- RQ


@pytest.fixture
def rq_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """RQ's keys cannot be prefixed: a redis-server of the test's own."""
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


# A warm-shut-down RQ worker has registered its death before it exits, but may then take up to a
# minute to end: rq/worker/base.py `teardown` calls `unsubscribe`, which sends UNSUBSCRIBE and then
# `self.pubsub_thread.stop()` (its `subscribe` started that thread with `sleep_time=60`). In redis-py
# 8.2 redis/client.py `PubSubWorkerThread.stop()` joins the thread without a timeout, and when the
# thread reads the UNSUBSCRIBE reply before the running flag is cleared, its next `get_message`
# waits `subscribed_event.wait(60)` for a subscription that never comes. Under load that race is
# common; the worker still ends on its own, so the bound is that minute plus a loaded machine's slack.
RQ_EXIT_BOUND = 60 + 60


def start_rq_worker(url: str, name: str, queues: list[str], *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "rq.cli", "worker", "-u", url, "-n", name, *extra, *queues],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def killed_rq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """An rq worker with the shortest expiry RQ allows (`--worker-ttl 1`: its key lives 1 + 60 s after
    each heartbeat), killed with SIGKILL as soon as it is registered. Module-scoped and used by the
    first test, so the minute RQ takes to forget it passes while the other tests run."""
    from rq import Worker

    server = RedisServer(tmp_path_factory.mktemp("rqkill")).start()
    conn = redis.Redis.from_url(server.url)
    worker = start_rq_worker(server.url, "doomed", ["jobs"], "--worker-ttl", "1")
    try:
        wait_for(lambda: [w.name for w in Worker.all(connection=conn)] == ["doomed"])
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        yield server
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        conn.close()
        server.stop()


async def test_rq_killed_worker_counts_as_live_until_its_key_expires(killed_rq: RedisServer) -> None:
    """SIGKILL registers no death: RQ (Worker.all) still lists the worker while its key lives."""
    conn = redis.Redis.from_url(killed_rq.url)
    ttl = conn.ttl("rq:worker:doomed")
    conn.close()
    assert 0 < ttl <= 61  # RQ's own view: the key still lives (the test runs first in the module)
    got = flow_of(await collect(killed_rq.url, [{"layout": "rq", "queues": ["jobs"]}], None))
    assert got["jobqueue_workers"][("", "jobs", "idle")] == 1


async def test_rq_real_worker_counts_and_states(rq_redis: RedisServer) -> None:
    from rq import Queue, Worker

    from tests.support.redis_libs import rq_fail, rq_ok

    conn = redis.Redis.from_url(rq_redis.url)
    jobs, mail = Queue("jobs", connection=conn), Queue("mail", connection=conn)
    worker = start_rq_worker(rq_redis.url, "w1", ["jobs", "mail"])
    try:
        for _ in range(5):
            jobs.enqueue(rq_ok)
        for _ in range(3):
            mail.enqueue(rq_fail)
        # RQ's own view: the worker hash counts 5 successes and 3 failures
        wait_for(lambda: [(w.successful_job_count, w.failed_job_count, w.get_state())
                          for w in Worker.all(connection=conn)] == [(5, 3, "idle")])
        seen = Worker.all(connection=conn)[0]
        source = make_source(rq_redis.url, [{"layout": "rq"}], now=None)
        reading = await source.collect()
        got = flow_of(reading)
        assert got["jobqueue_jobs_processed"] == {("", ""): 8}
        assert got["jobqueue_jobs_failed"] == {("", ""): 3}
        # one live worker serving both queues, counted under each
        assert got["jobqueue_workers"] == {("", q, s): (1 if s == "idle" else 0)
                                           for q in ("jobs", "mail") for s in ("busy", "idle", "paused")}
        assert got["jobqueue_worker_capacity"] == {("", "jobs"): 1, ("", "mail"): 1}
        assert got["jobqueue_worker_busy_slots"] == {("", "jobs"): 0, ("", "mail"): 0}
        assert got["jobqueue_job_runtime_seconds"] == {("", ""): pytest.approx(seen.total_working_time / 8)}

        # a clean exit: RQ drops the worker from rq:workers at once; the counter does not go down
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=RQ_EXIT_BOUND)
        assert Worker.all(connection=conn) == []
        after = flow_of(await source.collect())
        assert (after["jobqueue_jobs_processed"], after["jobqueue_jobs_failed"]) == ({("", ""): 8}, {("", ""): 3})
        assert set(after["jobqueue_workers"].values()) == {0}  # the queues stay, with no live worker

        # a second worker with the same name starts at zero: the counter keeps going from 8
        worker = start_rq_worker(rq_redis.url, "w1", ["jobs"])
        jobs.enqueue(rq_ok)
        wait_for(lambda: [(w.successful_job_count, w.get_state()) for w in Worker.all(connection=conn)]
                 == [(1, "idle")])
        again = flow_of(await source.collect())
        assert (again["jobqueue_jobs_processed"], again["jobqueue_jobs_failed"]) == ({("", ""): 9}, {("", ""): 3})
        assert again["jobqueue_workers"][("", "jobs", "idle")] == 1
        assert again["jobqueue_workers"][("", "mail", "idle")] == 0

        # SIGKILL: no death is registered; the worker stays live until its key expires (RQ's rule:
        # worker_ttl + 60 s after the last heartbeat), and the exporter follows the key
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        ttl = conn.ttl("rq:worker:w1")
        assert 0 < ttl <= 420 + 60
        killed = flow_of(await source.collect())
        assert killed["jobqueue_workers"][("", "jobs", "idle")] == 1
        await source.close()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        conn.close()


async def test_rq_worker_states_as_rq_writes_them(rq_redis: RedisServer) -> None:
    """busy / suspended as rq/worker/base.py `set_state` writes them; a dead (`death`) hash is not live."""
    conn = redis.Redis.from_url(rq_redis.url, decode_responses=True)
    conn.sadd("rq:queues", "rq:queue:jobs")
    for name, state, extra in (("b", "busy", {}), ("s", "suspended", {}), ("d", "idle", {"death": "x"})):
        conn.sadd("rq:workers", f"rq:worker:{name}")
        conn.hset(f"rq:worker:{name}", mapping={"state": state, "queues": "jobs", "successful_job_count": "2",
                                                 "failed_job_count": "1", "total_working_time": "1.5", **extra})
    conn.sadd("rq:workers", "rq:worker:expired")  # member left behind by a killed worker whose key expired
    reading = await collect(rq_redis.url, [{"layout": "rq"}])
    got = flow_of(reading)
    assert got["jobqueue_workers"] == {("", "jobs", "busy"): 1, ("", "jobs", "idle"): 0, ("", "jobs", "paused"): 1}
    assert (got["jobqueue_worker_capacity"], got["jobqueue_worker_busy_slots"]) == ({("", "jobs"): 1},
                                                                                   {("", "jobs"): 1})
    assert (got["jobqueue_jobs_processed"], got["jobqueue_jobs_failed"]) == ({("", ""): 6}, {("", ""): 2})
    assert got["jobqueue_job_runtime_seconds"] == {("", ""): 0.5}
    conn.close()


# ------------------------------------------------------------------------------------------ Sidekiq


async def test_sidekiq_stats_and_processes(redis_client: redis.Redis, prefix: str) -> None:
    seed_sidekiq(redis_client, prefix, "default", [NOW - 5.5])
    seed_sidekiq(redis_client, prefix, "low", [])
    redis_client.sadd(f"{prefix}queues", "low")
    redis_client.set(f"{prefix}stat:processed", 120)  # Processor flushes with INCRBY (launcher.rb)
    redis_client.set(f"{prefix}stat:failed", 7)
    sidekiq_process(redis_client, prefix, "h:1:aaa", NOW - 3, 4, False, 10, ["default", "low"],
                    ["default", "low", "low", "low"])
    sidekiq_process(redis_client, prefix, "h:2:bbb", NOW - 59, 0, False, 5, ["default"], v8=True)
    sidekiq_process(redis_client, prefix, "h:3:ccc", NOW - 1, 1, True, 5, ["default"])  # quiet: paused
    sidekiq_process(redis_client, prefix, "h:4:ddd", NOW - 61, 2, False, 5, ["default"])  # beat too old
    redis_client.sadd(f"{prefix}processes", "h:5:eee")  # its hash expired: dead (ProcessSet#cleanup)
    queues = [{"layout": "sidekiq", "prefix": prefix}]
    reading = await collect(REDIS_URL, queues)
    got = flow_of(reading)
    assert got["jobqueue_jobs_processed"] == {("", ""): 120}
    assert got["jobqueue_jobs_failed"] == {("", ""): 7}
    assert got["jobqueue_workers"] == {("", "default", "busy"): 1, ("", "default", "idle"): 1,
                                       ("", "default", "paused"): 1, ("", "low", "busy"): 1,
                                       ("", "low", "idle"): 0, ("", "low", "paused"): 0}
    assert got["jobqueue_worker_capacity"] == {("", "default"): 15, ("", "low"): 10}  # the quiet one offers none
    # busy slots per queue from the :work hashes of live processes (h:4's job is not counted)
    assert got["jobqueue_worker_busy_slots"] == {("", "default"): 2, ("", "low"): 3}
    assert {q.queue: dict(q.states) for q in reading.queues} == {"default": {"active": 2}, "low": {"active": 3}}
    assert got["jobqueue_job_runtime_seconds"] == {}  # Sidekiq keeps no runtime the exporter reads


# ------------------------------------------------------------------------------------------ BullMQ


def start_bullmq_worker(prefix: str, queue: str, ok: int, failing: int) -> subprocess.Popen[str]:
    return subprocess.Popen(["node", str(NODE_DIR / "bullmq_worker.js"), REDIS_URL, prefix, queue, str(ok),
                             str(failing)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


async def test_bullmq_real_worker_metrics_and_client_names(redis_client: redis.Redis,
                                                           prefix: str) -> None:
    bull = prefix.rstrip(":")
    node = start_bullmq_worker(bull, "flow", 4, 3)
    try:
        assert node.stdout is not None and node.stdin is not None
        report = json.loads(node.stdout.readline())
        # BullMQ's own counts: getJobCounts, getMetrics (meta.count), getWorkersCount
        assert report == {"counts": {"completed": 4, "failed": 3, "wait": 0, "active": 0},
                          "metrics": {"completed": 4, "failed": 3}, "workers": 1}
        queues = [{"layout": "bullmq", "prefix": bull, "queues": ["flow", "quiet"]}]
        reading = await collect(REDIS_URL, queues)
        got = flow_of(reading)
        # `quiet` has no metrics hash: its counters are absent, not 0
        assert got["jobqueue_jobs_processed"] == {("", "flow"): 7}
        assert got["jobqueue_jobs_failed"] == {("", "flow"): 3}
        assert got["jobqueue_workers"] == {("", "flow", "unknown"): 1, ("", "quiet", "unknown"): 0}
        assert got["jobqueue_worker_capacity"] == got["jobqueue_worker_busy_slots"] == {}
        node.stdin.close()
        assert node.wait(timeout=30) == 0
        gone = flow_of(await collect(REDIS_URL, queues))
        assert gone["jobqueue_workers"] == {("", "flow", "unknown"): 0, ("", "quiet", "unknown"): 0}
        assert gone["jobqueue_jobs_processed"] == {("", "flow"): 7}
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()


# ------------------------------------------------------------------------------------------ Horizon


async def test_horizon_processes_throughput_and_runtime(redis_client: redis.Redis, prefix: str) -> None:
    """Supervisors and `queue:NAME` metrics hashes as Horizon writes them (SupervisorRepository `update`,
    LuaScripts::updateMetrics); queues discovered from the live supervisors."""
    from tests.support.redis_libs import seed_horizon, seed_laravel

    hp = f"{prefix}horizon:"
    seed_laravel(redis_client, prefix, "default", [int(NOW) - 30], delayed=0, reserved=0)
    seed_horizon(redis_client, hp, [("m", "running", NOW - 1)],
                 [("m:s1", "m", NOW - 2, {"redis:default": 3, "redis:emails,default": 2}),
                  ("m:s2", "m", NOW - 5, {"redis:default": 4}),
                  ("m:old", "m", NOW - 30, {"redis:default": 9})],  # not seen for 30 s: gone
                 {"default": 250.0}, [], [])
    redis_client.hset(f"{hp}supervisor:m:s2", "status", "paused")
    # measured by Horizon (LuaScripts::updateMetrics SADDs the full key) but served by no live supervisor
    redis_client.hset(f"{hp}queue:reports", mapping={"throughput": "4", "runtime": "100"})
    redis_client.sadd(f"{hp}measured_queues", f"{hp}queue:reports")
    # 10 jobs measured on `default` (seed_horizon), none on `emails` (no hash: not measured)
    queues = [{"layout": "horizon", "prefix": prefix, "horizon_prefix": hp}]
    reading = await collect(REDIS_URL, queues)
    got = flow_of(reading)
    assert got["jobqueue_jobs_processed"] == {("", "default"): 10, ("", "reports"): 4}
    assert got["jobqueue_jobs_failed"] == {}  # Horizon counts no failures per queue
    assert got["jobqueue_job_runtime_seconds"] == {("", "default"): 0.25, ("", "reports"): 0.1}
    assert got["jobqueue_workers"] == {("", "default", "unknown"): 5, ("", "default", "paused"): 4,
                                       ("", "emails", "unknown"): 2, ("", "emails", "paused"): 0,
                                       ("", "reports", "unknown"): 0, ("", "reports", "paused"): 0}
    assert got["jobqueue_worker_capacity"] == {("", "default"): 5, ("", "emails"): 2, ("", "reports"): 0}
    assert got["jobqueue_worker_busy_slots"] == {}


async def test_horizon_snapshot_leaves_a_measured_queue_at_zero(redis_client: redis.Redis,
                                                                 prefix: str) -> None:
    """`horizon:snapshot` reads and DELetes each measured queue's metrics hash (RedisMetricsRepository
    `baseSnapshotData`) and keeps the queue in `measured_queues`; Horizon then reads its throughput as 0
    (`throughputFor`: `(int) hget`). The series stays at 0 instead of vanishing every snapshot until the
    queue's next job, which is exactly when "nothing processed while jobs wait" must be seen."""
    from tests.support.redis_libs import seed_horizon, seed_laravel

    hp = f"{prefix}horizon:"
    seed_laravel(redis_client, prefix, "idle", [int(NOW) - 30], delayed=0, reserved=0)
    seed_horizon(redis_client, hp, [("m", "running", NOW - 1)], [("m:s1", "m", NOW - 2, {"redis:default": 1})],
                 {"default": 250.0}, [], [])
    redis_client.sadd(f"{hp}measured_queues", f"{hp}queue:idle")  # measured once; its hash taken by a snapshot
    queues = [{"layout": "horizon", "prefix": prefix, "horizon_prefix": hp}]
    reading = await collect(REDIS_URL, queues)
    got = flow_of(reading)
    assert got["jobqueue_jobs_processed"] == {("", "default"): 10, ("", "idle"): 0}
    assert got["jobqueue_job_runtime_seconds"] == {("", "default"): 0.25}  # no job since: no runtime, not 0


# ------------------------------------------------------------------------------------------ Celery


def start_celery_worker(prefix: str) -> subprocess.Popen[bytes]:
    """A real `celery worker -E` (task events on) with a 1 s heartbeat, in its own process group."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JQ_CELERY_URL": REDIS_URL, "JQ_CELERY_PREFIX": prefix}
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "tests.support.celery_tasks", "worker", "-E",
                             "-Q", "flow", "-c", "2", "--heartbeat-interval", "1", "--without-mingle",
                             "--without-gossip", "-n", f"w1@{prefix.strip(':')}"],
                            cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def poll(source: Any, check: Callable[[dict[str, dict[tuple[str, ...], float]]], bool],
               seconds: float = 120) -> dict[str, dict[tuple[str, ...], float]]:
    """Collect until `check` holds (bounded): the listener hears the worker on its own time."""
    import asyncio

    deadline = time.monotonic() + seconds
    got: dict[str, dict[tuple[str, ...], float]] = {}
    while time.monotonic() < deadline:
        got = flow_of(await source.collect())
        if check(got):
            return got
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition not reached: {got}")


async def test_celery_events_from_a_real_worker(redis_client: redis.Redis, prefix: str) -> None:
    from tests.support.celery_tasks import app, boom, ok

    app.conf.broker_url = REDIS_URL
    app.conf.broker_transport_options = {"global_keyprefix": prefix}
    queues = [{"layout": "celery", "queues": ["flow"], "global_keyprefix": prefix, "events": True, "task_cap": 2}]
    source = make_source(REDIS_URL, queues, now=None)
    # without events, nothing of it: the docs say what cannot be known then
    quiet = flow_of(await collect(REDIS_URL, [{**queues[0], "events": False}], None))
    assert quiet == {m: {} for m in quiet}
    worker = start_celery_worker(prefix)
    try:
        live = await poll(source, lambda g: g["jobqueue_workers"].get(("", "", "idle")) == 1)
        assert live["jobqueue_workers"] == {("", "", "busy"): 0, ("", "", "idle"): 1}
        for i in range(5):
            ok.delay(i)
        for i in range(3):
            boom.delay(i)
        got = await poll(source, lambda g: g["jobqueue_jobs_processed"] == {("", ""): 8})
        assert got["jobqueue_jobs_failed"] == {("", ""): 3}
        reading = await source.collect()
        tasks = samples_of(reading, "jobqueue_celery_tasks")
        assert tasks == {("", "jq.ok", "succeeded"): 5, ("", "jq.ok", "failed"): 0,
                         ("", "jq.boom", "succeeded"): 0, ("", "jq.boom", "failed"): 3}
        assert set(samples_of(reading, "jobqueue_celery_task_runtime_seconds")) == {("", "jq.ok"), ("", "jq.boom")}
        assert samples_of(reading, "jobqueue_celery_task_runtime_seconds")[("", "jq.boom")] == 0
        # SIGKILL: no worker-offline is sent; the worker stops counting as live once its last heartbeat
        # is older than freq x 2 (celery/events/state.py heartbeat_expires), here 2 s
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        dead = await poll(source, lambda g: g["jobqueue_workers"].get(("", "", "idle")) == 0)
        assert dead["jobqueue_workers"] == {("", "", "busy"): 0, ("", "", "idle"): 0}
        assert (dead["jobqueue_jobs_processed"], dead["jobqueue_jobs_failed"]) == ({("", ""): 8}, {("", ""): 3})
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        await source.close()
        app.close()


# ---------------------------------------------------------------- RQ: after the expiry (runs last)


async def test_rq_killed_worker_is_not_live_after_its_expiry(killed_rq: RedisServer) -> None:
    from rq import Worker

    conn = redis.Redis.from_url(killed_rq.url)
    try:
        wait_for(lambda: conn.exists("rq:worker:doomed") == 0, seconds=180)  # worker_ttl + 60 s after the kill
        assert Worker.all(connection=conn) == []  # RQ's own view (it prunes the stale set member)
        queues = [{"layout": "rq", "queues": ["jobs"]}]
        reading = await collect(killed_rq.url, queues, None)
        got = flow_of(reading)
        assert got["jobqueue_workers"] == {("", "jobs", "busy"): 0, ("", "jobs", "idle"): 0, ("", "jobs", "paused"): 0}
    finally:
        conn.close()


async def test_counts_that_are_not_numbers_are_malformed_and_skipped(redis_client: redis.Redis,
                                                                    prefix: str) -> None:
    redis_client.set(f"{prefix}stat:processed", "lots")
    redis_client.set(f"{prefix}stat:failed", 2)
    sidekiq_process(redis_client, prefix, "h:1:a", NOW - 1, 0, False, 5, ["default"])
    redis_client.sadd(f"{prefix}processes", "h:2:b")
    redis_client.hset(f"{prefix}h:2:b", mapping={"info": "{not json", "beat": NOW - 1, "busy": 0})
    redis_client.hset(f"{prefix}bull:q:metrics:completed", "count", "x")
    redis_client.hset(f"{prefix}bull:q:metrics:failed", "count", "1")
    queues = [{"layout": "sidekiq", "prefix": prefix, "queues": ["default"]},
              {"layout": "bullmq", "prefix": f"{prefix}bull", "queues": ["q"]}]
    reading = await collect(REDIS_URL, queues)
    got = flow_of(reading)
    assert (got["jobqueue_jobs_processed"], got["jobqueue_jobs_failed"]) == ({}, {})
    assert got["jobqueue_workers"][("", "default", "idle")] == 1  # the readable process still counts
    assert reading.malformed == 3


async def test_celery_listener_that_ended_is_started_again(redis_client: redis.Redis, prefix: str) -> None:
    """A listener task that ended on an error it did not expect is started again by the next collection:
    otherwise the counters freeze at their last value (a stale number that looks fresh) and every
    worker expires, for the life of the process."""
    import asyncio
    import base64

    queues = [{"layout": "celery", "queues": ["flow"], "global_keyprefix": prefix, "events": True}]
    source = make_source(REDIS_URL, queues, now=None)
    listener = next(iter(source._listeners.values()))
    channel = listener.channels[0]  # worker.heartbeat

    def beat(host: str) -> None:
        body = json.dumps({"type": "worker-heartbeat", "hostname": host, "freq": 60, "active": 0}).encode()
        redis_client.publish(channel, json.dumps({"body": base64.b64encode(body).decode(),
                                                  "properties": {"body_encoding": "base64"}}))

    async def live_after(host: str) -> dict[str, dict[tuple[str, ...], float]]:
        for _ in range(100):  # bounded: the listener subscribes on its own time
            beat(host)
            got = flow_of(await source.collect())
            if got["jobqueue_workers"].get(("", "", "idle")) == (1 if host == "w1" else 2):
                return got
            await asyncio.sleep(0.1)
        raise AssertionError(f"{host} never heard")

    def broken(data: Any, received: float) -> None:
        raise RuntimeError("a bug in handling one message")

    try:
        await live_after("w1")
        listener.handle = broken  # type: ignore[method-assign]  # the next message ends the task
        beat("w1")
        for _ in range(100):
            if source._listening is not None and source._listening.done():
                break
            await asyncio.sleep(0.05)
        assert source._listening is not None and source._listening.done()
        del listener.handle
        got = await live_after("w2")
        assert got["jobqueue_workers"] == {("", "", "busy"): 0, ("", "", "idle"): 2}
    finally:
        await source.close()
