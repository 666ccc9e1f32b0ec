"""Queue data written the way each library writes it, and a one-call Redis source for the tests.

RQ, Celery/kombu and BullMQ data comes from the libraries themselves (PyPI packages, and the BullMQ
pinned in tests/node via `tests/node/bullmq_seed.js`). Laravel, Horizon and Sidekiq have no Python
client, so their payloads are built here field for field as `shared/reference/redis-queues.md`
describes them and written with the same commands (RPUSH / LPUSH / ZADD / HSET).
"""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis

from exporter.model import Reading, Snapshot
from exporter.sources.base import SourceContext
from exporter.sources.redis.source import RedisConfig, RedisSource

NODE_DIR = Path(__file__).resolve().parent.parent / "node"
NOW = 1_700_000_000.0  # the collection time every layout test uses (the source's clock)


def make_source(url: str, queues: list[dict[str, Any]], now: float | None = NOW, **extra: Any) -> RedisSource:
    """A RedisSource on `url` reading `queues`; `now` fixes its clock so ages are exact."""
    config = RedisConfig.model_validate({"name": "r", "type": "redis", "url": url, "queues": queues, **extra})
    clock = (lambda: now) if now is not None else __import__("time").time
    return RedisSource(config, SourceContext(snapshot=lambda: Snapshot()), clock=clock)


async def collect(url: str, queues: list[dict[str, Any]], now: float | None = NOW, **extra: Any) -> Reading:
    """Collect once with a fresh source and close it."""
    source = make_source(url, queues, now, **extra)
    try:
        return await source.collect()
    finally:
        await source.close()


def comparable(reading: Reading) -> tuple[Any, ...]:
    """Everything of a reading but the ping latency: what two collections of the same data agree on."""
    return reading.queues, reading.samples, reading.malformed, dict(reading.details)


def by_queue(reading: Reading, tenant: str = "") -> dict[str, Any]:
    return {q.queue: q for q in reading.queues if q.tenant == tenant}


def samples_of(reading: Reading, metric: str) -> dict[tuple[str, ...], float]:
    return {s.labels: s.value for s in reading.samples if s.metric == metric}


# ---------------------------------------------------------------------------------------------- RQ


def rq_ok() -> int:
    """An RQ job that succeeds (run by a SimpleWorker in the test process)."""
    return 42


def rq_fail() -> None:
    """An RQ job that fails."""
    raise RuntimeError("boom")


def seed_rq(conn: redis.Redis, queue_name: str) -> dict[str, Any]:
    """Drive RQ's own API into every registry of one queue; return RQ's own view of it.

    finished/failed: a burst SimpleWorker runs one good and one failing job. Then 3 jobs wait,
    one is scheduled (`enqueue_in`), one deferred (`depends_on` a job parked on another queue),
    one canceled (`Job.cancel`), and one started (an `Execution` in StartedJobRegistry, as the
    worker writes it when it picks a job up).
    """
    from rq import Queue, SimpleWorker
    from rq.executions import Execution
    from rq.job import Job

    queue = Queue(queue_name, connection=conn)
    parked = Queue(f"{queue_name}-parked", connection=conn)
    queue.enqueue(rq_ok)
    queue.enqueue(rq_fail)
    SimpleWorker([queue], connection=conn).work(burst=True)
    waiting = [queue.enqueue(rq_ok, i) for i in range(3)]
    queue.enqueue_in(timedelta(minutes=5), rq_ok)
    parent = parked.enqueue(rq_ok)
    queue.enqueue(rq_ok, depends_on=parent)
    queue.enqueue(rq_ok).cancel()
    started = Job.create(rq_ok, connection=conn, origin=queue_name)
    started.save()
    pipe = conn.pipeline()
    execution = Execution.create(started, 180, pipe)
    queue.started_job_registry.add_execution(execution, pipe, 180)
    pipe.execute()
    fresh = Job.fetch(waiting[0].id, connection=conn)
    regs = {
        "started": queue.started_job_registry, "failed": queue.failed_job_registry,
        "finished": queue.finished_job_registry, "scheduled": queue.scheduled_job_registry,
        "deferred": queue.deferred_job_registry, "canceled": queue.canceled_job_registry,
        "ready": queue.ready_job_registry,
    }
    return {
        "depth": queue.count,
        "oldest": fresh.enqueued_at.timestamp(),
        "states": {name: reg.get_job_count(cleanup=False) for name, reg in regs.items()},
        "parked": parked.name,
    }


# ------------------------------------------------------------------------------------------ Celery


def celery_app(url: str, prefix: str) -> Any:
    """A Celery app on the Redis broker whose keys all start with `prefix` (kombu global_keyprefix)."""
    from celery import Celery

    app = Celery("jq", broker=url, set_as_current=False)
    app.conf.broker_transport_options = {"global_keyprefix": prefix, "queue_order_strategy": "priority"}
    app.conf.broker_connection_retry_on_startup = False
    return app


def seed_celery(url: str, prefix: str, queue: str, priorities: list[int | None]) -> None:
    """Send one task per entry of `priorities` to `queue` with Celery's own `send_task`."""
    app = celery_app(url, prefix)
    with app.connection_for_write() as conn, app.producer_pool.acquire(block=True) as producer:
        del conn
        for i, priority in enumerate(priorities):
            options = {} if priority is None else {"priority": priority}
            app.send_task("jq.noop", args=(i,), queue=queue, producer=producer, **options)
    app.close()


def take_unacked(url: str, prefix: str, queue: str, n: int) -> list[Any]:
    """Receive `n` messages with kombu and keep them unacknowledged (a prefetching worker's state)."""
    from kombu import Connection

    conn = Connection(url, transport_options={"global_keyprefix": prefix})
    simple = conn.SimpleQueue(queue)
    held = [simple.get(timeout=5) for _ in range(n)]
    return [conn, simple, held]


# ------------------------------------------------------------------------------------------ BullMQ


def seed_bullmq(url: str, prefix: str, base_ms: int) -> dict[str, Any]:
    """Run tests/node/bullmq_seed.js (real BullMQ) and return its JSON report."""
    out = subprocess.run(
        ["node", str(NODE_DIR / "bullmq_seed.js"), url, prefix, str(base_ms)],
        check=True, capture_output=True, text=True, timeout=60,
    )
    return json.loads(out.stdout)


def complete_bullmq(url: str, prefix: str, jobs: int) -> dict[str, Any]:
    """Run tests/node/bullmq_complete.js (real BullMQ Workers finishing `jobs` jobs on three queues)."""
    out = subprocess.run(["node", str(NODE_DIR / "bullmq_complete.js"), url, prefix, str(jobs)],
                         check=True, capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout)


# ------------------------------------------------------------------------------ Laravel / Horizon


def laravel_payload(job_id: str, created_at: int, pushed_at: str | None = None) -> str:
    """A Laravel queue payload (Queue::createObjectPayload + RedisQueue id/attempts; Horizon extras)."""
    payload: dict[str, Any] = {
        "uuid": f"uuid-{job_id}",
        "displayName": "App\\Jobs\\SendMail",
        "job": "Illuminate\\Queue\\CallQueuedHandler@call",
        "maxTries": None,
        "maxExceptions": None,
        "failOnTimeout": False,
        "backoff": None,
        "timeout": None,
        "retryUntil": None,
        "data": {
            "commandName": "App\\Jobs\\SendMail",
            "command": 'O:17:"App\\Jobs\\SendMail":1:{s:2:"to";s:11:"a@example.c";}',
            "batchId": None,
        },
        "createdAt": created_at,
        "delay": None,
        "id": job_id.ljust(32, "x")[:32],
        "attempts": 0,
    }
    if pushed_at is not None:
        payload.update({"type": "job", "tags": [], "silenced": False, "pushedAt": pushed_at})
    return json.dumps(payload)


def seed_laravel(conn: redis.Redis, prefix: str, queue: str, created: list[int], delayed: int, reserved: int,
                 pushed: list[str] | None = None) -> None:
    """RPUSH payloads onto `queues:NAME` and fill `:delayed` / `:reserved` as RedisQueue does."""
    key = f"{prefix}queues:{queue}"
    for i, created_at in enumerate(created):
        conn.rpush(key, laravel_payload(f"{queue}{i}", created_at, pushed[i] if pushed else None))
    for i in range(delayed):
        conn.zadd(f"{key}:delayed", {laravel_payload(f"d{i}", int(NOW)): NOW + 60 + i})
    for i in range(reserved):
        conn.zadd(f"{key}:reserved", {laravel_payload(f"r{i}", int(NOW)): NOW + 90 + i})


def seed_horizon(conn: redis.Redis, hp: str, masters: list[tuple[str, str, float]],
                 supervisors: list[tuple[str, str, float, dict[str, int]]], runtimes: dict[str, float],
                 failed: list[float], recent_failed: list[float]) -> None:
    """Horizon's bookkeeping keys under the Horizon prefix `hp` (RedisMasterSupervisorRepository & co).

    masters: (name, status, heartbeat); supervisors: (name, master, heartbeat, processes);
    failed/recent_failed: job times (stored, as Horizon does, with the negative microtime as score).
    """
    for name, status, beat in masters:
        conn.zadd(f"{hp}masters", {name: beat})
        conn.hset(f"{hp}master:{name}", mapping={
            "name": name, "environment": "production", "pid": "4242", "status": status,
            "supervisors": json.dumps([s[0] for s in supervisors if s[1] == name]),
        })
    for name, master, beat, processes in supervisors:
        conn.zadd(f"{hp}supervisors", {name: beat})
        conn.hset(f"{hp}supervisor:{name}", mapping={
            "name": name, "master": master, "pid": "4343", "status": "running",
            "processes": json.dumps(processes),
            "options": json.dumps({"connection": "redis", "queue": ",".join(p.split(":", 1)[1] for p in processes)}),
        })
    for queue, runtime in runtimes.items():
        conn.hset(f"{hp}queue:{queue}", mapping={"throughput": "10", "runtime": str(runtime)})
        conn.sadd(f"{hp}measured_queues", f"{hp}queue:{queue}")
    for i, at in enumerate(failed):
        conn.zadd(f"{hp}failed_jobs", {f"failed-{i}": -at})
    for i, at in enumerate(recent_failed):
        conn.zadd(f"{hp}recent_failed_jobs", {f"failed-{i}": -at})


# ------------------------------------------------------------------------------------------ Sidekiq


def sidekiq_payload(jid: str, queue: str, enqueued_at: float | int, created_at: float | int | None = None) -> str:
    """A Sidekiq job hash as Sidekiq::Client pushes it (floats = v7 seconds, ints = v8 milliseconds)."""
    return json.dumps({
        "retry": True, "queue": queue, "class": "HardWorker", "args": [1, "two"], "jid": jid,
        "created_at": enqueued_at if created_at is None else created_at, "enqueued_at": enqueued_at,
    })


def seed_sidekiq(conn: redis.Redis, prefix: str, queue: str, enqueued: list[float | int]) -> None:
    """SADD `queues` + LPUSH `queue:NAME`, oldest first, so the oldest ends at the tail."""
    conn.sadd(f"{prefix}queues", queue)
    for i, at in enumerate(enqueued):
        conn.lpush(f"{prefix}queue:{queue}", sidekiq_payload(f"{queue}-{i}", queue, at))


def sidekiq_process(conn: redis.Redis, prefix: str, identity: str, beat: float, busy: int, quiet: bool,
                    concurrency: int, queues: list[str], running: list[str] | None = None,
                    v8: bool = False) -> None:
    """SADD processes + HSET <identity> as launcher.rb `❤` does (info = `to_data` JSON), and the
    `<identity>:work` hash: thread id -> JSON {queue, payload, run_at} per running job."""
    info = {"hostname": "h", "started_at": beat - 100, "pid": 1, "tag": "app", "concurrency": concurrency,
            "queues": queues, "weights": [{q: 0 for q in queues}], "labels": [], "identity": identity,
            "version": "7.3.0", "embedded": False}
    conn.sadd(f"{prefix}processes", identity)
    if v8:  # Sidekiq 8: `concurrency` in the hash itself
        del info["concurrency"]
        info["version"] = "8.1.7"
    conn.hset(f"{prefix}{identity}", mapping={"info": json.dumps(info), "busy": busy, "beat": beat,
                                              "rtt_us": 100, "quiet": str(quiet).lower(), "rss": 1000,
                                              **({"concurrency": concurrency} if v8 else {})})
    for i, queue in enumerate(running if running is not None else queues[:1] * busy):
        conn.hset(f"{prefix}{identity}:work", f"tid{i}", json.dumps(
            {"queue": queue, "payload": json.dumps({"class": "HardWorker", "queue": queue}), "run_at": int(beat)}))


# --------------------------------------------------------------------------------- Bull, Bee-Queue


def seed_node(script: str, *args: str) -> dict[str, Any]:
    """Run a seeding script of tests/node (real Bull / Bee-Queue) and return its JSON report."""
    out = subprocess.run(["node", str(NODE_DIR / script), *args], check=True, capture_output=True, text=True,
                         timeout=60)
    return json.loads(out.stdout)


# --------------------------------------------------------------------------------------------- arq


async def arq_ok(ctx: dict[str, Any]) -> int:
    return 42


async def arq_fail(ctx: dict[str, Any]) -> None:
    raise RuntimeError("boom")


async def arq_retry(ctx: dict[str, Any]) -> None:
    """Asks arq to run it again in an hour: the job goes back to the queue, deferred (ZINCRBY)."""
    from arq.worker import Retry

    raise Retry(defer=3600)


async def arq_block(ctx: dict[str, Any]) -> None:
    """Runs until the test opens `ctx["gate"]`: a job in progress."""
    await ctx["gate"].wait()


async def seed_arq(url: str, queue: str) -> dict[str, Any]:
    """With arq's own client and worker: a job that succeeds, one that fails, one retried an hour
    later, one deferred by 10 minutes; the burst worker runs the first three and writes its
    health-check key; then 2 jobs wait. Returns arq's view: the waiting jobs' enqueue times."""
    from arq import create_pool
    from arq.connections import RedisSettings
    from arq.jobs import Job
    from arq.worker import Worker

    settings = RedisSettings.from_dsn(url)
    pool = await create_pool(settings, default_queue_name=queue)
    await pool.enqueue_job("arq_ok")
    await pool.enqueue_job("arq_fail")
    await pool.enqueue_job("arq_retry")
    await pool.enqueue_job("arq_ok", _defer_by=600)
    worker = Worker(functions=[arq_ok, arq_fail, arq_retry], redis_settings=settings, queue_name=queue, burst=True,
                    max_burst_jobs=3, poll_delay=0.01, handle_signals=False, health_check_interval=3600)
    await worker.async_run()
    worker._last_health_check = 0  # the write arq does once per health_check_interval, done now
    await worker.record_health()
    waiting = [await pool.enqueue_job("arq_ok", i) for i in range(2)]
    infos = [await Job(j.job_id, pool, _queue_name=queue).info() for j in waiting if j is not None]
    await worker.pool.aclose()
    await pool.aclose()
    return {"enqueued_ms": [round(i.enqueue_time.timestamp() * 1000) for i in infos if i is not None],
            "counters": (worker.jobs_complete, worker.jobs_failed, worker.jobs_retried)}


# ---------------------------------------------------------------------------------------- dramatiq


def seed_dramatiq(url: str, namespace: str) -> dict[str, Any]:
    """With dramatiq's RedisBroker and its real Worker: one message that succeeds, one that fails for
    good (dead-lettered), one that fails and is retried 10 minutes later (in the delay queue), and
    one sent with a 10-minute delay; then, with the worker stopped, 3 messages are sent and a consumer
    fetches the first without acknowledging it (a worker mid-message)."""
    import time

    import dramatiq
    from dramatiq.brokers.redis import RedisBroker
    from dramatiq.worker import Worker

    broker = RedisBroker(url=url, namespace=namespace)

    @dramatiq.actor(broker=broker, max_retries=0, actor_name="ok")
    def ok(n: int = 0) -> None:
        """Succeeds."""

    @dramatiq.actor(broker=broker, max_retries=0, actor_name="boom")
    def boom() -> None:
        raise RuntimeError("boom")

    @dramatiq.actor(broker=broker, max_retries=3, min_backoff=600_000, max_backoff=600_000, actor_name="flaky")
    def flaky() -> None:
        raise RuntimeError("again")

    ok.send()
    boom.send()
    flaky.send()
    ok.send_with_options(delay=600_000)
    worker = Worker(broker, worker_threads=1, worker_timeout=50)
    worker.start()
    conn = broker.client
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # done: main queue drained, 1 dead, 2 waiting in the delay queue
        if (conn.hlen(f"{namespace}:default.msgs"), conn.zcard(f"{namespace}:default.XQ"),
                conn.hlen(f"{namespace}:default.DQ.msgs")) == (0, 1, 2):
            break
        time.sleep(0.05)
    worker.stop()
    waiting = [ok.send(i) for i in range(3)]
    consumer = broker.consume("default", prefetch=1, timeout=100)
    taken = None
    while taken is None and time.monotonic() < deadline + 30:  # a worker's fetch, never acknowledged
        taken = next(consumer)
    broker.close()
    return {"oldest_ms": waiting[1].message_timestamp, "taken": taken.message_id if taken else None,
            "first": waiting[0].message_id}


# -------------------------------------------------------------------------------------------- huey


def seed_huey(url: str, name: str) -> dict[str, Any]:
    """With huey's RedisHuey: a task scheduled in 10 minutes and 5 tasks enqueued; Huey.execute (what a
    consumer runs) takes the first four: the scheduled one goes to the schedule, one good task, one
    that fails for good and one that fails and is retried 10 minutes later. Returns huey's own counts."""
    from huey import RedisHuey

    huey = RedisHuey(name, url=url)

    @huey.task()
    def good(n: int) -> int:
        return n

    @huey.task()
    def bad() -> None:
        raise RuntimeError("boom")

    @huey.task(retries=1, retry_delay=600)
    def flaky() -> None:
        raise RuntimeError("again")

    good.schedule(args=(4,), delay=600)  # enqueued; a consumer that reads it early moves it to the schedule
    good(1)
    bad()
    flaky()
    good(2)
    good(3)
    for _ in range(4):  # oldest first: the scheduled task, then the good, the bad and the flaky one
        huey.execute(huey.dequeue())
    counts = {"pending": huey.pending_count(), "scheduled": huey.scheduled_count(), "results": huey.result_count()}
    huey.storage.conn.close()
    return counts


# --------------------------------------------------------------------------------------------- saq


async def saq_ok(ctx: dict[str, Any], n: int = 0) -> int:
    return n


async def saq_fail(ctx: dict[str, Any]) -> None:
    raise RuntimeError("boom")


async def seed_saq(url: str, name: str) -> dict[str, Any]:
    """With saq's Queue and Worker: a job that succeeds, one that fails for good, one that fails and
    is retried 10 minutes later, one scheduled in 10 minutes; the worker runs the first three and
    writes its worker info; then 3 jobs are enqueued and the first is dequeued (active). Returns saq's
    own `info()` and the waiting jobs."""
    import time

    from saq import Queue, Worker

    queue = Queue.from_url(url, name=name)
    await queue.enqueue("saq_ok")
    await queue.enqueue("saq_fail", retries=1)
    await queue.enqueue("saq_fail", key="flaky", retries=3, retry_delay=600.0)
    await queue.enqueue("saq_ok", scheduled=int(time.time()) + 600)
    worker = Worker(queue, functions=[saq_ok, saq_fail], dequeue_timeout=1)
    for _ in range(3):
        await worker.process()
    await worker.worker_info(ttl=60)
    waiting = [await queue.enqueue("saq_ok", n=i) for i in range(3)]
    taken = await queue.dequeue()  # what a worker does first: the job moves to `active`
    info = await queue.info()
    await queue.disconnect()
    assert waiting[0] and waiting[1] and taken
    return {"info": {k: info[k] for k in ("queued", "active", "scheduled")}, "workers": len(info["workers"]),
            "oldest_ms": waiting[1].queued, "taken": taken.key, "first": waiting[0].key}


# ------------------------------------------------------------------------------------------ taskiq


async def seed_taskiq(url: str, list_queue: str, stream_queue: str) -> None:
    """With taskiq-redis: 3 tasks kicked onto a ListQueueBroker; 4 onto a RedisStreamBroker whose
    consumer group then takes 2 (through the broker's own `listen`) and acknowledges one."""
    from taskiq_redis import ListQueueBroker, RedisStreamBroker

    listed = ListQueueBroker(url, queue_name=list_queue)

    @listed.task(task_name="jq.add")
    async def add(a: int, b: int) -> int:
        return a + b

    await listed.startup()
    for i in range(3):
        await add.kiq(i, 1)
    await listed.shutdown()

    streamed = RedisStreamBroker(url, queue_name=stream_queue, xread_block=100, xread_count=1)

    @streamed.task(task_name="jq.mul")
    async def mul(a: int, b: int) -> int:
        return a * b

    await streamed.startup()
    for i in range(4):
        await mul.kiq(i, 2)
    taken = []
    async for message in streamed.listen():
        taken.append(message)
        if len(taken) == 2:
            break
    await taken[0].ack()  # type: ignore[union-attr]
    await streamed.shutdown()
