"""NATS source against the shared JetStream server: exact values, paging, KV, advisories, registries."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig

from exporter.cli import build_scheduler
from exporter.scheduler import Scheduler
from tests.conftest import config_from, samples

NATS_URL = "nats://127.0.0.1:4222"


class Js:
    """A JetStream client that remembers what the test created and deletes it afterwards."""

    def __init__(self, nc: Any, js: JetStreamContext, tag: str) -> None:
        self.nc, self.js, self.tag = nc, js, tag
        self.streams: list[str] = []

    def name(self, base: str) -> str:
        return f"{self.tag}_{base}"

    async def stream(self, base: str, messages: int = 0, **kw: Any) -> str:
        name = self.name(base)
        await self.js.add_stream(name=name, subjects=[f"{name}.>"], **kw)
        self.streams.append(name)
        for i in range(messages):
            await self.js.publish(f"{name}.m", f"msg-{i}".encode())
        return name

    async def kv(self, base: str, **kw: Any) -> Any:
        name = self.name(base)
        self.streams.append(f"KV_{name}")
        return await self.js.create_key_value(bucket=name, **kw)

    async def obj(self, base: str) -> Any:
        name = self.name(base)
        self.streams.append(f"OBJ_{name}")
        return await self.js.create_object_store(bucket=name)


@pytest.fixture
async def jsc() -> AsyncIterator[Js]:
    nc = await nats.connect(NATS_URL)
    helper = Js(nc, nc.jetstream(), f"jq{uuid.uuid4().hex[:8]}")
    yield helper
    for name in helper.streams:
        with contextlib.suppress(Exception):  # already gone
            await helper.js.delete_stream(name)
    await nc.close()


def scheduler_for(jsc: Js, extra: str = "", url: str = NATS_URL) -> Scheduler:
    text = f"""
sources:
  - name: nats
    type: nats
    url: {url}
    streams: {{include: ["{jsc.tag}_*"]}}
    kv: {{include: ["{jsc.tag}_*"]}}
    object_stores: {{include: ["{jsc.tag}_*"]}}
{extra}"""
    return build_scheduler(config_from(text))


async def collect(scheduler: Scheduler) -> tuple[dict[str, float], dict[str, Any]]:
    await scheduler.collect_once()
    state = scheduler.snapshot.sources["nats"]
    assert state.status.up, state.status.error
    assert state.reading is not None
    return samples(scheduler), dict(state.reading.details)


async def test_streams_consumers_and_oldest_message(jsc: Js) -> None:
    jobs = await jsc.stream("JOBS", messages=5)
    empty = await jsc.stream("EMPTY")
    await jsc.js.add_consumer(jobs, ConsumerConfig(durable_name="workers", ack_wait=30))
    sub = await jsc.js.pull_subscribe(f"{jobs}.>", durable="workers", stream=jobs)
    fetched = await sub.fetch(2, timeout=5)
    assert len(fetched) == 2
    info = await jsc.nc.request(f"$JS.API.STREAM.INFO.{jobs}", b"")
    first_ts = json.loads(info.data)["state"]["first_ts"]
    scheduler = scheduler_for(jsc)
    try:
        values, details = await collect(scheduler)
    finally:
        await scheduler.stop()
    src = 'source="nats"'
    assert values[f'jobqueue_depth{{{src},tenant="",queue="{jobs}"}}'] == 5
    assert values[f'jobqueue_depth{{{src},tenant="",queue="{empty}"}}'] == 0
    assert values[f'jobqueue_oldest_age_seconds{{{src},tenant="",queue="{empty}"}}'] == 0
    assert f'jobqueue_oldest_timestamp_seconds{{{src},tenant="",queue="{empty}"}}' not in values
    from exporter.sources.nats.parse import parse_ts

    oldest = parse_ts(first_ts)
    assert details["streams"][1]["first_ts"] == oldest  # exact; the exposition renders milliseconds
    assert values[f'jobqueue_oldest_timestamp_seconds{{{src},tenant="",queue="{jobs}"}}'] == pytest.approx(
        oldest, abs=5e-4)
    assert values[f'jobqueue_nats_stream_consumers{{{src},stream="{jobs}"}}'] == 1
    consumer = f'{src},stream="{jobs}",consumer="workers"'
    assert values[f"jobqueue_nats_consumer_pending{{{consumer}}}"] == 3
    assert values[f"jobqueue_nats_consumer_ack_pending{{{consumer}}}"] == 2
    assert values[f"jobqueue_nats_consumer_redelivered{{{consumer}}}"] == 0
    assert values[f"jobqueue_nats_consumer_waiting{{{consumer}}}"] == 0
    stream_info = await jsc.js.stream_info(jobs)
    assert values[f'jobqueue_nats_stream_bytes{{{src},stream="{jobs}"}}'] == stream_info.state.bytes
    assert [s["name"] for s in details["streams"]] == [empty, jobs]  # sorted by name
    assert details["nats"]["url"] == NATS_URL and details["nats"]["connected"] is True
    assert details["nats"]["version"].count(".") == 2
    assert details["consumers"] == {"total": 1, "consumers": [
        {"stream": jobs, "name": "workers", "pending": 3, "ack_pending": 2, "redelivered": 0, "waiting": 0}]}


async def test_consumer_delivered_and_ack_floor_as_processed_counters(jsc: Js) -> None:
    jobs = await jsc.stream("FLOW", messages=6)
    await jsc.js.add_consumer(jobs, ConsumerConfig(durable_name="a", ack_wait=30))
    await jsc.js.add_consumer(jobs, ConsumerConfig(durable_name="b", ack_wait=30))
    sub_a = await jsc.js.pull_subscribe(f"{jobs}.>", durable="a", stream=jobs)
    sub_b = await jsc.js.pull_subscribe(f"{jobs}.>", durable="b", stream=jobs)
    got_a = await sub_a.fetch(4, timeout=5)
    for msg in got_a[:3]:  # 1..3 acked, 4 delivered and pending: ack floor 3
        await msg.ack_sync()
    got_b = await sub_b.fetch(2, timeout=5)
    await got_b[1].ack_sync()  # 2 acked but 1 is not: the floor stays at 0
    info = await jsc.js.consumer_info(jobs, "a")
    assert (info.delivered.consumer_seq, info.ack_floor.consumer_seq) == (4, 3)  # NATS's own view
    scheduler = scheduler_for(jsc)
    try:
        values, _ = await collect(scheduler)
    finally:
        await scheduler.stop()
    src = 'source="nats"'
    for consumer, delivered, acked in (("a", 4, 3), ("b", 2, 0)):
        labels = f'{src},stream="{jobs}",consumer="{consumer}"'
        assert values[f"jobqueue_nats_consumer_delivered_total{{{labels}}}"] == delivered
        assert values[f"jobqueue_nats_consumer_acked_total{{{labels}}}"] == acked
    assert values[f'jobqueue_jobs_processed_total{{{src},tenant="",queue="{jobs}"}}'] == 3
    assert not [k for k in values if k.startswith("jobqueue_jobs_failed_total{")]


async def test_every_listing_is_paged_to_the_end(jsc: Js) -> None:
    names = [await jsc.stream(f"S{i:03d}") for i in range(270)]
    wide = names[0]
    await asyncio.gather(*(jsc.js.add_consumer(wide, ConsumerConfig(durable_name=f"c{i:03d}"))
                           for i in range(300)))
    scheduler = scheduler_for(jsc)
    try:
        values, details = await collect(scheduler)
    finally:
        await scheduler.stop()
    assert len(details["streams"]) == 270
    assert sum(1 for k in values if k.startswith("jobqueue_depth{")) == 270
    assert details["consumers"]["total"] == 300
    assert values[f'jobqueue_nats_stream_consumers{{source="nats",stream="{wide}"}}'] == 300
    assert {c["name"] for c in details["consumers"]["consumers"]} == {f"c{i:03d}" for i in range(300)}


async def test_include_exclude_and_ephemeral_consumers(jsc: Js) -> None:
    keep = await jsc.stream("KEEP", messages=1)
    drop = await jsc.stream("DROP", messages=1)
    await jsc.js.add_consumer(keep, ConsumerConfig(durable_name="main"))
    await jsc.js.add_consumer(keep, ConsumerConfig(durable_name="audit"))
    await jsc.js.add_consumer(keep, ConsumerConfig(inactive_threshold=60))  # ephemeral
    extra = """    consumers: {exclude: ["audit"]}
"""
    text_streams = f'["{jsc.tag}_*"], exclude: ["{drop}"]'
    scheduler = build_scheduler(config_from(f"""
sources:
  - name: nats
    type: nats
    streams: {{include: {text_streams}}}
{extra}"""))
    try:
        values, details = await collect(scheduler)
    finally:
        await scheduler.stop()
    assert [s["name"] for s in details["streams"]] == [keep]
    assert [c["name"] for c in details["consumers"]["consumers"]] == ["main"]
    assert values[f'jobqueue_nats_stream_consumers{{source="nats",stream="{keep}"}}'] == 3
    assert not any(drop in k for k in values)


async def test_kv_live_keys_bytes_and_object_store_size(jsc: Js) -> None:
    kv = await jsc.kv("cache", history=5)
    for key in ("a", "b", "c", "d"):
        await kv.put(key, b"v1")
    await kv.put("a", b"v2")
    await kv.put("a", b"v3")
    await kv.delete("b")
    await kv.purge("c")
    store = await jsc.obj("files")
    await store.put("blob", b"x" * 4096)
    scheduler = scheduler_for(jsc)
    try:
        values, details = await collect(scheduler)
    finally:
        await scheduler.stop()
    bucket, files = jsc.name("cache"), jsc.name("files")
    kv_info = await jsc.js.stream_info(f"KV_{bucket}")
    obj_info = await jsc.js.stream_info(f"OBJ_{files}")
    assert values[f'jobqueue_nats_kv_keys{{source="nats",bucket="{bucket}"}}'] == 2  # a and d
    assert values[f'jobqueue_nats_kv_bytes{{source="nats",bucket="{bucket}"}}'] == kv_info.state.bytes
    assert values[f'jobqueue_nats_object_store_bytes{{source="nats",bucket="{files}"}}'] == obj_info.state.bytes
    assert details["kv_buckets"] == [{"name": bucket, "keys": 2, "values": kv_info.state.messages,
                                      "bytes": kv_info.state.bytes}]
    assert details["object_stores"] == [{"name": files, "size": obj_info.state.bytes}]
    assert details["streams"] == []  # KV_ and OBJ_ streams are buckets, not streams


async def exceed_max_deliveries(jsc: Js, stream: str, consumer: str, messages: int) -> None:
    """Publish, then fetch without acking until the server gives up on every message."""
    for i in range(messages):
        await jsc.js.publish(f"{stream}.task", f"t{i}".encode())
    await jsc.js.add_consumer(stream, ConsumerConfig(durable_name=consumer, ack_wait=0.3, max_deliver=1))
    sub = await jsc.js.pull_subscribe(f"{stream}.>", durable=consumer, stream=stream)
    got = await sub.fetch(messages, timeout=5)
    assert len(got) == messages
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # a pull after ack_wait makes the server emit the advisories
        with contextlib.suppress(nats.errors.TimeoutError):
            await sub.fetch(1, timeout=0.5)
        info = await jsc.js.consumer_info(stream, consumer)
        if info.num_ack_pending == 0:
            return
    raise AssertionError("the server did not give up on the messages")


async def test_dead_letters_counted_from_live_advisories(jsc: Js) -> None:
    stream = await jsc.stream("WORK")
    await jsc.js.add_consumer(stream, ConsumerConfig(durable_name="calm", max_deliver=5))
    scheduler = scheduler_for(jsc)
    try:
        first, _ = await collect(scheduler)  # connects and subscribes
        # every consumer in scope has its series from the first collection, so increase() sees batch one
        assert first[f'jobqueue_nats_dead_letters{{source="nats",stream="{stream}",consumer="calm"}}'] == 0
        await exceed_max_deliveries(jsc, stream, "flaky", 3)
        labels = f'source="nats",stream="{stream}",consumer="flaky"'
        deadline = time.monotonic() + 10
        values: dict[str, float] = {}
        while time.monotonic() < deadline:
            values, details = await collect(scheduler)
            if values.get(f"jobqueue_nats_dead_letters{{{labels}}}") == 3:
                break
            await asyncio.sleep(0.1)
        assert values[f"jobqueue_nats_dead_letters{{{labels}}}"] == 3
        assert details["dead_letters"] == {"mode": "subscribe", "total": 3, "consumers": [
            {"stream": stream, "consumer": "calm", "count": 0}, {"stream": stream, "consumer": "flaky", "count": 3}]}
    finally:
        await scheduler.stop()


async def test_dead_letters_read_from_capture_stream(jsc: Js) -> None:
    stream = await jsc.stream("WORK")
    capture = jsc.name("DLQ")
    await jsc.js.add_stream(name=capture, subjects=[f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.>"])
    jsc.streams.append(capture)
    await exceed_max_deliveries(jsc, stream, "flaky", 2)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # advisories reach the capture stream asynchronously
        if (await jsc.js.stream_info(capture)).state.messages >= 2:
            break
        await asyncio.sleep(0.1)
    scheduler = scheduler_for(jsc, f"    dead_letters: {{mode: stream, stream: {capture}}}\n")
    try:
        values, details = await collect(scheduler)
    finally:
        await scheduler.stop()
    assert values[f'jobqueue_nats_dead_letters{{source="nats",stream="{stream}",consumer="flaky"}}'] == 2
    assert details["dead_letters"]["total"] == 2 and details["dead_letters"]["mode"] == "stream"


async def test_job_and_agent_registries(jsc: Js) -> None:
    jobs = await jsc.kv("jobs", history=3)
    statuses = {"j1": "unprocessed", "j2": "unprocessed", "j3": "processing", "j4": "completed",
                "j5": "completed", "j6": "completed", "j7": "failed", "j8": "dlq", "j9": "weird"}
    for key, status in statuses.items():
        await jobs.put(key, json.dumps({"id": key, "state": {"name": status}}).encode())
    await jobs.put("j2", json.dumps({"id": "j2", "state": {"name": "completed"}}).encode())  # moved on
    await jobs.put("j10", b"not json")
    await jobs.put("j11", json.dumps({"state": {"name": "failed"}}).encode())
    await jobs.delete("j11")
    agents = await jsc.kv("agents")
    now = time.time()
    await agents.put("a1", json.dumps({"host": "web-01", "labels": {"group": "web.prod", "az": "a"},
                                       "status": "Ready", "seen": now - 5}).encode())
    await agents.put("a2", json.dumps({"host": "web-02", "labels": "group=web.prod", "status": "Ready",
                                       "seen": now - 600}).encode())
    await agents.put("a3", json.dumps({"host": "gpu-01", "labels": [], "status": "NotReady",
                                       "seen": now - 1}).encode())
    scheduler = scheduler_for(jsc, f"""    jobs: {{bucket: {jsc.name('jobs')}, queue: jobs, status_field: state.name}}
    agents: {{bucket: {jsc.name('agents')}, hostname_field: host, heartbeat_field: seen, stale_after: 60s}}
""")
    try:
        values, details = await collect(scheduler)
    finally:
        await scheduler.stop()
    assert details["jobs"] == {"bucket": jsc.name("jobs"), "exists": True, "total": 9, "unprocessed": 1,
                               "processing": 1, "completed": 4, "failed": 1, "dlq": 1, "other": 1,
                               "oldest_unprocessed": details["jobs"]["oldest_unprocessed"]}
    q = 'source="nats",tenant="",queue="jobs"'
    assert values[f"jobqueue_depth{{{q}}}"] == 1
    assert values[f'jobqueue_jobs{{{q},state="completed"}}'] == 4
    assert values['jobqueue_failed_jobs{source="nats",tenant="",queue="jobs"}'] == 1
    assert values['jobqueue_malformed_items{source="nats"}'] == 1
    assert details["agents"]["total"] == 3 and details["agents"]["ready"] == 1
    by_host = {a["hostname"]: a for a in details["agents"]["agents"]}
    assert by_host["web-01"]["labels"] == "az=a,group=web.prod" and by_host["web-01"]["ready"] is True
    assert by_host["web-02"]["ready"] is False  # heartbeat older than stale_after
    assert by_host["gpu-01"]["status"] == "NotReady" and by_host["gpu-01"]["ready"] is False
    assert by_host["web-01"]["last_heartbeat"] == pytest.approx(now - 5)
    assert values['jobqueue_nats_agents{source="nats",ready="true"}'] == 1
    assert values['jobqueue_nats_agents{source="nats",ready="false"}'] == 2
    assert values['jobqueue_nats_agent_heartbeat_timestamp_seconds{source="nats",agent="web-02"}'] == \
        pytest.approx(now - 600)


async def test_status_token_layout_and_missing_bucket(jsc: Js) -> None:
    jobs = await jsc.kv("jobsk")
    for key in ("pending.1", "pending.2", "running.3", "done.4"):
        await jobs.put(key, b"{}")
    scheduler = scheduler_for(jsc, f"""    jobs: {{bucket: {jsc.name('jobsk')}, status_field: null, status_token: 0,
           statuses: {{completed: [done], processing: [running]}}}}
    agents: {{bucket: {jsc.name('nobucket')}}}
""")
    try:
        _values, details = await collect(scheduler)
    finally:
        await scheduler.stop()
    assert (details["jobs"]["unprocessed"], details["jobs"]["processing"], details["jobs"]["completed"]) == (2, 1, 1)
    assert details["agents"] == {"bucket": jsc.name("nobucket"), "exists": False, "total": 0, "ready": 0,
                                 "agents": []}


async def test_collection_creates_nothing(jsc: Js) -> None:
    await jsc.stream("RO", messages=2)
    before = await jsc.js.account_info()
    scheduler = scheduler_for(jsc)
    try:
        await collect(scheduler)
        await collect(scheduler)
    finally:
        await scheduler.stop()
    after = await jsc.js.account_info()
    assert (after.streams, after.consumers) == (before.streams, before.consumers)


async def test_kv_key_count_capped(jsc: Js) -> None:
    kv = await jsc.kv("big")
    for key in ("a", "b", "c"):
        await kv.put(key, b'{"status": "completed"}')
    bucket = jsc.name("big")
    scheduler = build_scheduler(config_from(f"""
sources:
  - name: nats
    type: nats
    streams: {{include: ["{jsc.tag}_*"]}}
    kv: {{include: ["{jsc.tag}_*"], max_keys: 2}}
    jobs: {{bucket: {bucket}}}
"""))
    try:
        values, details = await collect(scheduler)
    finally:
        await scheduler.stop()
    assert f'jobqueue_nats_kv_keys{{source="nats",bucket="{bucket}"}}' not in values
    assert details["kv_buckets"][0]["keys"] is None and details["kv_buckets"][0]["values"] == 3
    assert details["jobs"]["completed"] == 3  # the registry itself is read whole


async def test_missing_capture_stream_fails_the_source_clearly(jsc: Js) -> None:
    scheduler = scheduler_for(jsc, f"    dead_letters: {{mode: stream, stream: {jsc.name('NODLQ')}}}\n")
    try:
        await scheduler.collect_once()
    finally:
        await scheduler.stop()
    status = scheduler.snapshot.sources["nats"].status
    assert (status.up, status.error_kind) == (False, "not_found")
    assert jsc.name("NODLQ") in (status.error or "")


async def test_processed_does_not_go_back_when_a_consumer_is_deleted(jsc: Js) -> None:
    """The stream's processed counter is the consumers' ack floors added up: a deleted consumer's floor
    stays in it, or the counter would drop and Prometheus would read the drop as a reset (every job
    the other consumers ever acknowledged counted again by increase())."""
    jobs = await jsc.stream("GONE", messages=6)
    for durable, acks in (("a", 3), ("b", 2)):
        await jsc.js.add_consumer(jobs, ConsumerConfig(durable_name=durable, ack_wait=30))
        sub = await jsc.js.pull_subscribe(f"{jobs}.>", durable=durable, stream=jobs)
        for msg in (await sub.fetch(acks, timeout=5))[:acks]:
            await msg.ack_sync()
        await sub.unsubscribe()
    key = f'jobqueue_jobs_processed_total{{source="nats",tenant="",queue="{jobs}"}}'
    scheduler = scheduler_for(jsc)
    try:
        values, _ = await collect(scheduler)
        assert values[key] == 5
        await jsc.js.delete_consumer(jobs, "a")
        values, _ = await collect(scheduler)
        assert values[key] == 5  # a's 3 kept, b's 2 live
        assert f'jobqueue_nats_consumer_acked_total{{source="nats",stream="{jobs}",consumer="a"}}' not in values
        await jsc.js.delete_consumer(jobs, "b")  # no consumer left: the stream still counts what was done
        values, _ = await collect(scheduler)
        assert values[key] == 5
    finally:
        await scheduler.stop()
