"""The exporter never writes: it runs as a Redis ACL user that cannot write, and a test proves it.

On a redis-server of the test's own: an admin seeds every layout, two ACL users are created with
the documented minimal ACL, and a scheduler built from YAML collects with two sources (one password
from a file and still saying the removed `scripts:`, which changes nothing; one from ${VAR}). Then
`INFO commandstats` lists every command the server ran meanwhile; none may carry the `write` flag,
KEYS must not appear, and the data set must be byte-for-byte what it was.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from exporter.scheduler import Scheduler
from tests.conftest import samples
from tests.support.redis_libs import NOW, seed_horizon, seed_laravel, seed_sidekiq
from tests.support.servers import RedisServer

# The minimal ACL documented in docs/sources/redis.md: read-only key access (%R~*), read commands,
# PING, CLIENT SETNAME (sent on connect; redis-py ignores a refused CLIENT SETINFO, which Redis 7.0
# does not have), CLIENT LIST (BullMQ/Bull workers, optional); never KEYS.
# The Celery event listener adds SUBSCRIBE on kombu's event topics only (&/0.celeryev/*).
READER = "on >{pw} resetkeys %R~* resetchannels &/0.celeryev/* -@all +@read -keys +ping +client|setname " \
         "+client|list +subscribe"
NO_CLIENT_LIST = "on >{pw} resetkeys %R~* resetchannels -@all +@read -keys +ping +client|setname"
ADMIN_COMMANDS = {"info", "config|resetstat", "acl|log", "publish"}

QUEUES = """
    queues:
      - {layout: list, name: events, key: "tenant_{tenant}:events", timestamp_field: ts}
      - {layout: zset, name: sched, key: zq}
      - {layout: stream, name: stream, key: sq}
      - {layout: horizon, prefix: "app_database_", horizon_prefix: "app_horizon:"}
      - {layout: sidekiq, prefix: "sk:", tenant: sk}
      - {layout: rq}
      - {layout: celery, queues: [celery], events: true}
      - {layout: bullmq, queues: [work]}
      - {layout: arq}
      - {layout: dramatiq, queues: [jobs]}
      - {layout: huey}
      - {layout: saq, queues: [sq]}
      - {layout: taskiq}
      - {layout: taskiq, broker: stream, queues: [tq]}
      - {layout: beequeue, queues: [bw]}
    tenants:
      scan: {match: "tenant_*:events", regex: "^tenant_(?P<tenant>[^:]+):"}
"""


def seed(conn: redis.Redis) -> None:
    for tenant, n in (("a", 2), ("b", 1)):
        for i in range(n):
            conn.rpush(f"tenant_{tenant}:events", json.dumps({"ts": NOW - 10 * (i + 1)}))
    conn.zadd("zq", {"x": NOW - 7})
    conn.xadd("sq", {"k": "v"}, id="1699999990000-0")
    conn.xgroup_create("sq", "g", id="0")
    conn.xreadgroup("g", "c", {"sq": ">"})
    seed_laravel(conn, "app_database_", "default", [int(NOW) - 30], delayed=1, reserved=1,
                 pushed=[f"{NOW - 30:.4f}"])
    beat = time.time()  # the scheduler's clock is the real one: live heartbeats
    seed_horizon(conn, "app_horizon:", [("m", "running", beat)], [("m:s", "m", beat, {"redis:default": 2})],
                 {"default": 1000}, [beat - 1], [beat - 1])
    seed_sidekiq(conn, "sk:", "default", [NOW - 5.5])
    conn.set("sk:stat:processed", 3)
    conn.sadd("rq:queues", "rq:queue:mail")
    conn.rpush("rq:queue:mail", "j1")
    conn.hset("rq:job:j1", "enqueued_at", "2023-11-14T22:13:10.000000Z")
    # a live RQ worker as worker_registration.register and Worker.heartbeat leave it (rq/worker/base.py)
    conn.sadd("rq:workers", "rq:worker:w1")
    conn.hset("rq:worker:w1", mapping={"state": "idle", "queues": "mail", "successful_job_count": 1,
                                       "failed_job_count": 1, "total_working_time": 0.5,
                                       "last_heartbeat": "2023-11-14T22:13:10.000000Z"})
    conn.lpush("celery", "{}")
    conn.hset("bull:work:1", "timestamp", str(int(NOW * 1000) - 3000))
    conn.lpush("bull:work:wait", "1")
    ms = int(NOW * 1000)
    conn.zadd("arq:queue", {"j1": ms - 4000})
    conn.set("arq:queue:health-check", "Nov-14 22:13:16 j_complete=1 j_failed=0 j_retried=0 j_ongoing=0 queued=1")
    conn.rpush("dramatiq:jobs", "m1")
    conn.hset("dramatiq:jobs.msgs", "m1", json.dumps({"message_timestamp": ms - 5000}))
    conn.lpush("huey.redis.huey", b"\x80\x04pickle")
    conn.rpush("saq:sq:queued", "saq:job:sq:k")
    conn.set("saq:job:sq:k", json.dumps({"queued": ms - 6000}))
    conn.zadd("saq:sq:stats", {"saq:sq:worker_info:w": 4e12})
    conn.set("saq:sq:worker_info:w", json.dumps({"stats": {"complete": 1, "failed": 0}}))
    conn.lpush("taskiq", "{}")
    conn.xadd("tq", {"data": "{}"})
    conn.lpush("bq:bw:waiting", "1")
    conn.hset("bq:bw:jobs", "1", json.dumps({"options": {"timestamp": ms - 7000}}))


def celery_event(event: dict[str, Any]) -> str:
    """A Celery event as kombu's Redis channel PUBLISHes it (`_put_fanout`: the message JSON, body base64)."""
    body = base64.b64encode(json.dumps({**event, "timestamp": time.time(), "utcoffset": 0, "pid": 1,
                                        "clock": 1}).encode()).decode()
    return json.dumps({"body": body, "content-encoding": "utf-8", "content-type": "application/json",
                       "headers": {}, "properties": {"delivery_mode": 1, "body_encoding": "base64",
                                                     "delivery_info": {"exchange": "celeryev",
                                                                       "routing_key": "worker.heartbeat"},
                                                     "priority": 0, "delivery_tag": "t"}})


def dump(conn: redis.Redis) -> dict[bytes, bytes]:
    return {key: conn.dump(key) for key in sorted(conn.scan_iter(count=1000))}


def commands_run(conn: redis.Redis) -> dict[str, dict[str, int]]:
    stats = conn.info("commandstats")
    return {name.removeprefix("cmdstat_"): v for name, v in stats.items()
            if name.removeprefix("cmdstat_") not in ADMIN_COMMANDS}


def flags(conn: redis.Redis, command: str) -> set[str]:
    info: Any = conn.execute_command("COMMAND", "INFO", command)
    entry = info[0] if isinstance(info, list) else next(iter(info.values()))
    raw = entry[2] if isinstance(entry, list) else entry["flags"]
    return {f.decode() if isinstance(f, bytes) else f for f in raw}


async def test_read_only_acl_user_collects_everything(
        redis_server: RedisServer, make_scheduler: Callable[..., Scheduler], tmp_path: Path) -> None:
    admin = redis.Redis.from_url(redis_server.url)
    seed(admin)
    admin.execute_command("ACL", "SETUSER", "exporter", *READER.format(pw="s3cret-file").split())
    admin.execute_command("ACL", "SETUSER", "envuser", *READER.format(pw="s3cret-env").split())
    pw_file = tmp_path / "redis-password"
    pw_file.write_text("s3cret-file\n")
    before = dump(admin)
    admin.config_resetstat()
    admin.execute_command("ACL", "LOG", "RESET")
    scheduler = make_scheduler(f"""
sources:
  - name: file
    type: redis
    url: {redis_server.url}
    username: exporter
    password_file: {pw_file}
    scripts: lua
{QUEUES}
  - name: env
    type: redis
    url: {redis_server.url}
    username: envuser
    password: ${{ENVUSER_PASSWORD}}
{QUEUES}
""", {"ENVUSER_PASSWORD": "s3cret-env"})
    await scheduler.collect_once()
    await scheduler.collect_once()  # the second run reuses packed commands and unchanged heads
    # each source's Celery listener hears a worker heartbeat (published by the test, as kombu does)
    deadline = time.monotonic() + 60
    while not all(f'jobqueue_workers{{source="{s}",tenant="",queue="",state="idle"}}' in samples(scheduler)
                  and samples(scheduler)[f'jobqueue_workers{{source="{s}",tenant="",queue="",state="idle"}}'] == 1
                  for s in ("file", "env")):
        assert time.monotonic() < deadline, samples(scheduler)
        admin.publish("/0.celeryev/worker.heartbeat", celery_event({"type": "worker-heartbeat", "freq": 60.0,
                                                                     "active": 0, "hostname": "w1@h"}))
        await asyncio.sleep(0.1)
        await scheduler.collect_once()
    # every listener now subscribed: one task that succeeded, as a worker announces it
    deadline = time.monotonic() + 60
    for kind, event in (("received", {"name": "tasks.add"}), ("succeeded", {"runtime": 0.5})):
        admin.publish(f"/0.celeryev/task.{kind}", celery_event({"type": f"task-{kind}", "uuid": "u1",
                                                                "hostname": "w1@h", **event}))
    while not all(samples(scheduler).get(f'jobqueue_celery_tasks_total{{source="{s}",tenant="",task="tasks.add",'
                                         'outcome="succeeded"}') == 1 for s in ("file", "env")):
        assert time.monotonic() < deadline, samples(scheduler)
        await asyncio.sleep(0.1)
        await scheduler.collect_once()
    states = scheduler.snapshot.sources
    assert [states[n].status.up for n in ("file", "env")] == [True, True]
    a, b = (states[n].reading for n in ("file", "env"))
    assert (a.queues, a.samples, a.malformed) == (b.queues, b.samples, b.malformed)
    got = samples(scheduler)
    for src in ("file", "env"):
        assert got[f'jobqueue_depth{{source="{src}",tenant="a",queue="events"}}'] == 2
        assert got[f'jobqueue_oldest_age_seconds{{source="{src}",tenant="",queue="default"}}'] > 0
        assert got[f'jobqueue_source_up{{source="{src}",backend="redis"}}'] == 1
        # flow and workers: Sidekiq's counters (its own app, tenant "sk"); RQ's (2) and Celery's (1)
        # library-wide counts add up under queue ""; RQ's live worker; BullMQ's connected workers (none)
        assert got[f'jobqueue_jobs_processed_total{{source="{src}",tenant="sk",queue=""}}'] == 3
        assert got[f'jobqueue_jobs_processed_total{{source="{src}",tenant="",queue=""}}'] == 3
        assert got[f'jobqueue_jobs_failed_total{{source="{src}",tenant="",queue=""}}'] == 1
        assert got[f'jobqueue_workers{{source="{src}",tenant="",queue="mail",state="idle"}}'] == 1
        assert got[f'jobqueue_workers{{source="{src}",tenant="",queue="work",state="unknown"}}'] == 0
        assert got[f'jobqueue_series_collisions{{source="{src}"}}'] == 0
    # in layout order, each series once: Horizon reads Laravel's `default`; Sidekiq's is its own app's
    # (tenant "sk"); the stream's one entry is delivered to its group, so nothing waits there
    depths = [(q.queue, q.depth) for q in a.queues if q.tenant == ""]
    assert depths == [("sched", 1), ("stream", 0), ("default", 1), ("mail", 1), ("celery", 1), ("work", 1),
                      ("arq:queue", 1), ("jobs", 1), ("huey", 1), ("sq", 1), ("taskiq", 1), ("tq", 1), ("bw", 1)]
    assert [(q.queue, q.depth) for q in a.queues if q.tenant == "sk"] == [("default", 1)]
    assert a.collisions == ()
    assert a.malformed == 0

    ran = commands_run(admin)
    writers = {name for name in ran if "write" in flags(admin, name)}
    assert writers == set() and "keys" not in ran
    # HELLO: redis-py's protocol negotiation; AUTH: the lean pipeline connection's login. Neither touches data.
    assert set(ran) - {"hello", "auth"} == {
        "client|setname", "ping", "scan", "smembers", "llen", "lindex", "lrange",
        "exists", "get", "hget", "hgetall", "hlen", "scard", "zcard", "zcount", "zrange", "zrangebyscore", "zrevrange",
        "xlen", "xrange", "xinfo|groups", "client|list", "subscribe"}
    assert admin.execute_command("ACL", "LOG") == []  # nothing is ever refused (the removed `scripts` is ignored)
    assert dump(admin) == before
    admin.close()


def _entry(raw: Any) -> dict[bytes, Any]:
    if isinstance(raw, dict):
        return {k if isinstance(k, bytes) else str(k).encode(): v for k, v in raw.items()}
    return dict(zip(raw[::2], raw[1::2], strict=False))


async def test_a_user_that_may_not_read_is_reported_denied(
        redis_server: RedisServer, make_scheduler: Callable[..., Scheduler]) -> None:
    admin = redis.Redis.from_url(redis_server.url)
    admin.execute_command("ACL", "SETUSER", "blind", "on", ">pw", "resetkeys", "-@all", "+ping", "+client|setname")
    scheduler = make_scheduler(f"""
sources:
  - name: blind
    type: redis
    url: {redis_server.url}
    username: blind
    password: pw
    queues: [{{layout: list, name: q, key: q}}]
""")
    await scheduler.collect_once()
    status = scheduler.snapshot.sources["blind"].status
    assert (status.up, status.error_kind) == (False, "denied")
    assert samples(scheduler)['jobqueue_collect_errors_total{source="blind",kind="denied"}'] == 1
    admin.close()


async def test_without_client_list_the_bullmq_workers_are_absent_and_the_source_up(
        redis_server: RedisServer, make_scheduler: Callable[..., Scheduler]) -> None:
    admin = redis.Redis.from_url(redis_server.url)
    seed(admin)
    admin.execute_command("ACL", "SETUSER", "nolist", *NO_CLIENT_LIST.format(pw="pw").split())
    scheduler = make_scheduler(f"""
sources:
  - name: nolist
    type: redis
    url: {redis_server.url}
    username: nolist
    password: pw
    queues: [{{layout: bullmq, queues: [work]}}]
""")
    await scheduler.collect_once()
    assert scheduler.snapshot.sources["nolist"].status.up
    got = samples(scheduler)
    assert got['jobqueue_depth{source="nolist",tenant="",queue="work"}'] == 1
    assert not [k for k in got if k.startswith("jobqueue_workers{")]
    refused = {_entry(e).get(b"object") for e in admin.execute_command("ACL", "LOG")}
    assert refused == {b"client|list"}
    admin.close()
