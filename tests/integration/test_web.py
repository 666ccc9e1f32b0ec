"""The exporter's own endpoints through a real HTTP client, a real app and the real Redis."""

from __future__ import annotations

import asyncio
import gzip
import json
import subprocess
import time
from collections.abc import AsyncIterator

import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer

from exporter.cli import build_scheduler
from exporter.web.app import build_app
from tests.conftest import config_from

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,"
    "text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
)


@pytest.fixture
async def client(prefix: str, redis_client: redis.Redis) -> AsyncIterator[TestClient]:
    now = time.time()
    redis_client.rpush(f"{prefix}queues:default", json.dumps({"createdAt": int(now) - 90}), json.dumps({}))
    config = config_from(f"""
sources:
  - name: cache
    type: redis
    queues: [{{layout: laravel, prefix: "{prefix}", queues: [default, empty]}}]
  - name: dead
    type: redis
    url: redis://127.0.0.1:1/0
    timeout: 1s
    queues: [{{layout: laravel, queues: [default]}}]
""")
    scheduler = build_scheduler(config)
    app = build_app(config, scheduler, run_scheduler=False)
    async with TestClient(TestServer(app)) as test_client:
        test_client.scheduler = scheduler  # type: ignore[attr-defined]
        yield test_client
    await scheduler.stop()


async def test_readyz_waits_for_every_source_then_answers_ready(client: TestClient) -> None:
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert await resp.json() == {"status": "starting", "waiting_for": ["cache", "dead"]}
    await client.scheduler.collect_once()  # type: ignore[attr-defined]
    resp = await client.get("/readyz")
    assert (resp.status, await resp.json()) == (200, {"status": "ready"})


async def test_healthz_is_liveness_only(client: TestClient) -> None:
    resp = await client.get("/healthz")
    assert (resp.status, await resp.json()) == (200, {"status": "ok"})


async def test_metrics_text_openmetrics_and_gzip(client: TestClient) -> None:
    await client.scheduler.collect_once()  # type: ignore[attr-defined]
    text = await client.get("/metrics", headers={"Accept": "text/plain", "Accept-Encoding": "identity"})
    assert text.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "Content-Encoding" not in text.headers
    body = await text.text()
    assert 'jobqueue_depth{source="cache",tenant="",queue="default"} 2\n' in body
    assert 'jobqueue_depth{source="cache",tenant="",queue="empty"} 0\n' in body
    assert 'jobqueue_source_up{source="dead",backend="redis"} 0\n' in body
    assert 'source="dead",tenant=' not in body  # a down source has no queue series

    om = await client.get("/metrics", headers={"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"},
                          auto_decompress=False)
    assert om.headers["Content-Type"] == "application/openmetrics-text; version=1.0.0; charset=utf-8"
    assert om.headers["Content-Encoding"] == "gzip"
    unpacked = gzip.decompress(await om.read()).decode()
    assert unpacked.endswith("# EOF\n")
    assert 'jobqueue_depth{source="cache",tenant="",queue="default"} 2\n' in unpacked


async def test_real_scrape_passes_promtool(client: TestClient) -> None:
    await client.scheduler.collect_once()  # type: ignore[attr-defined]
    body = await (await client.get("/metrics")).read()
    result = await asyncio.to_thread(subprocess.run, ["promtool", "check", "metrics"], input=body,
                                     capture_output=True)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")


async def test_landing_page_lists_endpoints_and_sources(client: TestClient) -> None:
    await client.scheduler.collect_once()  # type: ignore[attr-defined]
    resp = await client.get("/")
    page = await resp.text()
    assert resp.headers["Content-Type"].startswith("text/html")
    for path in ("/metrics", "/healthz", "/readyz"):
        assert f'<a href="{path}">{path}</a>' in page
    cache = page.split('<tr data-source="cache">')[1].split("</tr>")[0]
    assert "<td>Redis</td><td>2 queues</td>" in cache and '<span class="state up">up</span>' in cache
    dead = page.split('<tr data-source="dead">')[1].split("</tr>")[0]
    assert '<span class="state down">down</span><div class="error">' in dead and "<td>never</td>" in dead
    # no shim is configured: none of their paths is offered; no internal words
    assert "/api/" not in page and "/health/" not in page and "seed" not in page.lower()


async def test_unknown_path_and_method_get_json_errors(client: TestClient) -> None:
    resp = await client.get("/nope")
    assert (resp.status, await resp.json()) == (404, {"error": "not_found"})
    resp = await client.post("/metrics")
    assert (resp.status, await resp.json()) == (405, {"error": "method_not_allowed"})
    assert resp.headers["Allow"] == "GET,HEAD"
