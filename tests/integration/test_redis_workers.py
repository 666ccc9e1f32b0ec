"""Workers per queue, from real worker processes of the libraries, so that `JobQueueNoWorkers`
(alerts/jobqueue.rules.yml: `jobqueue_depth > 0` and no live worker under that queue) can fire:

- dramatiq: consumers only (a process that only sends is not one), per queue, from the ack sets that
  `fetch` writes (dramatiq/brokers/redis/dispatch.lua);
- Celery: the config names the queues of a worker pool by hostname (a worker's events do not say);
- arq: a worker whose every `max_jobs` slot is busy writes no health key (arq/worker.py
  `_poll_iteration` waits on `self.sem` before `heart_beat`), but its jobs' in-progress keys say it runs;
- huey's RedisExpireHuey keeps results as keys of their own (`huey.r.<name>.<id>`), not the hash.
"""

from __future__ import annotations

import asyncio
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
from tests.support.redis_libs import by_queue, collect, make_source, samples_of
from tests.support.servers import RedisServer, redis_per_module

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "alerts" / "jobqueue.rules.yml"


def no_workers_fires_for(reading: Any, tmp: Path, queues: list[str]) -> None:
    """promtool holds that the bundled JobQueueNoWorkers expression (read from alerts/jobqueue.rules.yml,
    its recording rules loaded) selects exactly `queues` of this reading, whose depths and workers are
    the input series, held for 10 minutes."""
    import shutil

    import yaml

    groups = yaml.safe_load(RULES.read_text())["groups"]
    [expr] = [r["expr"] for g in groups for r in g["rules"] if r.get("alert") == "JobQueueNoWorkers"]

    def series(metric: str, labels: dict[str, str], value: float) -> dict[str, str]:
        body = ",".join(f'{k}="{v}"' for k, v in {"job": "jq", "instance": "x", "source": "r", **labels}.items())
        return {"series": f"{metric}{{{body}}}", "values": f"{value:g}x10"}

    inputs = [series("jobqueue_depth", {"tenant": q.tenant, "queue": q.queue}, q.depth) for q in reading.queues]
    inputs += [series("jobqueue_workers", {"tenant": s.labels[0], "queue": s.labels[1], "state": s.labels[2]},
                      s.value) for s in reading.samples if s.metric == "jobqueue_workers"]
    expected = [{"labels": f'jobqueue_depth{{job="jq",instance="x",source="r",queue="{q.queue}"}}', "value": q.depth}
                for q in reading.queues if q.queue in queues and q.tenant == ""]
    test = {"rule_files": [str(RULES)], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": inputs,
                       "promql_expr_test": [{"eval_time": "6m", "expr": expr, "exp_samples": expected}]}]}
    path = tmp / "no_workers.test.yml"
    path.write_text(yaml.safe_dump(test))
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found"
    result = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def wait_for(check: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts; killed (their whole group) afterwards."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


def dramatiq_process(started: list[subprocess.Popen[str]], role: str, namespace: str, *queues: str) -> str:
    """A real dramatiq worker or sender process (tests/support/dramatiq_procs.py); its broker id."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.dramatiq_procs", role, REDIS_URL, namespace,
                             *queues], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, start_new_session=True)
    started.append(proc)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # bounded: the process prints it within seconds or dies (EOF)
    assert line.startswith("ready "), line
    return line.split()[1]


async def test_dramatiq_counts_consumers_not_senders(redis_client: redis.Redis, prefix: str, tmp_path: Path,
                                                     processes: list[subprocess.Popen[str]]) -> None:
    """Two worker processes and one process that only sends: dramatiq's dispatch.lua ZADDs every
    broker id to `__heartbeats__` on every command (`redis.call("zadd", heartbeats, timestamp,
    worker_id)` before the command runs), so all three are there; only `fetch` SADDs to
    `__acks__.<broker id>.<queue>`. The workers consume `work`; the sender also sends to `orphan`,
    which no worker consumes: 0 workers there with 3 waiting is the page JobQueueNoWorkers exists for."""
    ns = f"{prefix}dq"
    workers = [dramatiq_process(processes, "worker", ns, "work") for _ in range(2)]
    sender = dramatiq_process(processes, "send", ns, "work", "orphan")
    # 3 messages on `work`, each worker prefetches 2 (worker_threads * 2): both hold some
    wait_for(lambda: all(redis_client.exists(f"{ns}:__acks__.{w}.work") for w in workers)
             and redis_client.llen(f"{ns}:work") == 0)
    beats = dict(redis_client.zrange(f"{ns}:__heartbeats__", 0, -1, withscores=True))
    assert set(beats) == {*workers, sender}  # the sender is in the heartbeats like a worker
    assert not redis_client.keys(f"{ns}:__acks__.{sender}*")
    queues = [{"layout": "dramatiq", "namespace": ns, "queues": ["work", "orphan"]}]
    reading = await collect(REDIS_URL, queues, now=time.time())
    assert samples_of(reading, "jobqueue_workers") == {("", "work", "busy"): 2, ("", "orphan", "busy"): 0}
    got = by_queue(reading)
    assert (got["work"].depth, dict(got["work"].states)["unacked"], got["orphan"].depth) == (0, 3, 3)
    no_workers_fires_for(reading, tmp_path, ["orphan"])  # the bundled rule pages for it, and only it
    # past dramatiq's heartbeat_timeout (60 s) no broker id is live, ack sets or not
    later = await collect(REDIS_URL, queues, now=time.time() + 61)
    assert samples_of(later, "jobqueue_workers")[("", "work", "busy")] == 0


server = redis_per_module("workers")  # arq and huey keys cannot be prefixed



async def test_arq_worker_with_every_slot_busy_is_live(server: RedisServer) -> None:
    """A real arq Worker with max_jobs=1 running a job: it wrote its health key (1 s interval, so a TTL
    of 2 s) once, then waits on its semaphore and writes no more; the key expires while it works."""
    from arq import create_pool
    from arq.connections import RedisSettings
    from arq.worker import Worker

    from tests.support.redis_libs import arq_block

    url = server.db(1)
    settings = RedisSettings.from_dsn(url)
    pool = await create_pool(settings)
    gate = asyncio.Event()
    worker = Worker(functions=[arq_block], redis_settings=settings, max_jobs=1, poll_delay=0.05,
                    health_check_interval=1, handle_signals=False, ctx={"gate": gate})
    task = asyncio.create_task(worker.async_run())
    try:
        job = await pool.enqueue_job("arq_block")
        assert job is not None
        deadline = time.monotonic() + 30
        while not (await pool.exists(f"arq:in-progress:{job.job_id}") and not await pool.exists(
                "arq:queue:health-check")):
            assert time.monotonic() < deadline, "the health key never expired under the busy worker"
            await asyncio.sleep(0.05)
        reading = await collect(url, [{"layout": "arq"}], now=time.time())
    finally:
        gate.set()
        await asyncio.wait_for(worker.close(), 30)
        task.cancel()
        await pool.flushdb()
        await pool.aclose()
    labels = ("", "arq:queue")
    assert samples_of(reading, "jobqueue_workers") == {(*labels, "busy"): 1, (*labels, "idle"): 0,
                                                       (*labels, "paused"): 0}
    assert samples_of(reading, "jobqueue_worker_busy_slots") == {labels: 1}
    assert dict(by_queue(reading)["arq:queue"].states)["in_progress"] == 1


async def test_huey_expire_storage_results_are_not_a_false_zero(server: RedisServer) -> None:
    """RedisExpireHuey (huey/storage.py RedisExpireStorage.put_data: `SET huey.r.<name>.<key> ... EX`)
    leaves the result hash empty: with `results: keys` no `results` state reads 0 beside them."""
    from huey import RedisExpireHuey

    url = server.db(2)
    huey = RedisExpireHuey("jq-exp", url=url, expire_time=600)

    @huey.task()
    def good(n: int) -> int:
        return n

    try:
        for i in range(3):
            good(i)
        for _ in range(2):
            huey.execute(huey.dequeue())
        assert (huey.pending_count(), huey.result_count()) == (1, 2)  # huey's own counts (a SCAN)
        assert huey.storage.conn.exists("huey.results.jqexp") == 0
        hashed = await collect(url, [{"layout": "huey", "queues": ["jq-exp"]}], now=time.time())
        keys = await collect(url, [{"layout": "huey", "queues": ["jq-exp"], "results": "keys"}], now=time.time())
    finally:
        huey.storage.conn.flushdb()
        huey.storage.conn.close()
    assert dict(by_queue(hashed)["jq-exp"].states)["results"] == 0  # the hash storage's reading: wrong here
    q = by_queue(keys)["jq-exp"]
    assert (q.depth, dict(q.states), keys.malformed) == (1, {"queued": 1, "scheduled": 0}, 0)


def start_celery_worker(prefix: str, name: str, queue: str) -> subprocess.Popen[str]:
    """A real `celery worker -E` (events on, 1 s heartbeat) named `name` consuming `queue`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JQ_CELERY_URL": REDIS_URL, "JQ_CELERY_PREFIX": prefix}
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "tests.support.celery_tasks", "worker", "-E",
                             "-Q", queue, "-c", "1", "--pool", "solo", "--heartbeat-interval", "1",
                             "--without-mingle", "--without-gossip", "-n", name],
                            cwd=ROOT, env=env, start_new_session=True, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def poll_workers(source: Any, check: Callable[[dict[tuple[str, ...], float]], bool],
                       seconds: float = 120) -> dict[tuple[str, ...], float]:
    """Collect until `check` holds on jobqueue_workers (bounded): the listener hears events on its own time."""
    deadline = time.monotonic() + seconds
    got: dict[tuple[str, ...], float] = {}
    while time.monotonic() < deadline:
        got = samples_of(await source.collect(), "jobqueue_workers")
        if check(got):
            return got
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition not reached: {got}")


async def test_celery_worker_pools_named_by_hostname(redis_client: redis.Redis, prefix: str, tmp_path: Path,
                                                     processes: list[subprocess.Popen[str]]) -> None:
    """A real Celery worker `mail@<host>` consuming `mail`. Its heartbeats (celery/worker/heartbeat.py
    `_send`: hostname, freq, active, processed, loadavg, sw_*) never name its queues, so the config
    says which queues the `mail@*` pool serves; `bulk`, which no live worker serves, reads 0, and with
    a task waiting there the bundled JobQueueNoWorkers pages for it."""
    from tests.support.redis_libs import seed_celery

    host = prefix.strip(":").replace(":", "-")
    queues = [{"layout": "celery", "queues": ["mail", "bulk"], "global_keyprefix": prefix, "events": True,
               "worker_queues": {"mail@*": ["mail"], "bulk@*": ["bulk"]}}]
    source = make_source(REDIS_URL, queues, now=None)
    try:
        processes.append(start_celery_worker(prefix, f"mail@{host}", "mail"))
        live = await poll_workers(source, lambda g: g.get(("", "mail", "idle")) == 1)
        assert live == {("", "mail", "busy"): 0, ("", "mail", "idle"): 1,
                        ("", "bulk", "busy"): 0, ("", "bulk", "idle"): 0}
        seed_celery(REDIS_URL, prefix, "bulk", [None])  # Celery's own send_task: one task waits on `bulk`
        reading = await source.collect()
        assert (by_queue(reading)["bulk"].depth, by_queue(reading)["mail"].depth) == (1, 0)
        no_workers_fires_for(reading, tmp_path, ["bulk"])
        # without worker_queues the same worker is live under queue "" only (as before)
        plain = make_source(REDIS_URL, [{**queues[0], "worker_queues": {}}], now=None)
        try:
            assert await poll_workers(plain, lambda g: g.get(("", "", "idle")) == 1) == {
                ("", "", "busy"): 0, ("", "", "idle"): 1}
        finally:
            await plain.close()
        os.killpg(processes[0].pid, signal.SIGKILL)  # no worker-offline: gone once its heartbeat expires
        dead = await poll_workers(source, lambda g: g.get(("", "mail", "idle")) == 0)
        assert dead[("", "mail", "busy")] == 0
    finally:
        await source.close()


async def test_a_worker_naming_a_queue_with_a_lone_surrogate_is_read_and_written(
        redis_client: redis.Redis, prefix: str) -> None:
    """Sidekiq's process `info` is JSON any writer to Redis can store; a queue name escaped as a lone
    surrogate ("x\\ud800") once reached a label value that no render could write (review3). It reads
    as U+FFFD, beside a normal queue, and the whole source renders."""
    from exporter.metrics import Renderer
    from exporter.model import SourceStatus
    from tests.support.redis_libs import NOW, sidekiq_process

    sidekiq_process(redis_client, prefix, "h:1:aaa", NOW - 3, 0, False, 5, ["default", "x\ud800"], running=[])
    assert "x\\ud800" in redis_client.hget(f"{prefix}h:1:aaa", "info")  # as a JSON writer escapes it
    reading = await collect(REDIS_URL, [{"layout": "sidekiq", "prefix": prefix}])
    workers = samples_of(reading, "jobqueue_workers")
    assert {labels[1] for labels in workers} >= {"default", "x\ufffd"}
    text = b"".join(Renderer().source(SourceStatus("r", "redis", True, NOW, 0.01, NOW), reading, {}, 15.0).values())
    assert 'queue="x\ufffd"'.encode() in text
