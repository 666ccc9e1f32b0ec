"""Shared fixtures: real backends on loopback, isolated per test, cleaned up afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import psutil
import pytest
import redis
import redis.asyncio

from exporter.config import ExporterConfig, parse_config
from exporter.metrics import TEXT
from exporter.scheduler import Scheduler
from tests.support.servers import RedisServer

REDIS_URL = "redis://127.0.0.1:6379/0"
PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>


def pytest_configure(config: pytest.Config) -> None:
    """Make pytest the parent of any orphan the tests leave (a server that daemonized, the child of a
    killed wrapper): Linux re-parents those to the nearest "subreaper" instead of init, so the check
    at the end of the session sees them."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


@pytest.hookimpl(trylast=True)  # after the session's fixtures are torn down (the runner's own sessionfinish)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Tests leave no process behind: one still running now fails the run, and is killed."""
    children = psutil.Process().children(recursive=True)
    _, alive = psutil.wait_procs(children, timeout=3)  # reaps the ones that ended (zombies)
    left = []
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            left.append(f"pid {proc.pid}: {' '.join(proc.cmdline())[:200]}")
            proc.kill()
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"processes the tests started are still running ({len(left)}), killed now:",
                                red=True)
            for line in left:
                reporter.write_line(f"  {line}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    with contextlib.suppress(ChildProcessError):  # reap what was just killed
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test uses."""
    return f"jqtest:{uuid.uuid4().hex[:10]}:"


@pytest.fixture
def redis_client(prefix: str) -> Iterator[redis.Redis]:
    """A client to the shared Redis; every key under the test's prefix is deleted afterwards."""
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own on a free port, stopped afterwards."""
    server = RedisServer(tmp_path).start()
    yield server
    server.resume() if server.proc else None
    server.stop()


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write YAML text to a file in the test's directory and return its path."""

    def write(text: str, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def config_from(text: str, env: dict[str, str] | None = None) -> ExporterConfig:
    return parse_config(text, "<test>", env or {})


@pytest.fixture
async def make_scheduler() -> AsyncIterator[Callable[[str], Scheduler]]:
    """Build a scheduler from YAML text; its sources are closed afterwards."""
    from exporter.cli import build_scheduler

    made: list[Scheduler] = []

    def make(text: str, env: dict[str, str] | None = None) -> Scheduler:
        scheduler = build_scheduler(config_from(text, env))
        made.append(scheduler)
        return scheduler

    yield make
    for scheduler in made:
        await scheduler.stop()


def samples(scheduler: Scheduler) -> dict[str, float]:
    """The current exposition as {'name{labels}': value}, for exact assertions."""
    out: dict[str, float] = {}
    for line in scheduler.exposition.body(TEXT).decode().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


async def until(scheduler: Scheduler, check: Callable[[dict[str, float]], bool],
                seconds: float = 20) -> dict[str, float]:
    """Poll the exposition until `check` holds (bounded), for tests where collections run on their own."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        values = samples(scheduler)
        if check(values):
            return values
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not reached; last exposition: {samples(scheduler)}")
