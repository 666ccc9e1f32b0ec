"""NATS stopped, hung and restarted under a running scheduler, on a nats-server of the test's own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import nats
import pytest

from exporter.scheduler import Scheduler
from tests.conftest import samples, until
from tests.support.nats import NatsServer
from tests.support.servers import free_port


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path).start()
    yield server
    if server.proc is not None:
        server.resume()
    server.stop()


async def seed(url: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(name="ORDERS", subjects=["orders.>"])
    for i in range(4):
        await js.publish("orders.new", f"o{i}".encode())
    kv = await js.create_key_value(bucket="jobs")
    await kv.put("j1", b'{"status": "unprocessed"}')
    await kv.put("j2", b'{"status": "failed"}')
    await nc.close()


def config(url: str) -> str:
    return f"""
sources:
  - name: nats
    type: nats
    url: {url}
    interval: 0.3s
    timeout: 0.25s
    jobs: {{bucket: jobs}}
"""




UP = 'jobqueue_source_up{source="nats",backend="nats"}'
UNREACHABLE = 'jobqueue_collect_errors_total{source="nats",kind="unreachable"}'
DEPTH = 'jobqueue_depth{source="nats",tenant="",queue="ORDERS"}'


def nats_series(values: dict[str, float]) -> list[str]:
    """Every series a down source must not export: queue numbers and source-specific ones."""
    return [k for k in values if k.startswith(("jobqueue_depth", "jobqueue_oldest", "jobqueue_jobs",
                                               "jobqueue_failed", "jobqueue_nats_", "jobqueue_source_latency"))]


async def test_stop_and_restart(nats_server: NatsServer, make_scheduler: Callable[[str], Scheduler]) -> None:
    await seed(nats_server.url)
    scheduler = make_scheduler(config(nats_server.url))
    scheduler.start()
    before = await until(scheduler, lambda v: v.get(UP) == 1)
    assert before[DEPTH] == 4
    assert before['jobqueue_jobs{source="nats",tenant="",queue="jobs",state="failed"}'] == 1

    nats_server.stop()
    # the cycle in flight when the server goes may time out; the next ones find nothing listening
    down = await until(scheduler, lambda v: v.get(UP) == 0 and v.get(UNREACHABLE, 0) >= 1)
    assert nats_series(down) == []
    assert scheduler.snapshot.reading("nats") is None

    nats_server.start()
    after = await until(scheduler, lambda v: v.get(UP) == 1)
    assert after[DEPTH] == 4
    assert after['jobqueue_depth{source="nats",tenant="",queue="jobs"}'] == 1
    assert after['jobqueue_last_success_timestamp_seconds{source="nats"}'] > \
        before['jobqueue_last_success_timestamp_seconds{source="nats"}']
    details = scheduler.snapshot.reading("nats").details  # type: ignore[union-attr]
    assert details["nats"]["url"] == nats_server.url and details["streams"][0]["messages"] == 4


async def test_hung_server_times_out(nats_server: NatsServer, make_scheduler: Callable[[str], Scheduler]) -> None:
    await seed(nats_server.url)
    scheduler = make_scheduler(config(nats_server.url))
    scheduler.start()
    await until(scheduler, lambda v: v.get(UP) == 1)
    nats_server.pause()
    try:
        down = await until(scheduler, lambda v: v.get(UP) == 0)
        assert nats_series(down) == []
        assert scheduler.snapshot.sources["nats"].status.error_kind == "timeout"
    finally:
        nats_server.resume()
    after = await until(scheduler, lambda v: v.get(UP) == 1)
    assert after[DEPTH] == 4


async def test_nothing_listening(make_scheduler: Callable[[str], Scheduler]) -> None:
    scheduler = make_scheduler(config(f"nats://127.0.0.1:{free_port()}"))
    await scheduler.collect_once()
    status = scheduler.snapshot.sources["nats"].status
    assert (status.up, status.error_kind) == (False, "unreachable")
    values = samples(scheduler)
    assert values[UP] == 0 and nats_series(values) == []
