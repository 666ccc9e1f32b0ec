"""Seed 001 against a nats-server of the test's own: every block of /api/health/status, 401/403,
and the 503 while NATS is stopped, then recovery."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.js.api import ConsumerConfig

from tests.support.nats import NatsServer
from tests.support.shims import get, serve

ENV = {"STATUS_KEY": "status-key", "OTHER_KEY": "other-key"}


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    server = NatsServer(tmp_path).start()
    yield server
    server.stop()


def config(url: str, registry: bool = False) -> str:
    registry = ", registry: [{source: host, path: registry}]" if registry else ""
    return f"""
sources:
  - name: nats
    type: nats
    url: {url}
    timeout: 2s
    dead_letters: {{mode: "off"}}
    jobs: {{bucket: job-queue}}
    agents: {{bucket: agents}}
  - name: host
    type: system
    hostname: web-01
    processes:
      - {{name: api, type: api, own: true}}
      - {{name: ghost, type: agent, process: jq-no-such-process}}
systems:
  - name: platform
    sources: [nats]
    components: [{{name: agents, source: nats, path: agents.agents}}]
auth:
  tokens:
    - {{name: status, token: "${{STATUS_KEY}}", permissions: [health:read]}}
    - {{name: other, token: "${{OTHER_KEY}}", permissions: [jobs:write]}}
shims:
  status: {{system: platform, version: 0.1.0{registry}}}
"""


async def populate(url: str) -> dict[str, int]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(name="JOBS", subjects=["jobs.>"])
    for i in range(3):
        await js.publish("jobs.new", f"job-{i}".encode())
    await js.add_consumer("JOBS", ConsumerConfig(durable_name="query_any_web_01", ack_wait=30))
    kv = await js.create_key_value(bucket="job-queue")
    for key, status in (("j1", "unprocessed"), ("j2", "processing"), ("j3", "completed"), ("j4", "failed")):
        await kv.put(key, json.dumps({"status": status}).encode())
    agents = await js.create_key_value(bucket="agents")
    await agents.put("web-01", json.dumps({"hostname": "web-01", "labels": {"group": "web.prod"},
                                           "status": "Ready"}).encode())
    store = await js.create_object_store(bucket="file-objects")
    await store.put("a.bin", b"0123456789")
    info = {"JOBS": (await js.stream_info("JOBS")).state.bytes,
            "job-queue": (await js.stream_info("KV_job-queue")).state.bytes,
            "file-objects": (await js.stream_info("OBJ_file-objects")).state.bytes}
    await nc.close()
    return info


async def test_every_block_of_the_status_document(nats_server: NatsServer) -> None:
    sizes = await populate(nats_server.url)
    async with serve(config(nats_server.url), ENV) as (client, scheduler):
        status, body = await get(client, "/api/health/status", X_API_Key="status-key")
        assert status == 200
        assert body["uptime"].endswith("s")
        registered = body["agents"]["agents"][0].pop("registered")
        assert registered.endswith("s ago")
        version = body["nats"].pop("version")
        assert version.count(".") == 2
        assert {k: v for k, v in body.items() if k != "uptime"} == {
            "status": "ok",
            "components": {"nats": {"status": "ok", "address": nats_server.url}},
            "version": "0.1.0",
            "nats": {"url": nats_server.url},
            "streams": [{"name": "JOBS", "messages": 3, "bytes": sizes["JOBS"], "consumers": 1}],
            "kv_buckets": [{"name": "agents", "keys": 1, "bytes": body["kv_buckets"][0]["bytes"]},
                           {"name": "job-queue", "keys": 4, "bytes": sizes["job-queue"]}],
            "object_stores": [{"name": "file-objects", "size": sizes["file-objects"]}],
            "jobs": {"total": 4, "unprocessed": 1, "processing": 1, "completed": 1, "failed": 1, "dlq": 0},
            "agents": {"total": 1, "ready": 1, "agents": [{"hostname": "web-01", "labels": "group=web.prod"}]},
            "consumers": {"total": 1, "consumers": [{"name": "query_any_web_01", "pending": 3, "ack_pending": 0,
                                                    "redelivered": 0}]},
            "registry": [{"type": "agent", "hostname": "web-01", "status": "Ready", "conditions": [], "age": None,
                          "cpu_percent": None, "mem_bytes": None}],
        }
        assert await get(client, "/api/health/status") == (401, {
            "error": "Unauthorized", "details": "API key required.", "code": 401})
        assert await get(client, "/api/health/status", X_API_Key="wrong") == (401, {
            "error": "Unauthorized", "details": "Invalid API key.", "code": 401})
        assert await get(client, "/api/health/status", Authorization="Bearer other-key") == (403, {
            "error": "Forbidden", "details": "Insufficient permissions.", "code": 403})

        nats_server.stop()
        await scheduler.collect_once()
        status, body = await get(client, "/api/health/status", X_API_Key="status-key")
        assert status == 503
        error = body["components"]["nats"].pop("error")
        assert error == scheduler.snapshot.sources["nats"].status.error  # the collection's own reason
        assert {k: v for k, v in body.items() if k != "uptime"} == {
            "status": "unhealthy", "components": {"nats": {"status": "unhealthy"}}, "version": "0.1.0",
            "nats": None, "streams": [], "kv_buckets": [], "object_stores": [], "jobs": None, "agents": None,
            "consumers": None, "registry": []}

        nats_server.start()
        await scheduler.collect_once()
        status, body = await get(client, "/api/health/status", X_API_Key="status-key")
        assert (status, body["status"], body["jobs"]["total"]) == (200, "ok", 4)


async def test_an_unhealthy_component_gives_503(nats_server: NatsServer) -> None:
    await populate(nats_server.url)
    nc = await nats.connect(nats_server.url)
    agents = await nc.jetstream().key_value("agents")
    await agents.put("web-02", json.dumps({"hostname": "web-02", "labels": "group=web", "status": "NotReady"}).encode())
    await nc.close()
    async with serve(config(nats_server.url), ENV) as (client, _):
        status, body = await get(client, "/api/health/status", X_API_Key="status-key")
    assert (status, body["status"]) == (503, "unhealthy")
    assert body["components"]["agents:web-02"] == {"status": "unhealthy", "error": "web-02 is NotReady"}
    assert body["agents"]["total"] == 2 and body["agents"]["ready"] == 1


async def test_an_agent_silent_past_stale_after_is_not_ready(nats_server: NatsServer) -> None:
    """It last wrote "Ready", but its heartbeat is 2 minutes old with stale_after 60s: NotReady in the body,
    its component unhealthy, 503 as the seed answers when a component is unhealthy."""
    await populate(nats_server.url)
    nc = await nats.connect(nats_server.url)
    agents = await nc.jetstream().key_value("agents")
    now = time.time()
    await agents.put("web-01", json.dumps({"hostname": "web-01", "labels": "group=web", "status": "Ready",
                                           "beat": now - 5}).encode())
    await agents.put("web-03", json.dumps({"hostname": "web-03", "labels": "group=web", "status": "Ready",
                                           "beat": now - 120}).encode())
    await nc.close()
    text = config(nats_server.url).replace("agents: {bucket: agents}",
                                           "agents: {bucket: agents, heartbeat_field: beat, stale_after: 60s}")
    async with serve(text, ENV) as (client, _):
        status, body = await get(client, "/api/health/status", X_API_Key="status-key")
    assert (status, body["status"]) == (503, "unhealthy")
    assert body["components"]["agents:web-03"] == {"status": "unhealthy", "error": "web-03 is NotReady"}
    assert "agents:web-01" not in body["components"]
    assert (body["agents"]["total"], body["agents"]["ready"]) == (2, 1)
    assert [(r["hostname"], r["status"], r["conditions"]) for r in body["registry"]] == [
        ("web-01", "Ready", []), ("web-03", "NotReady", ["HeartbeatStale"])]
    fresh, silent = (a["registered"] for a in body["agents"]["agents"])
    assert fresh.endswith("s ago") and silent == "2m ago"


async def test_registry_of_component_processes(nats_server: NatsServer) -> None:
    await populate(nats_server.url)
    async with serve(config(nats_server.url, registry=True), ENV) as (client, _):
        status, body = await get(client, "/api/health/status", X_API_Key="status-key")
    assert status == 200
    agent, api, ghost = body["registry"]
    assert agent["type"] == "agent"
    assert isinstance(api.pop("cpu_percent"), float) and api.pop("mem_bytes") > 0
    assert api.pop("age").endswith(("s", "m"))
    assert api == {"type": "api", "hostname": "web-01", "status": "Ready", "conditions": []}
    assert (ghost["type"], ghost["hostname"], ghost["status"]) == ("agent", "web-01", "NotReady")
    assert ghost["conditions"]  # the source says why (no process found)
