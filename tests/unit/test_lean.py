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
    assert "redis" in found and "exporter" in found
    assert not found & {"asyncpg", "nats"}


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
