"""The OpenAPI document: checked in, served, complete, valid 3.1; and schemathesis against the live app
on real backends (Redis, host, files): no 5xx but documented 503s, every answer as documented."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openapi_spec_validator
import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from exporter.cli import build_scheduler
from exporter.config import parse_config
from exporter.web.app import build_app
from exporter.web.openapi import document, rendered
from tests.support.servers import free_port

CHECKED_IN = Path(__file__).parents[2] / "exporter" / "web" / "openapi.json"
ALL = {"Authorization": "Bearer fuzz-all", "X-API-Key": "fuzz-all", "x-ops-token": "fuzz-all"}


def config(prefix: str, root: Path) -> str:
    return f"""
sources:
  - name: redis
    type: redis
    tenants: {{static: [t1, t2]}}
    queues:
      - {{layout: list, name: events, key: "{prefix}{{tenant}}:events", timestamp_field: ts}}
      - {{layout: list, name: heartbeats, key: "{prefix}{{tenant}}:heartbeats", timestamp_field: ts}}
      - {{layout: horizon, queues: [default], prefix: "{prefix}laravel-", horizon_prefix: "{prefix}horizon:"}}
      - {{layout: bullmq, queues: [mail], prefix: "{prefix}bull"}}
  - {{name: host, type: system}}
  - name: files
    type: files
    checks:
      pipeline: {{scripts_ready: {{directory: "{root}"}}}}
      queue: {{depth: {{const: 4}}, ready: {{const: 1}}, locked: {{const: 0}}}}
systems:
  - name: all
    sources: [redis, host, files]
    queues: [{{source: redis, queue: "*", tenant: "*"}}]
auth:
  tokens:
    - {{name: all, token: fuzz-all, roles: [viewer, super_admin, ops], tenants: [t1], permissions: ["*"]}}
shims:
  tenant: {{system: all, source: redis}}
  status: {{system: all}}
  service: {{system: all, services: {{redis: redis}}, resources: host, pipeline: {{source: files, path: pipeline}}}}
  platform: {{system: all, rate_limit: {{requests: 100000, per: 1s}}}}
  ops: {{system: all, queue: {{source: files, path: queue}}}}
"""


class Live:
    """The real app with a real scheduler on a free port, served from a thread of its own."""

    def __init__(self, text: str) -> None:
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.config = parse_config(text, "<test>", {})
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self.ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        self.scheduler = build_scheduler(self.config)
        await self.scheduler.collect_once()
        self.runner = web.AppRunner(build_app(self.config, self.scheduler, run_scheduler=False))
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        await self.runner.cleanup()
        await self.scheduler.stop()

    def __enter__(self) -> str:
        self.thread.start()
        assert self.ready.wait(20)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import redis

    prefix = "jqtest:openapi:"
    client = redis.Redis(decode_responses=True)
    client.rpush(f"{prefix}t1:events", json.dumps({"ts": 1}))
    client.rpush(f"{prefix}bull:mail:wait", "1")
    client.hset(f"{prefix}bull:mail:1", mapping={"data": "{}", "timestamp": 1000})
    try:
        with Live(config(prefix, tmp_path_factory.mktemp("files"))) as url:
            yield url
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


def test_checked_in_document_is_current() -> None:
    assert CHECKED_IN.read_text() == rendered(), "run: python -m exporter.web.openapi > exporter/web/openapi.json"


def test_document_is_valid_openapi_31() -> None:
    openapi_spec_validator.validate(document())


def test_every_served_get_path_is_documented(tmp_path: Path) -> None:
    conf = parse_config(config("jqtest:x:", tmp_path), "<test>", {})
    app = build_app(conf, build_scheduler(conf), run_scheduler=False)
    served = {r.get_info().get("path") or r.get_info().get("formatter") for r in app.router.resources()}
    assert served == set(document()["paths"])


def test_served_document(live: str) -> None:
    import urllib.request

    with urllib.request.urlopen(f"{live}/openapi.json") as answer:
        assert json.load(answer) == document()


def no_undocumented_5xx(ctx: Any, response: Any, case: Any) -> bool:
    """Only the 503s the document lists for the operation are allowed."""
    if response.status_code >= 500:
        documented = case.operation.definition.raw.get("responses", {})
        assert response.status_code == 503 and "503" in documented, f"undocumented {response.status_code}"
    return True


CHECKS = [no_undocumented_5xx, status_code_conformance, content_type_conformance, response_schema_conformance]
schema = schemathesis.openapi.from_dict(document())


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzz_authenticated(case: Any, live: str) -> None:
    case.call_and_validate(base_url=live, headers=ALL, checks=CHECKS)


@schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzz_anonymous(case: Any, live: str) -> None:
    case.call_and_validate(base_url=live, checks=CHECKS)
