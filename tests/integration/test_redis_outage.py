"""Redis absent at start, lost mid-run and back, and hung, on redis-servers of the tests' own.

Through the real Scheduler: the source says `up 0` with the kind of failure, its queue series
disappear (never frozen at old values), `jobqueue_collect_errors_total{kind}` counts, and it
recovers by itself once the server is back. A hung server costs only its own source.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import hiredis
import redis

from exporter.scheduler import Scheduler
from tests.conftest import REDIS_URL, samples
from tests.support.servers import RedisServer


def source_yaml(name: str, url: str, key: str, interval: str = "15s", timeout: str = "2s") -> str:
    return f"""
  - name: {name}
    type: redis
    url: {url}
    interval: {interval}
    timeout: {timeout}
    queues:
      - {{layout: list, name: jobs, key: "{key}", timestamp_field: ts}}
"""


def seed(url: str, key: str, n: int) -> None:
    conn = redis.Redis.from_url(url)
    conn.delete(key)
    for i in range(n):
        conn.rpush(key, json.dumps({"ts": 1_700_000_000 + i}))
    conn.close()


def queue_series(scheduler: Scheduler, source: str) -> dict[str, float]:
    return {k: v for k, v in samples(scheduler).items()
            if f'source="{source}"' in k and k.startswith(("jobqueue_depth", "jobqueue_oldest", "jobqueue_jobs"))}


async def test_absent_at_start_then_appears(make_scheduler: Callable[..., Scheduler], tmp_path: Path) -> None:
    server = RedisServer(tmp_path)  # a free port where nothing listens yet
    scheduler = make_scheduler("sources:" + source_yaml("r", server.url, "q"))
    await scheduler.collect_once()
    got = samples(scheduler)
    assert got['jobqueue_source_up{source="r",backend="redis"}'] == 0
    assert got['jobqueue_collect_errors_total{source="r",kind="unreachable"}'] == 1
    assert queue_series(scheduler, "r") == {}
    assert scheduler.snapshot.sources["r"].status.error_kind == "unreachable"
    server.start()
    try:
        seed(server.url, "q", 2)
        await scheduler.collect_once()
        got = samples(scheduler)
        assert got['jobqueue_source_up{source="r",backend="redis"}'] == 1
        assert queue_series(scheduler, "r") == {
            'jobqueue_depth{source="r",tenant="",queue="jobs"}': 2,
            'jobqueue_oldest_age_seconds{source="r",tenant="",queue="jobs"}':
                got['jobqueue_oldest_age_seconds{source="r",tenant="",queue="jobs"}'],
            'jobqueue_oldest_timestamp_seconds{source="r",tenant="",queue="jobs"}': 1_700_000_000,
        }
        assert got['jobqueue_collect_errors_total{source="r",kind="unreachable"}'] == 1  # a counter: kept
    finally:
        server.stop()


async def test_lost_mid_run_and_back(make_scheduler: Callable[..., Scheduler], redis_server: RedisServer) -> None:
    seed(redis_server.url, "q", 3)
    scheduler = make_scheduler("sources:" + source_yaml("r", redis_server.url, "q"))
    await scheduler.collect_once()
    assert samples(scheduler)['jobqueue_depth{source="r",tenant="",queue="jobs"}'] == 3
    redis_server.stop()
    for _ in range(2):
        await scheduler.collect_once()
    got = samples(scheduler)
    assert got['jobqueue_source_up{source="r",backend="redis"}'] == 0
    assert got['jobqueue_collect_errors_total{source="r",kind="unreachable"}'] == 2
    assert queue_series(scheduler, "r") == {}  # no stale depth of 3
    assert 'jobqueue_last_success_timestamp_seconds{source="r"}' in got  # when it last worked
    redis_server.start()  # same port, empty server: the lean connection's socket is dead (one retry)
    seed(redis_server.url, "q", 1)
    await scheduler.collect_once()
    got = samples(scheduler)
    assert got['jobqueue_source_up{source="r",backend="redis"}'] == 1
    assert got['jobqueue_depth{source="r",tenant="",queue="jobs"}'] == 1


async def wait_until(check: Callable[[], bool], what: str, limit: float = 30.0) -> None:
    """Poll a condition (no timing assertion: the limit only stops a broken test from hanging)."""
    for _ in range(int(limit / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


async def test_hung_server_times_out_alone(make_scheduler: Callable[..., Scheduler], redis_server: RedisServer,
                                           redis_client: redis.Redis, prefix: str) -> None:
    seed(redis_server.url, "q", 2)
    healthy_key = f"{prefix}healthy"
    seed(REDIS_URL, healthy_key, 4)
    scheduler = make_scheduler("sources:" + source_yaml("hung", redis_server.url, "q", "1s", "500ms")
                               + source_yaml("healthy", REDIS_URL, healthy_key, "1s", "500ms"))
    states = lambda: scheduler.snapshot.sources  # noqa: E731
    scheduler.start()
    await wait_until(lambda: states()["hung"].status.up and states()["healthy"].status.up, "both up")
    redis_server.pause()  # SIGSTOP: the port accepts, nothing answers
    await wait_until(lambda: states()["hung"].status.error_kind == "timeout", "hung source timed out")
    healthy_before = states()["healthy"].status.collections
    await wait_until(lambda: states()["healthy"].status.collections >= healthy_before + 2,
                     "healthy source kept collecting")
    got = samples(scheduler)
    assert got['jobqueue_source_up{source="hung",backend="redis"}'] == 0
    assert got['jobqueue_collect_errors_total{source="hung",kind="timeout"}'] >= 1
    assert queue_series(scheduler, "hung") == {}
    assert got['jobqueue_source_up{source="healthy",backend="redis"}'] == 1
    assert got['jobqueue_depth{source="healthy",tenant="",queue="jobs"}'] == 4
    assert not any('source="healthy"' in k for k in got if k.startswith("jobqueue_collect_errors"))
    redis_server.resume()
    await wait_until(lambda: states()["hung"].status.up, "hung source recovered")
    assert samples(scheduler)['jobqueue_depth{source="hung",tenant="",queue="jobs"}'] == 2
    await scheduler.stop()


async def _answer_loading(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A server reading its dataset after a restart: the handshake passes, every read says LOADING."""
    parser = hiredis.Reader()
    try:
        while data := await reader.read(65536):
            parser.feed(data)
            while (command := parser.gets()) is not False:
                ok = command[0].upper() in (b"CLIENT", b"SELECT", b"AUTH")
                writer.write(b"+OK\r\n" if ok else b"-LOADING Redis is loading the dataset in memory\r\n")
            await writer.drain()
    finally:
        writer.close()


async def test_a_loading_server_is_unreachable(make_scheduler: Callable[..., Scheduler]) -> None:
    """-LOADING is kind `unreachable` on one server as on Sentinel and Cluster (redis-py's
    BusyLoadingError is a ConnectionError); the lean connection said `error` before WireBusyLoading."""
    server = await asyncio.start_server(_answer_loading, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        scheduler = make_scheduler("sources:" + source_yaml("r", f"redis://127.0.0.1:{port}", "q"))
        await scheduler.collect_once()
        status = scheduler.snapshot.sources["r"].status
        assert (status.up, status.error_kind) == (False, "unreachable")
        assert status.error is not None and "LOADING" in status.error
        got = samples(scheduler)
        assert got['jobqueue_collect_errors_total{source="r",kind="unreachable"}'] == 1
        assert 'jobqueue_collect_errors_total{source="r",kind="error"}' not in got
        await scheduler.stop()
    finally:
        server.close()
        await server.wait_closed()
