"""A daemon pays only for what it runs: backend clients of unconfigured types are never imported, and
pools start their threads when work arrives (bench/bench_idle.py measures the idle cost)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from exporter.pools import LOOKUP_TIMEOUT, Resolver

ROOT = Path(__file__).resolve().parents[2]


def imported_after(code: str) -> set[str]:
    """The top-level packages a fresh interpreter holds after running `code`."""
    probe = code + "\nimport sys\nprint(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_a_redis_only_daemon_never_imports_asyncpg_or_nats() -> None:
    found = imported_after(
        "import exporter.cli\n"
        "from exporter.config import parse_config\n"
        "config = parse_config('sources: [{name: r, type: redis, queues: [{layout: list, name: q, key: q}]}]',\n"
        "                      'c', {})\n"
        "scheduler = exporter.cli.build_scheduler(config)\n"
        "scheduler.exposition.body('text')\n")
    assert "hiredis" in found and "exporter" in found  # the lean connection's parser
    assert not found & {"asyncpg", "nats", "redis"}  # redis-py: only Sentinel, Cluster, Celery events, doctor


def test_the_config_models_and_the_type_table_import_no_postgres_or_nats_client() -> None:
    found = imported_after("import exporter.config, exporter.sources\nexporter.config.default_config()")
    assert not found & {"asyncpg", "nats"}


def test_a_source_type_is_imported_when_a_source_of_it_is_built() -> None:
    found = imported_after(
        "import exporter.cli\n"
        "from exporter.config import parse_config\n"
        "config = parse_config('sources: [{name: p, type: postgres, dsn: \"postgresql://u@127.0.0.1/test\"}]',\n"
        "                      'c', {})\n"
        "exporter.cli.build_scheduler(config)\n")
    assert "asyncpg" in found and "nats" not in found


HEAVY = {"redis", "asyncpg", "nats", "bcrypt", "cryptography"}  # clients and libraries of optional features
DEFAULT_DAEMON = (
    "import asyncio, sys\n"
    "import pydantic_core\n"
    "import exporter.cli\n"
    "from exporter.config import default_config\n"
    "from exporter.web.app import build_app\n"
    "config = default_config()\n"
    "scheduler = exporter.cli.build_scheduler(config)\n"
    "build_app(config, scheduler)\n"
    "async def once():\n"
    "    try:\n"
    "        await scheduler.collect_once()\n"
    "    finally:\n"
    "        await scheduler.stop()\n"
    "asyncio.run(once())\n"
    "assert scheduler.snapshot.sources['redis'].status.up, scheduler.snapshot.sources['redis'].status\n"
    "own = sorted(m for m in sys.modules if m.startswith(('exporter.sources.', 'exporter.web.', 'exporter.health.')))\n"
    "from exporter.sources import SOURCE_TYPES\n"
    "from exporter.web.shims import ShimsConfig\n"
    "built = [t for t, k in SOURCE_TYPES.items()\n"
    "         if isinstance(k.config_model.__pydantic_validator__, pydantic_core.SchemaValidator)]\n"
    "from exporter.sources.base import load\n"
    "from exporter.sources.redis.layouts import LAYOUTS\n"
    "built += [c.__name__ for c in map(load, LAYOUTS.values())\n"
    "          if isinstance(c.__pydantic_validator__, pydantic_core.SchemaValidator)]\n"
    "print('validators:' + ','.join(built)\n"
    "      + (',shims' if isinstance(ShimsConfig.__pydantic_validator__, pydantic_core.SchemaValidator) else ''))\n"
)


def test_the_default_daemon_loads_no_client_or_validator_it_does_not_use() -> None:
    """The embedded default config (host + one Redis queue, on the local Redis), its app built and every
    source collected once: no redis-py (the single-node path reads through the lean wire), no other
    backend client, no bcrypt (basic auth only), only the config validators of the types and layouts in
    use (each union member validates with its own model: sources/base.py `OwnValidators`), and of the
    exporter's own source modules only those of the types and layouts in use, and no shim's module (the
    tables name the others)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    probe = DEFAULT_DAEMON + ("print('modules:' + ' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
                              "print('own:' + ' '.join(own))\n")
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(":", 1) for line in done.stdout.splitlines() if ":" in line)
    found = set(lines["modules"].split())
    assert "hiredis" in found and "aiohttp" in found
    assert not found & HEAVY
    assert sorted(lines["validators"].split(",")) == ["LaravelLayout", "redis", "system"]
    own = set(lines["own"].split())  # the exporter's own modules of other types and layouts: never imported
    assert {"exporter.sources.redis.layouts.laravel", "exporter.sources.system"} <= own
    assert not {m for m in own if m.split(".")[2] in {"postgres", "nats", "files", "http"}}
    assert {m for m in own if m.startswith("exporter.sources.redis.layouts.")} == {
        "exporter.sources.redis.layouts.base", "exporter.sources.redis.layouts.laravel"}
    assert {m for m in own if m.startswith("exporter.web.shims.")} == {"exporter.web.shims.base"}  # no shim
    assert "exporter.health.alertmanager" not in own and "exporter.web.app" in own


def test_a_request_to_a_shim_the_config_does_not_name_is_a_404_that_imports_nothing() -> None:
    """Every shim's paths are mounted (a reload may switch one on: tests/integration/test_reload.py), but
    a client probing `/health` on a daemon without shims gets the shim's 404 without its module."""
    probe = (
        "import asyncio, sys\n"
        "from aiohttp.test_utils import TestClient, TestServer\n"
        "from exporter.config import parse_config\n"
        "from exporter.cli import build_scheduler\n"
        "from exporter.web.app import build_app\n"
        "config = parse_config('sources: [{name: h, type: system}]', 'c', {})\n"
        "app = build_app(config, build_scheduler(config), run_scheduler=False)\n"
        "async def probe():\n"
        "    async with TestClient(TestServer(app)) as client:\n"
        "        for path in ('/health', '/api/v1/health', '/api/v1/platform/system/queues/q/jobs'):\n"
        "            assert (await client.get(path)).status == 404, path\n"
        "asyncio.run(probe())\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('exporter.web.shims.'))))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["exporter.web.shims.base"]


@pytest.mark.parametrize(("source", "client"), [
    ("{name: r, type: redis, sentinel: {master_name: m, urls: ['redis://127.0.0.1:1']}, "
     "queues: [{layout: list, name: q, key: q}]}", "redis"),  # redis-py brings cryptography (redis.utils)
    ("{name: r, type: redis, cluster: true, queues: [{layout: list, name: q, key: q}]}", "redis"),
    ("{name: n, type: nats, url: 'nats://127.0.0.1:1'}", "nats"),
])
def test_a_feature_that_needs_a_client_imports_it_when_configured(source: str, client: str) -> None:
    found = imported_after(
        "import exporter.cli\n"
        "from exporter.config import parse_config\n"
        f"config = parse_config(\"sources: [{source}]\", 'c', {{}})\n"
        "exporter.cli.build_scheduler(config)\n")
    assert client in found
    assert not found & HEAVY - {client, "cryptography" if client == "redis" else client}


def test_bcrypt_is_imported_by_the_first_basic_auth_check(tmp_path: Path) -> None:
    import bcrypt

    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users: {{alice: {bcrypt.hashpw(b'pw', bcrypt.gensalt(4)).decode()}}}\n")
    code = ("import asyncio, sys\n"
            "from exporter.web.webconfig import LiveWebConfig\n"
            f"live = LiveWebConfig({str(web)!r})\n"
            "assert 'bcrypt' not in sys.modules\n"
            "assert asyncio.run(live.allowed('Basic YWxpY2U6cHc='))\n")  # alice:pw
    assert "bcrypt" in imported_after(code)


def test_the_resolver_starts_threads_only_for_work() -> None:
    """No idle lookup thread at all: one thread per lookup in flight, gone when it returns (issue 20
    item 2 replaced the pool of 16 with this); an address never starts one."""
    before = threading.active_count()
    release = threading.Event()

    def lookup(host: str, *args: Any) -> list[Any]:
        if host.startswith("stuck"):
            release.wait(10)
        return [host]

    resolver = Resolver(lookup)
    assert threading.active_count() == before

    async def ask() -> None:
        LOOKUP_TIMEOUT.set(0.2)
        for name in ("stuck-1.example", "stuck-2.example"):
            with pytest.raises(OSError):
                await resolver.getaddrinfo(name, 80)
        assert await resolver.getaddrinfo("fine.example", 80) == ["fine.example"]  # not behind the stuck two
        assert len(await resolver.getaddrinfo("127.0.0.1", 80)) >= 1

    asyncio.run(ask())
    assert threading.active_count() <= before + 3
    release.set()
