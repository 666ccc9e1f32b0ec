"""Serving the real app (real scheduler, real backends) to an aiohttp test client, and checking
answers against the OpenAPI document."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from jsonschema import Draft202012Validator

from exporter.cli import build_scheduler
from exporter.config import parse_config
from exporter.scheduler import Scheduler
from exporter.web.app import build_app
from exporter.web.openapi import document


def listing_config(url: str, key: str, platform: str = "{system: s}") -> str:
    """A config whose platform shim lists the jobs of one Redis list, `key`, as queue `jobs` (token
    `${OPS_TOKEN}`, role ops); `platform` is the shim's own block (e.g. a longer `jobs_timeout`)."""
    return f"""
sources:
  - name: redis
    type: redis
    url: {url}
    queues:
      - {{layout: list, name: jobs, key: "{key}"}}
systems:
  - {{name: s, sources: [redis], queues: [{{source: redis, queue: jobs}}]}}
auth:
  tokens:
    - {{name: ops, token: "${{OPS_TOKEN}}", roles: [ops]}}
shims:
  platform: {platform}
"""


@asynccontextmanager
async def serve(text: str, env: dict[str, str] | None = None) -> AsyncIterator[tuple[TestClient, Scheduler]]:
    """The app of a YAML config, its scheduler collected once; sources closed afterwards."""
    config = parse_config(text, "<test>", env or {})
    scheduler = build_scheduler(config)
    app = build_app(config, scheduler, run_scheduler=False)
    try:
        await scheduler.collect_once()
        async with TestClient(TestServer(app)) as client:
            yield client, scheduler
    finally:
        await scheduler.stop()


def conforms(path: str, status: int, body: Any) -> None:
    """Raise unless `body` is what the OpenAPI document says `path` answers with `status`."""
    doc = document()
    answer = doc["paths"][path]["get"]["responses"][str(status)]
    schema = answer["content"]["application/json"]["schema"]
    Draft202012Validator({**schema, "components": doc["components"]}).validate(body)


async def get(client: TestClient, url: str, path: str | None = None, **headers: str) -> tuple[int, Any]:
    """GET url with headers (underscores become dashes); the JSON body, checked against the document."""
    response = await client.get(url, headers={k.replace("_", "-"): v for k, v in headers.items()})
    body = await response.json()
    conforms(path or url.split("?")[0], response.status, body)
    return response.status, body
