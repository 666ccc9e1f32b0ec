"""The NATS source works as a user allowed only JetStream info/list/get requests: it writes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import nats
import pytest
from nats.js.api import ConsumerConfig

from exporter.cli import build_scheduler
from exporter.config import parse_config
from exporter.scheduler import Scheduler
from tests.conftest import samples
from tests.support.nats import NatsServer

READ_ONLY = [  # what docs/sources/nats.md tells operators to grant
    "$JS.API.INFO", "$JS.API.STREAM.LIST", "$JS.API.STREAM.INFO.>", "$JS.API.CONSUMER.LIST.>",
    "$JS.API.STREAM.MSG.GET.>",
]


def authorization(publish: list[str]) -> str:
    reader = {"user": "reader", "password": "reader-pw", "permissions": {
        "publish": {"allow": publish},
        "subscribe": {"allow": ["_INBOX.>", "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>"]}}}
    admin = {"user": "admin", "password": "admin-pw"}
    return f"authorization {{ users = {json.dumps([admin, reader])} }}"


@pytest.fixture
def secured(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path, extra_config=authorization(request.param)).start()
    yield server
    server.stop()


async def seed(server: NatsServer) -> None:
    nc = await nats.connect(server.url, user="admin", password="admin-pw")
    js = nc.jetstream()
    await js.add_stream(name="JOBS", subjects=["jobs.>"])
    for i in range(3):
        await js.publish("jobs.new", f"j{i}".encode())
    await js.add_consumer("JOBS", ConsumerConfig(durable_name="workers"))
    kv = await js.create_key_value(bucket="job-queue")
    await kv.put("j1", b'{"status": "processing"}')
    await kv.put("j2", b'{"status": "completed"}')
    await kv.delete("j2")
    await nc.close()


def config(server: NatsServer) -> str:
    return f"""
sources:
  - name: nats
    type: nats
    url: {server.url}
    user: reader
    password: ${{NATS_PASSWORD}}
    timeout: 1s
    jobs: {{bucket: job-queue}}
"""


@pytest.mark.parametrize("secured", [READ_ONLY], indirect=True)
async def test_read_only_user_reads_everything(secured: NatsServer,
                                               make_scheduler: Callable[..., Scheduler]) -> None:
    await seed(secured)
    scheduler = make_scheduler(config(secured), {"NATS_PASSWORD": "reader-pw"})
    await scheduler.collect_once()
    await scheduler.collect_once()
    status = scheduler.snapshot.sources["nats"].status
    assert status.up, status.error
    values = samples(scheduler)
    assert values['jobqueue_depth{source="nats",tenant="",queue="JOBS"}'] == 3
    assert values['jobqueue_nats_consumer_pending{source="nats",stream="JOBS",consumer="workers"}'] == 3
    assert values['jobqueue_nats_kv_keys{source="nats",bucket="job-queue"}'] == 1
    assert values['jobqueue_jobs{source="nats",tenant="",queue="job-queue",state="processing"}'] == 1
    assert "reader-pw" not in repr(scheduler.snapshot.reading("nats").details)  # type: ignore[union-attr]


@pytest.mark.parametrize("secured", [[p for p in READ_ONLY if "MSG.GET" not in p]], indirect=True)
async def test_a_refused_read_is_reported_as_denied(secured: NatsServer,
                                                    make_scheduler: Callable[..., Scheduler]) -> None:
    await seed(secured)
    scheduler = make_scheduler(config(secured), {"NATS_PASSWORD": "reader-pw"})
    await scheduler.collect_once()
    status = scheduler.snapshot.sources["nats"].status
    assert (status.up, status.error_kind) == (False, "denied")
    assert "stream.msg.get" in (status.error or "").lower()
    assert not any(k.startswith(("jobqueue_nats_", "jobqueue_depth")) for k in samples(scheduler))


@pytest.mark.parametrize("secured", [READ_ONLY], indirect=True)
async def test_wrong_password_is_denied(secured: NatsServer, make_scheduler: Callable[..., Scheduler]) -> None:
    scheduler = make_scheduler(config(secured), {"NATS_PASSWORD": "wrong"})
    await scheduler.collect_once()
    status = scheduler.snapshot.sources["nats"].status
    assert (status.up, status.error_kind) == (False, "denied")


async def test_password_file_is_read(tmp_path: Path) -> None:
    """A `password_file` reaches the server as the password (it once crashed: a str has no read_text)."""
    secret = tmp_path / "nats-password"
    secret.write_text("s3cret-pw\n")
    server = NatsServer(tmp_path, extra_config='authorization { users = [{user: "exp", password: "s3cret-pw"}] }')
    server.start()
    try:
        config = parse_config(f"sources:\n  - name: n\n    type: nats\n    url: {server.url}\n    user: exp\n"
                              f"    password_file: {secret}\n", "<test>", {})
        scheduler = build_scheduler(config)
        await scheduler.collect_once()
        await scheduler.stop()
        assert scheduler.snapshot.sources["n"].status.up
    finally:
        server.stop()
