"""scripts/demo-data fills every shim of config.example.yaml: run against servers and a database of the
test's own (the example reads REDIS_URL, NATS_URL, PG_DSN and JQ_DEMO_DIR), then every documented field of every
body is non-null, except the few the example cannot know (listed with the reason)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.nats import NatsServer
from tests.support.postgres import scratch_database
from tests.support.servers import RedisServer
from tests.support.shims import get, serve

ROOT = Path(__file__).resolve().parents[2]
TOKENS = {"JQ_TENANT_TOKEN": "tenant-t", "JQ_LANDLORD_TOKEN": "landlord-t", "JQ_STATUS_API_KEY": "status-k",
          "JQ_MEDIA_API_KEY": "media-k", "OPS_TOKEN": "ops-t"}
# The build's facts, as the container passes its build args (null without them: never invented).
BUILD = {"JOBQUEUE_EXPORTER_REVISION": "3a6c1865", "JOBQUEUE_EXPORTER_BUILD_TIMESTAMP": "2026-05-16T13:38:15Z"}
# Fields that stay null with the example, and why (anything else null fails the test).
EXPECTED_NULL = {
    # agents are KV registrations, not processes of this host: no process age, CPU or memory
    "status.registry[agent].age", "status.registry[agent].cpu_percent", "status.registry[agent].mem_bytes",
    # waiting jobs have not failed
    "jobs.data.jobs[0].error", "jobs.data.jobs[1].error", "jobs.data.jobs[2].error",
}


@pytest.fixture
def services(tmp_path: Path) -> Iterator[dict[str, str]]:
    for sub in ("redis", "nats"):
        (tmp_path / sub).mkdir()
    redis_server = RedisServer(tmp_path / "redis").start()
    nats_server = NatsServer(tmp_path / "nats").start()
    try:
        with scratch_database(prefix="jqdemo") as dsn:
            yield {"REDIS_URL": redis_server.url, "NATS_URL": nats_server.url, "PG_DSN": dsn,
                   "JQ_DEMO_DIR": str(tmp_path / "demo")}
    finally:
        redis_server.stop()
        nats_server.stop()


def nulls(value: Any, path: str) -> list[str]:
    """Paths of every null in a body; list items of the status registry are named by their type."""
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in nulls(v, f"{path}.{k}")]
    if isinstance(value, list):
        out = []
        for i, item in enumerate(value):
            tag = item.get("type") if isinstance(item, dict) and path.endswith("registry") else i
            out += nulls(item, f"{path}[{tag}]")
        return out
    return []


def demo(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "demo-data"), *args], check=True, timeout=120,
                   env={"PATH": "/usr/bin:/bin:/usr/local/bin", **env}, cwd=ROOT, capture_output=True)


async def test_demo_data_fills_every_shim_of_the_example(services: dict[str, str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in TOKENS.items():  # `token_env` reads the process environment
        monkeypatch.setenv(name, value)
    for name, value in BUILD.items():  # what the image's build args set (Dockerfile REVISION, BUILD_DATE)
        monkeypatch.setenv(name, value)
    demo(services)
    demo(services)  # a second run refreshes, never doubles
    text = (ROOT / "config.example.yaml").read_text()
    async with serve(text, {**services, **TOKENS}) as (client, scheduler):
        await scheduler.collect_once()  # a second collection: CPU deltas and history are filled
        bodies = {
            "tenant": await get(client, "/api/v1/health?tenant=acme", Authorization="Bearer tenant-t"),
            "idle-tenant": await get(client, "/api/v1/health?tenant=initech", Authorization="Bearer tenant-t"),
            "landlord": await get(client, "/api/v1/landlord/health", Authorization="Bearer landlord-t"),
            "tenants": await get(client, "/api/v1/landlord/tenants", Authorization="Bearer landlord-t"),
            "status": await get(client, "/api/health/status", X_API_Key="status-k"),
            "public": await get(client, "/health"),
            "detailed": await get(client, "/health/detailed", X_API_Key="media-k"),
            "consistency": await get(client, "/health/consistency", X_API_Key="media-k"),
            "queues": await get(client, "/api/v1/platform/system/queues", Authorization="Bearer ops-t"),
            "jobs": await get(client, "/api/v1/platform/system/queues/emails/jobs?limit=3",
                              "/api/v1/platform/system/queues/{queue_name}/jobs", Authorization="Bearer ops-t"),
            "infrastructure": await get(client, "/api/v1/platform/system/infrastructure/health",
                                        Authorization="Bearer ops-t"),
            "ops": await get(client, "/api/ops/plannings", x_ops_token="ops-t"),
        }
        metrics = await (await client.get("/metrics")).text()
    assert {name: status for name, (status, _) in bodies.items()} == {
        "tenant": 200, "idle-tenant": 200, "landlord": 200, "tenants": 200, "status": 200, "public": 200,
        "detailed": 200, "consistency": 200, "queues": 200, "jobs": 200, "infrastructure": 200, "ops": 200}
    found = {p for name, (_, body) in bodies.items() for p in nulls(body, name) if name != "idle-tenant"}
    assert found == EXPECTED_NULL
    assert bodies["idle-tenant"][1]["queues"]["events"] == {"depth": 0, "oldest_age_seconds": None}
    assert bodies["tenants"][1] == {"tenants": ["acme", "globex", "initech"]}
    public = bodies["public"][1]
    assert (public["build_git_hash"], public["build_timestamp"]) == ("3a6c1865", "2026-05-16T13:38:15Z")
    queues = {q["name"]: q for q in bodies["queues"][1]["data"]["queues"]}
    assert (queues["emails"]["waiting_jobs"], queues["emails"]["completed_last_hour"]) == (40, 12)
    assert bodies["jobs"][1]["data"]["pagination"]["total"] == 40
    assert bodies["ops"][1]["status"] == "healthy" and bodies["ops"][1]["backups"] == {
        "total": 127, "covered": 125, "disabled": 2}
    assert 'jobqueue_series_collisions{source="redis"} 0' in metrics
    detailed = bodies["detailed"][1]
    assert detailed["pipeline"] == {
        "scripts_ready": True, "scripts_count": 11,
        "processors": dict.fromkeys(("asr", "yolo", "face", "pose", "ocr", "cut", "scene", "asrx", "visual_chunk"),
                                    True),
        "models_ready": True, "models_count": 5, "scripts_integrity": {"matched": 11, "total": 11, "ok": True},
        "ffmpeg": shutil.which("ffmpeg") is not None}
    assert detailed["schema"] == {"table_exists": True, "applied": [
        {"filename": "001_create_media_identities.sql"}, {"filename": "002_add_identities_name_index.sql"}],
        "required": [], "ok": True}
    assert detailed["identities"] == {"directory_exists": True, "files_count": 120, "index_ok": True,
                                      "db_count": 120, "synced": True}
    demo(services, "--clean")
    assert not (Path(services["JQ_DEMO_DIR"]) / "media").exists()
