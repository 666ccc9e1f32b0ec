"""Seed 002 against real PostgreSQL, Redis, files and the host: /health (public), /health/detailed and
/health/consistency (authenticated), the status rules, and Redis stopped (degraded, still 200)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web

from tests.support.servers import RedisServer, free_port
from tests.support.shims import get, serve

SHARED = "postgresql://postgres@127.0.0.1:5432"
ENV = {"API_KEY": "media-key"}
KEY = {"X_API_Key": "media-key"}


@pytest.fixture
async def database() -> AsyncIterator[str]:
    name = f"jqshim_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(f"{SHARED}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    conn = await asyncpg.connect(f"{SHARED}/{name}")
    await conn.execute("""
        CREATE TABLE media_files (file_name text, file_uuid text, status text, job_id text);
        INSERT INTO media_files VALUES ('video.mp4', 'abc123', 'processing', NULL),
                                       ('clip.mov', 'def456', 'processing', 'j1'),
                                       ('old.avi', 'ghi789', 'unregistered', NULL);
        CREATE TABLE schema_migrations (filename text);
        INSERT INTO schema_migrations VALUES ('migrate_add_users_table.sql');
    """)
    await conn.close()
    try:
        yield f"{SHARED}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


class Qdrant:
    """A real HTTP server standing in for the vector database: /healthz answers `status` (200 or 503)."""

    def __init__(self) -> None:
        self.status = 200
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/healthz"

    async def handle(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok" if self.status == 200 else "down"}, status=self.status)


@pytest.fixture
async def qdrant() -> AsyncIterator[Qdrant]:
    server = Qdrant()
    app = web.Application()
    app.router.add_get("/healthz", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", server.port).start()
    yield server
    await runner.cleanup()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (tmp_path / "models").mkdir()
    (tmp_path / "identities").mkdir()
    for name in ("a.npy", "b.npy", "index.json"):
        (tmp_path / "identities" / name).write_text("x")
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "migrate_add_users_table.sql").write_text("-- applied\n")
    lines = []
    for name in ("asr", "ocr"):
        content = f"# {name}\n"
        (scripts / f"{name}.py").write_text(content)
        lines.append(f"{hashlib.sha256(content.encode()).hexdigest()}  {name}.py")
    lines.append(f"{'0' * 64}  missing.py")
    (scripts / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return tmp_path


def config(dsn: str, redis_url: str, root: Path, qdrant_url: str) -> str:
    return f"""
sources:
  - name: pg
    type: postgres
    dsn: {dsn}
    checks:
      - name: stale_processing
        severity: warn
        sql: "SELECT file_name, file_uuid, status, 'job_id is null' AS detail FROM media_files
              WHERE status = 'processing' AND job_id IS NULL ORDER BY file_name"
      - name: unregistered_with_uuid
        severity: info
        sql: "SELECT file_name, file_uuid, status, 'row still in DB' AS detail FROM media_files
              WHERE status = 'unregistered' ORDER BY file_name"
      - {{name: identities_count, sql: "SELECT 2 AS n"}}
    migrations: {{directory: {root}/migrations}}
  - {{name: qdrant, type: http, url: "{qdrant_url}", timeout: 5s}}
  - {{name: redis, type: redis, url: "{redis_url}", timeout: 5s,
     queues: [{{layout: list, name: jobs, key: jq:shim:jobs}}]}}
  - {{name: host, type: system}}
  - name: files
    type: files
    checks:
      pipeline:
        scripts_ready: {{directory: {root}/scripts}}
        scripts_count: {{glob: "{root}/scripts/*.py"}}
        processors: {{asr: {{path: {root}/scripts/asr.py}}, yolo: {{path: {root}/scripts/yolo.py}}}}
        models_ready: {{directory: {root}/models}}
        models_count: {{glob: "{root}/models/*"}}
        scripts_integrity: {{manifest: {root}/scripts/SHA256SUMS}}
        ffmpeg: {{binary: jq-no-such-binary}}
      identities:
        directory_exists: {{directory: {root}/identities}}
        files_count: {{glob: "{root}/identities/*.npy"}}
        index_ok: {{path: {root}/identities/index.json}}
      tmdb:
        api_key_configured: {{env: JQ_NO_SUCH_TMDB_KEY}}
        enabled: {{const: false}}
        api_reachable: {{const: null}}
systems:
  - name: media
    sources: [pg, redis]
    down: degraded
    checks: [{{source: pg}}]
auth: {{tokens: [{{name: media, token: "${{API_KEY}}"}}]}}
shims:
  service:
    system: media
    version: 1.0.0
    build_git_hash: 3a6c1865
    build_timestamp: "2026-05-16T13:38:15Z"
    services: {{postgres: pg, redis: redis, qdrant: qdrant}}
    resources: host
    pipeline: {{source: files, path: pipeline}}
    schema: {{source: pg, path: schema}}
    identities: {{source: files, path: identities}}
    identities_db_count: {{source: pg, path: checks.identities_count.rows.0.n}}
    integrations: {{tmdb: {{source: files, path: tmdb}}}}
    config: {{cache: true, auto_pipeline: false, watcher: true}}
    consistency: pg
"""


async def test_the_three_endpoints(database: str, tree: Path, redis_server: RedisServer, qdrant: Qdrant) -> None:
    async with serve(config(database, redis_server.url, tree, qdrant.url), ENV) as (client, scheduler):
        status, body = await get(client, "/health")
        assert body.pop("uptime_ms") >= 0
        assert (status, body) == (200, {"status": "ok", "version": "1.0.0", "build_git_hash": "3a6c1865",
                                        "build_timestamp": "2026-05-16T13:38:15Z"})
        assert await get(client, "/health/detailed") == (401, {"error": "unauthorized"})
        assert await get(client, "/health/consistency", X_API_Key="wrong") == (401, {"error": "unauthorized"})

        status, body = await get(client, "/health/detailed", **KEY)
        assert status == 200
        services = body.pop("services")
        assert {k: v["status"] for k, v in services.items()} == {"postgres": "ok", "redis": "ok", "qdrant": "ok"}
        assert all(isinstance(v["latency_ms"], int) for v in services.values())
        assert set(body.pop("resources")) == {"cpu_used_percent", "memory_available_mb", "memory_used_percent"}
        assert body == {
            "status": "ok", "version": "1.0.0",
            "pipeline": {"scripts_ready": True, "scripts_count": 2, "processors": {"asr": True, "yolo": False},
                         "models_ready": True, "models_count": 0,
                         "scripts_integrity": {"matched": 2, "total": 3, "ok": False}, "ffmpeg": False},
            "schema": {"table_exists": True, "applied": [{"filename": "migrate_add_users_table.sql"}],
                       "required": [], "ok": True},
            "identities": {"directory_exists": True, "files_count": 2, "index_ok": True, "db_count": 2,
                           "synced": True},
            "integrations": {"tmdb": {"api_key_configured": False, "enabled": False, "api_reachable": None}},
            "config": {"cache": True, "auto_pipeline": False, "watcher": True},
        }
        status, body = await get(client, "/health/consistency", **KEY)
        checked = body.pop("checked_at")
        assert checked.endswith("Z") and len(checked) == 20
        assert (status, body) == (200, {"status": "degraded", "checks": [
            {"check": "stale_processing", "severity": "warn", "count": 1, "files": [
                {"file_name": "video.mp4", "file_uuid": "abc123", "status": "processing",
                 "detail": "job_id is null"}]},
            {"check": "unregistered_with_uuid", "severity": "info", "count": 1, "files": [
                {"file_name": "old.avi", "file_uuid": "ghi789", "status": "unregistered",
                 "detail": "row still in DB"}]}]})

        qdrant.status = 503
        await scheduler.collect_once()
        status, body = await get(client, "/health/detailed", **KEY)
        assert (status, body["status"], body["services"]["qdrant"]["status"]) == (200, "degraded", "error")
        qdrant.status = 200

        redis_server.stop()
        await scheduler.collect_once()
        status, body = await get(client, "/health", **KEY)
        assert (status, body["status"]) == (200, "degraded")
        status, body = await get(client, "/health/detailed", **KEY)
        assert (status, body["status"], body["services"]["redis"]) == (
            200, "degraded", {"status": "error", "latency_ms": None})
        assert body["services"]["postgres"]["status"] == "ok"  # its warn check is /health/consistency's business
        metrics = await (await client.get("/metrics")).text()
        assert 'jobqueue_health_status{system="media",status="degraded"} 1' in metrics
        assert 'jobqueue_health_issue{system="media",issue="check:stale_processing"} 1' in metrics
        assert 'jobqueue_health_issue{system="media",issue="source_down:redis"} 1' in metrics

        redis_server.start()
        await scheduler.collect_once()
        status, body = await get(client, "/health/detailed", **KEY)
        assert body["services"]["redis"]["status"] == "ok"
