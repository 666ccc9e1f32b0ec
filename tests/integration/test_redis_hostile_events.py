"""Celery events that are not Celery events, on the real Redis: anyone who may PUBLISH on the topic
(the ACL's `&channels`) may send anything there. Each bad message is counted in
`jobqueue_malformed_items` and skipped, one warning at most every 5 minutes says so, the listener
never ends (no traceback, no events missed while it restarts), and the good events published after
the bad ones are still counted. The good events are published by Celery's own EventDispatcher over
kombu's Redis transport, the bad ones with redis-py exactly as a corrupting producer would.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from exporter.sources.redis.events import MAX_HOSTNAME
from exporter.sources.redis.source import RedisSource
from tests.conftest import REDIS_URL
from tests.support.redis_libs import make_source, samples_of
from tests.support.redis_topology import LocalCluster, SentinelSetup

WORKERS = "jobqueue_workers"
TASKS = "jobqueue_celery_tasks"


def envelope(body: bytes) -> bytes:
    """A kombu message as its Redis channel PUBLISHes it (`_put_fanout`: JSON, the body base64)."""
    return json.dumps({"body": base64.b64encode(body).decode(), "content-encoding": "utf-8",
                       "content-type": "application/json", "headers": {},
                       "properties": {"body_encoding": "base64", "delivery_mode": 1}}).encode()


def event(**fields: Any) -> bytes:
    return envelope(json.dumps(fields).encode())


# (routing key, payload): each is one malformed count; the first one's reason is in the warning
BAD: list[tuple[str, bytes]] = [
    ("worker.heartbeat", b"\xff\xfe\x80 not UTF-8 \xc3\x28"),
    ("worker.heartbeat", b"valid UTF-8, not JSON \xc3\xa9"),
    ("worker.heartbeat", b"[1, 2, 3]"),
    ("worker.heartbeat", b'{"headers": {}, "properties": {"body_encoding": "base64"}}'),
    ("worker.heartbeat", b'{"body": {"type": "worker-heartbeat"}}'),
    ("worker.heartbeat", b'{"body": "e30=", "properties": "base64"}'),
    ("worker.heartbeat", b'{"body": "!!not*base64", "properties": {"body_encoding": "base64"}}'),
    ("worker.heartbeat", b'{"body": "\\u00e9t\\u00e9", "properties": {"body_encoding": "base64"}}'),
    ("worker.heartbeat", envelope(b"not JSON")),
    ("worker.heartbeat", envelope(b"\xff\xfe\xfd")),
    ("worker.heartbeat", envelope(b"[" * 100_000)),
    ("worker.heartbeat", event(hostname="w9@h", freq=60.0)),  # no type
    ("worker.heartbeat", event(type="worker-heartbeat", freq=60.0, active=0)),  # no hostname
    ("worker.heartbeat", event(type="worker-heartbeat", hostname={"a": 1}, freq=60.0)),
    ("worker.heartbeat", event(type="worker-heartbeat", hostname="w" * (MAX_HOSTNAME + 1), freq=60.0)),
    ("task.succeeded", event(type="task-succeeded", hostname="w1@h", runtime=1.0)),  # no uuid
    ("task.received", event(type="task-received", hostname="w1@h", uuid="u9", name=["jq", "ok"])),
    ("worker.heartbeat", b'{"body": "' + b"A" * (5 << 20) + b'"}'),  # 5 MiB
    # a list of events (task.multi): the bad one is skipped, the good one after it still counts
    ("task.multi", envelope(json.dumps(["not an event", {"type": "worker-heartbeat", "hostname": "w2@h",
                                                          "freq": 60.0, "active": 1}]).encode())),
]


@pytest.fixture
def dispatcher(prefix: str) -> Iterator[Any]:
    """Celery's own event dispatcher, on kombu's Redis transport under the test's key prefix."""
    app = Celery("jqhostile", broker=REDIS_URL, set_as_current=False)
    app.conf.broker_transport_options = {"global_keyprefix": prefix}
    with app.connection_for_write() as conn:
        sender = app.events.Dispatcher(conn, hostname="w1@h", enabled=True, buffer_while_offline=False)
        yield sender
        sender.close()
    app.close()


async def until(source: RedisSource, send: Callable[[], None],
                check: Callable[[dict[str, dict[tuple[str, ...], float]]], bool]) -> tuple[Any, int]:
    """Collect (sending first, when the listener may not hear yet) until `check` holds, bounded; the
    last reading and the malformed items counted by every collection meanwhile."""
    deadline, malformed = time.monotonic() + 60, 0
    while True:
        send()
        reading = await source.collect()
        malformed += reading.malformed
        got = {m: samples_of(reading, m) for m in (WORKERS, TASKS)}
        if check(got):
            return got, malformed
        assert time.monotonic() < deadline, got
        await asyncio.sleep(0.1)


async def test_malformed_event_messages_are_counted_skipped_and_the_listener_goes_on(
        redis_client: redis.Redis, prefix: str, dispatcher: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    """Before: redis-py decoded every message (decode_responses), and one that was not UTF-8 raised
    UnicodeDecodeError out of `get_message`: the listener ended, its traceback was logged and every
    event until the next collection restarted it was lost; a heartbeat without a hostname (or with
    a JSON object as one) counted as a live worker "" ("{'a': 1}")."""
    queues = [{"layout": "celery", "queues": ["flow"], "global_keyprefix": prefix, "events": True}]
    source = make_source(REDIS_URL, queues, now=None)
    topic = next(iter(source._listeners.values())).prefix
    try:
        with caplog.at_level(logging.WARNING, logger="jobqueue.redis"):
            await until(source, lambda: dispatcher.send("worker-heartbeat", freq=60.0, active=0),
                        lambda g: g[WORKERS].get(("", "", "idle")) == 1)
            listening = source._listening
            for key, payload in BAD:
                assert redis_client.publish(topic + key, payload) == 1  # the listener is subscribed
            # published after every bad message (Redis delivers in order): once counted, all were read
            dispatcher.send("task-received", uuid="u1", name="jq.ok")
            dispatcher.send("task-succeeded", uuid="u1", runtime=0.5)
            got, malformed = await until(source, lambda: None,
                                         lambda g: g[TASKS].get(("", "jq.ok", "succeeded")) == 1)
            assert malformed == len(BAD)
            assert source._listening is listening and listening is not None and not listening.done()
            # w1 (Celery's heartbeat) and w2 (the good half of the list); no worker "" or "{'a': 1}"
            assert got[WORKERS] == {("", "", "busy"): 1, ("", "", "idle"): 1}
            assert got[TASKS] == {("", "jq.ok", "succeeded"): 1, ("", "jq.ok", "failed"): 0}
            # a second burst within 5 minutes: counted, not logged again
            for key, payload in BAD[:3]:
                redis_client.publish(topic + key, payload)
            dispatcher.send("task-failed", uuid="u2")
            _, malformed = await until(source, lambda: None,
                                       lambda g: g[TASKS].get(("", "unknown", "failed")) == 1)
            assert malformed == 3
    finally:
        await source.close()
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []
    (line,) = [r for r in caplog.records if r.getMessage() == "Celery event messages malformed, skipped"]
    assert line.__dict__["reason"] == "not UTF-8"  # the first since the collection before it
    assert 1 <= line.__dict__["skipped"] <= len(BAD)


# ------------------------------------------------------------- Sentinel and Cluster: the same listener


async def hears_past_a_message_not_utf8(source: RedisSource, publish: Callable[[str, bytes], object]) -> None:
    """The listener of `source` hears w1, then a message that is not UTF-8 (one malformed count), then
    w2, without ending: its redis-py client is undecoded in every topology."""
    topic = next(iter(source._listeners.values())).prefix + "worker.heartbeat"

    def beat(host: str) -> Callable[[], None]:
        def send() -> None:
            publish(topic, event(type="worker-heartbeat", hostname=host, freq=60.0, active=0))
        return send

    try:
        await until(source, beat("w1@h"), lambda g: g[WORKERS].get(("", "", "idle")) == 1)
        listening = source._listening
        publish(topic, b"\xff\xfe not UTF-8")
        _, malformed = await until(source, beat("w2@h"), lambda g: g[WORKERS].get(("", "", "idle")) == 2)
        assert malformed == 1
        assert source._listening is listening and listening is not None and not listening.done()
    finally:
        await source.close()


async def test_a_message_not_utf8_never_ends_the_listener_on_a_cluster(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path).start()
    client = cluster.client()
    try:
        queues = [{"layout": "celery", "queues": ["flow"], "events": True}]
        await hears_past_a_message_not_utf8(make_source(cluster.url, queues, now=None, cluster=True),
                                            client.publish)
    finally:
        client.close()
        cluster.stop()


async def test_a_message_not_utf8_never_ends_the_listener_through_sentinel(tmp_path: Path) -> None:
    setup = SentinelSetup(tmp_path).start()
    master = redis.Redis(port=setup.master.port)
    try:
        queues = [{"layout": "celery", "queues": ["flow"], "events": True}]
        spec = {"master_name": "jobs", "urls": [setup.sentinel.url]}
        await hears_past_a_message_not_utf8(make_source("redis://ignored:1/0", queues, now=None, sentinel=spec),
                                            master.publish)
    finally:
        master.close()
        setup.stop()
