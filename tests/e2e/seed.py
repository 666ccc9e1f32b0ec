"""Data for the end-to-end stack: enough in each backend that every dashboard panel has a series,
and an exporter config that reads all of it (plus a health `system`, so the health metrics exist).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import nats
import nats.errors
import psycopg
import redis
from nats.js.api import ConsumerConfig

from tests.support.postgres import SOLID_QUEUE

ROOT = Path(__file__).resolve().parents[2]
CELERY_PREFIX = "e2ecel:"  # the Celery app's global_keyprefix: its keys and event topics


def redis_data(url: str) -> None:
    """Queues of several layouts; depths stay under the warning threshold."""
    now = time.time()
    r = redis.Redis.from_url(url)
    for i in range(3):
        r.rpush("laravel-database-queues:default", json.dumps({"uuid": f"h{i}", "pushedAt": now - 60 + i}))
    r.zadd("laravel_horizon:failed_jobs", {"f1": now - 30})
    r.zadd("laravel_horizon:recent_failed_jobs", {"f1": -(now - 30)})
    r.rpush("rq:queue:emails", "j1")
    r.hset("rq:job:j1", mapping={"enqueued_at": datetime.fromtimestamp(now - 30, UTC).isoformat()})
    r.zadd("rq:failed:emails", {"j0": now + 3600})
    if not r.exists("events"):
        r.xadd("events", {"n": "1"})
        r.xgroup_create("events", "workers", id="0")
    r.rpush("tenant_acme:queues:imports", json.dumps({"n": 1}))
    r.rpush("tenant_zeta:queues:imports", json.dumps({"n": 1}))  # beyond the discovery cap of 1: dropped
    # Horizon's metrics of a measured queue (LuaScripts::updateMetrics: throughput, runtime in ms)
    r.sadd("laravel_horizon:measured_queues", "queue:default")
    r.hset("laravel_horizon:queue:default", mapping={"throughput": 5, "runtime": 120.5})
    # Sidekiq: one job waiting on `critical` (Client#raw_push: LPUSH, oldest at the tail)
    r.sadd("queues", "critical")
    r.lpush("queue:critical", json.dumps({"class": "ReportJob", "args": [], "queue": "critical", "jid": "e2e1",
                                          "created_at": now - 20, "enqueued_at": now - 20}))
    heartbeat(r, now)
    r.close()


SIDEKIQ = "e2e-host:4242:5f3c1a"  # Sidekiq's process identity: hostname:pid:nonce (launcher.rb `identity`)
HORIZON_MASTER = "e2e-host-Ab12"
HORIZON_SUPERVISOR = f"{HORIZON_MASTER}:supervisor-1"


def heartbeat(r: redis.Redis, now: float) -> None:
    """What a running Sidekiq process and a running Horizon write on each beat, so that the flow and
    workers panels have live workers and growing counters.

    Sidekiq launcher.rb `❤`: flush_stats INCRBY stat:processed / stat:failed (processed counts the
    failures too), SADD processes, HSET of the process hash (info JSON with concurrency and queues,
    busy, beat, quiet) with a 60 s EXPIRE, and the `<identity>:work` hash of the running jobs.
    Horizon: MasterSupervisorRepository / SupervisorRepository `update` (HMSET + ZADD now).
    """
    pipe = r.pipeline(transaction=True)
    pipe.incrby("stat:processed", 3)
    pipe.incrby("stat:failed", 1)
    pipe.sadd("processes", SIDEKIQ)
    info = {"hostname": "e2e-host", "started_at": now - 60, "pid": 4242, "tag": "e2e", "concurrency": 5,
            "queues": ["critical"], "labels": [], "identity": SIDEKIQ}
    pipe.hset(SIDEKIQ, mapping={"info": json.dumps(info), "busy": 1, "beat": now, "quiet": "false",
                                "rtt_us": 150, "rss": 81234})
    pipe.expire(SIDEKIQ, 60)
    pipe.delete(f"{SIDEKIQ}:work")
    pipe.hset(f"{SIDEKIQ}:work", "tid-1", json.dumps({"queue": "critical", "payload": json.dumps(
        {"class": "ReportJob", "queue": "critical", "jid": "e2e0"}), "run_at": int(now) - 2}))
    pipe.expire(f"{SIDEKIQ}:work", 60)
    pipe.hset(f"laravel_horizon:master:{HORIZON_MASTER}", mapping={
        "name": HORIZON_MASTER, "pid": 4343, "status": "running", "environment": "production",
        "supervisors": json.dumps([HORIZON_SUPERVISOR])})
    pipe.zadd("laravel_horizon:masters", {HORIZON_MASTER: now})
    pipe.hset(f"laravel_horizon:supervisor:{HORIZON_SUPERVISOR}", mapping={
        "name": HORIZON_SUPERVISOR, "master": HORIZON_MASTER, "pid": 4344, "status": "running",
        "processes": json.dumps({"redis:default": 2}), "options": json.dumps({"queue": "default"})})
    pipe.zadd("laravel_horizon:supervisors", {HORIZON_SUPERVISOR: now})
    pipe.execute()


@contextlib.contextmanager
def heartbeats(url: str, every: float = 1.0) -> Iterator[None]:
    """Beat every `every` seconds in a thread while the stack runs; a stopped Redis (the outage) is
    skipped, as the real processes retry."""
    stop = threading.Event()

    def run() -> None:
        r = redis.Redis.from_url(url, socket_timeout=1)
        while not stop.wait(every):
            with contextlib.suppress(redis.RedisError):
                heartbeat(r, time.time())
        r.close()

    thread = threading.Thread(target=run, name="e2e-heartbeats", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


@contextlib.contextmanager
def celery_worker(url: str, workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real `celery worker -E` (task events, 1 s heartbeats) on the test's Redis, running
    tests/support/celery_tasks.py; its log in `workdir/celery.log`; killed with its process group."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JQ_CELERY_URL": url, "JQ_CELERY_PREFIX": CELERY_PREFIX}
    log = (workdir / "celery.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "tests.support.celery_tasks", "worker", "-E",
                             "-Q", "flow", "-c", "1", "--heartbeat-interval", "1", "--without-mingle",
                             "--without-gossip", "-n", "e2e@host"],
                            cwd=ROOT, env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


def celery_tasks(url: str, ok: int = 3, failing: int = 1) -> None:
    """Tasks sent with Celery's own client (`send_task` by name to the worker's tasks in
    tests/support/celery_tasks.py): `ok` that succeed, `failing` that raise. A client app of its own,
    so the shared module's app keeps its configuration for the other tests."""
    from celery import Celery

    app = Celery("e2e-client", broker=url, set_as_current=False)
    app.conf.broker_transport_options = {"global_keyprefix": CELERY_PREFIX}
    try:
        for i in range(ok):
            app.send_task("jq.ok", args=(i,), queue="flow")
        for i in range(failing):
            app.send_task("jq.boom", args=(i,), queue="flow")
    finally:
        app.close()


async def _nats_data(url: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(name="DLQ", subjects=["$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.JOBS.>"])
    await js.add_stream(name="JOBS", subjects=["JOBS.>"])
    for i in range(3):
        await js.publish("JOBS.task", f"t{i}".encode())
    await js.add_consumer("JOBS", ConsumerConfig(durable_name="workers", ack_wait=30))
    await js.add_consumer("JOBS", ConsumerConfig(durable_name="flaky", ack_wait=0.3, max_deliver=1))
    workers = await js.pull_subscribe("JOBS.>", durable="workers", stream="JOBS")
    await workers.fetch(1, timeout=5)  # delivered, never acked: ack pending 1
    flaky = await js.pull_subscribe("JOBS.>", durable="flaky", stream="JOBS")
    await flaky.fetch(3, timeout=5)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (await js.stream_info("DLQ")).state.messages < 3:
        with contextlib.suppress(nats.errors.TimeoutError):  # a pull after ack_wait emits the advisories
            await flaky.fetch(1, timeout=0.5)
    now = time.time()
    agents = await js.create_key_value(bucket="agents")
    await agents.put("a1", json.dumps({"hostname": "web-01", "status": "Ready", "seen": now}).encode())
    await agents.put("a2", json.dumps({"hostname": "gpu-01", "status": "NotReady", "seen": now - 30}).encode())
    jobs = await js.create_key_value(bucket="jobs")
    for key, status in {"j1": "unprocessed", "j2": "processing", "j3": "failed"}.items():
        await jobs.put(key, json.dumps({"id": key, "status": status, "created": now - 40}).encode())
    store = await js.create_object_store(bucket="files")
    await store.put("blob", b"x" * 1024)
    await nc.close()


def nats_data(url: str) -> None:
    asyncio.run(_nats_data(url))


# Solid Queue as its tables hold it (schema from tests/support/postgres.py): `reports` has two ready
# jobs, one claimed by a live worker (3 threads), one finished and one failed within the hour;
# `billing` has a scheduled job 5 minutes past due and the only dispatcher stopped heartbeating
# 10 minutes ago (stale past Solid Queue's 5 minutes): a stalled scheduler.
SOLID_QUEUE_DATA = """
INSERT INTO sq.solid_queue_jobs (id, queue_name, class_name, finished_at) VALUES
  (1, 'reports', 'ReportJob', NULL), (2, 'reports', 'ReportJob', NULL), (3, 'reports', 'ReportJob', NULL),
  (4, 'reports', 'ReportJob', timezone('UTC', now()) - interval '2 minutes'), (5, 'reports', 'ReportJob', NULL),
  (6, 'billing', 'InvoiceJob', NULL);
INSERT INTO sq.solid_queue_ready_executions (job_id, queue_name, created_at) VALUES
  (1, 'reports', timezone('UTC', now()) - interval '20 seconds'), (2, 'reports', timezone('UTC', now()));
INSERT INTO sq.solid_queue_processes (id, kind, last_heartbeat_at, pid, created_at, name, metadata) VALUES
  (1, 'Worker', timezone('UTC', now()), 10, now(), 'worker-1', '{"queues":"*","thread_pool_size":3}'),
  (2, 'Dispatcher', timezone('UTC', now()) - interval '10 minutes', 11, now(), 'dispatcher-1', NULL);
INSERT INTO sq.solid_queue_claimed_executions (job_id, process_id, created_at) VALUES (3, 1, now());
INSERT INTO sq.solid_queue_failed_executions (job_id, error, created_at) VALUES (5, 'boom', timezone('UTC', now()));
INSERT INTO sq.solid_queue_scheduled_executions (job_id, queue_name, scheduled_at, created_at)
  VALUES (6, 'billing', timezone('UTC', now()) - interval '5 minutes', now());
"""


def postgres_data(dsn: str, migrations: Path) -> None:
    """A generic job table, a schema_migrations table missing one of two migration files, Solid Queue."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE jobs (id serial PRIMARY KEY, queue text, status text NOT NULL, "
                     "created_at timestamptz NOT NULL DEFAULT now() - interval '1 minute')")
        conn.execute("INSERT INTO jobs (queue, status) VALUES ('mail', 'new'), ('mail', 'new'), "
                     "('mail', 'running'), ('mail', 'failed'), ('mail', 'done'), (NULL, 'new')")
        conn.execute("CREATE TABLE schema_migrations (filename text PRIMARY KEY)")
        conn.execute("INSERT INTO schema_migrations VALUES ('001_init.sql')")
        conn.execute("CREATE SCHEMA sq;" + SOLID_QUEUE.format(s="sq"))
        conn.execute(SOLID_QUEUE_DATA)
    migrations.mkdir(exist_ok=True)
    (migrations / "001_init.sql").write_text("CREATE TABLE jobs ();\n")
    (migrations / "002_more.sql").write_text("ALTER TABLE jobs ADD COLUMN x int;\n")


def exporter_config(tmp: Path, redis_url: str, nats_url: str, pg_dsn: str, exporter_port: int) -> str:
    """Every source type on the test's backends, collected every second, and one health system."""
    (tmp / "manifest.sha256").write_text(
        f"{hashlib.sha256((tmp / 'manifest.sha256').name.encode()).hexdigest()}  missing.txt\n"
        f"{hashlib.sha256(b'ok').hexdigest()}  ok.txt\n")
    (tmp / "ok.txt").write_bytes(b"ok")
    return f"""
sources:
  - name: host
    type: system
    interval: 1s
    timeout: 900ms
    processes:
      - {{name: exporter, own: true}}
      - {{name: redis, process: redis-server}}
  - name: cache
    type: redis
    url: {redis_url}
    interval: 1s
    timeout: 500ms
    tenants:
      scan: {{match: "tenant_*:queues:*", regex: "^tenant_(?P<tenant>[^:]+):", cap: 1}}
      refresh: 1
    queues:
      - layout: horizon
        queues: [default]
        pause_key: "pause:{{queue}}"
      - layout: rq
        queues: [emails]
      - layout: sidekiq
      - {{layout: celery, queues: [flow], global_keyprefix: "{CELERY_PREFIX}", events: true}}
      - layout: stream
        name: events
        key: events
      - layout: list
        name: imports
        key: "tenant_{{tenant}}:queues:imports"
  - name: broker
    type: nats
    url: {nats_url}
    interval: 1s
    timeout: 900ms
    dead_letters: {{mode: stream, stream: DLQ}}
    jobs: {{bucket: jobs, queue: jobs, status_field: status, created_field: created}}
    agents: {{bucket: agents, heartbeat_field: seen}}
  - name: db
    type: postgres
    dsn: {pg_dsn}
    interval: 1s
    timeout: 900ms
    queues:
      - {{preset: generic, table: jobs, queue_column: queue, waiting: [new], processing: [running],
          failed: [failed], other: [done]}}
      - {{preset: solid_queue, schema: sq}}
    checks:
      - {{name: failed_per_queue, sql: "SELECT coalesce(queue, '-') AS queue, count(*) AS n FROM jobs
          WHERE status = 'failed' GROUP BY 1", value: n, labels: [queue]}}
      - {{name: orphans, sql: "SELECT id FROM jobs WHERE queue IS NULL", severity: warn}}
    migrations: {{directory: {tmp / 'migrations'}}}
  - name: files
    type: files
    interval: 1s
    timeout: 900ms
    checks:
      workdir: {{directory: {tmp}}}
      configs: {{glob: "{tmp}/*.yaml"}}
      integrity: {{manifest: {tmp / 'manifest.sha256'}}}
  - name: self
    type: http
    url: http://127.0.0.1:{exporter_port}/healthz
    interval: 1s
    timeout: 900ms
systems:
  - name: shop
    sources: [cache]
    queues:
      - source: cache
    workers:
      - name: agent
        source: broker
        last_run: agents.agents.0.last_heartbeat
        interval: 1h
    checks:
      - source: db
"""
