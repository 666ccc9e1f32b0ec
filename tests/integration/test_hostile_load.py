"""Collection isolated from serving and from slow I/O (issue 15, item 1), reproduced as found:
three sources whose host names hang in DNS (an injected resolver that never answers), and 2,000
concurrent HTTP connections from a bounded load generator, while a healthy source's backend answers
normally. The healthy source never reads `up 0` and keeps collecting; /metrics keeps answering.
Figures (p99, intervals) are in bench/bench_hostile.py; here only generous bounds so nothing hangs."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from exporter.cli import build_scheduler
from exporter.config import parse_config
from exporter.metrics import TEXT
from exporter.model import Snapshot
from exporter.pools import Resolver
from exporter.web.app import build_app
from exporter.web.keys import LIMITS
from exporter.web.limits import GuardedAppRunner
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


def watch(snapshots: list[tuple[str, bool, int, str | None]]) -> Any:
    """A listener recording (source, up, collections, error) of every collected source state."""
    def listener(snapshot: Snapshot) -> None:
        for name, state in snapshot.sources.items():
            if state.status.collections:
                snapshots.append((name, state.status.up, state.status.collections, state.status.error))
    return listener


async def test_three_sources_hung_in_dns_hold_back_nobody() -> None:
    release = threading.Event()
    asked: list[str] = []

    def lookup(host: str, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> Any:
        asked.append(host)
        if host.startswith("hung"):
            release.wait(60)  # a DNS server that never answers
            raise socket.gaierror(socket.EAI_AGAIN, "never answered")
        return socket.getaddrinfo(host, port, family, type, proto, flags)

    hung = """
  - {name: hung0, type: redis, url: "redis://hung-0.example:6379/0", interval: 0.3s, timeout: 0.25s,
     queues: [{layout: laravel, queues: [default]}]}
  - {name: hung1, type: postgres, dsn: "postgresql://u@hung-1.example:5432/db", interval: 0.3s, timeout: 0.25s,
     queues: [{preset: generic, table: jobs, waiting: [new]}]}
  - {name: hung2, type: nats, url: "nats://hung-2.example:4222", interval: 0.3s, timeout: 0.25s}"""
    config = parse_config(f"""
sources:
  - {{name: healthy, type: redis, url: "redis://localhost:6379/0", interval: 0.3s, timeout: 0.25s,
     queues: [{{layout: laravel, prefix: "jqtest:dns:", queues: [default]}}]}}{hung}
""", "<test>", {})
    scheduler = build_scheduler(config)
    scheduler.resolver = Resolver(lookup)
    seen: list[tuple[str, bool, int, str | None]] = []
    scheduler.listeners.append(watch(seen))
    scheduler.start(threaded=True)
    scrapes = 0
    try:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            async with asyncio.timeout(2):  # generous: a scrape that waits on DNS would hang here
                await scheduler.exposition.body_async(TEXT, gzipped=scrapes % 2 == 1)
            scrapes += 1
            await asyncio.sleep(0.05)
    finally:
        await scheduler.stop()
        release.set()
    healthy = [s for s in seen if s[0] == "healthy"]
    assert healthy and all(up for _, up, _, _ in healthy), [s for s in healthy if not s[1]][:3]
    assert max(n for _, _, n, _ in healthy) >= 5  # ~10 expected at 0.3 s in 3 s; never stalled
    for i in range(2):  # redis and postgres say why; nats-py reports "no servers available" for any cause
        last = [s for s in seen if s[0] == f"hung{i}"][-1]
        assert last[1] is False
        assert f"name lookup of 'hung-{i}.example' took over 0.2s" in (last[3] or ""), last
    kinds = {name: state.status.error_kind for name, state in scheduler.snapshot.sources.items()}
    assert kinds == {"healthy": None, "hung0": "dns", "hung1": "dns", "hung2": "dns"}  # issue 20 item 2: its own kind
    assert asked.count("hung-0.example") <= 3  # one lookup in flight per name, not one per cycle


async def test_two_thousand_connections_do_not_mark_a_healthy_source_down() -> None:
    config = parse_config("""
sources:
  - {name: healthy, type: redis, url: "redis://127.0.0.1:6379/0", interval: 2s, timeout: 2s,
     queues: [{layout: laravel, prefix: "jqtest:load:", queues: [default]}]}
""", "<test>", {})
    # 2 s: measured under this flood on the loaded 2-core machine, a collection on its own loop took
    # 2-73 ms, one on the serving loop (the defect this test guards) 2.7-2.9 s; 0.5 s was exceeded by
    # machine load alone, and 1.5 s once with four of these floods at a time.
    scheduler = build_scheduler(config)
    seen: list[tuple[str, bool, int, str | None]] = []
    scheduler.listeners.append(watch(seen))
    app = build_app(config, scheduler)  # runs the scheduler (threaded) with the app
    runner = GuardedAppRunner(app, app[LIMITS], access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "bench" / "loadgen.py"), str(port), "--connections", "2000", "--seconds", "8",
            stdout=subprocess.PIPE, cwd=ROOT)
        async with asyncio.timeout(120):  # the connections' opening, 8 s of requests, the drain
            out, _ = await proc.communicate()
    finally:
        await runner.cleanup()
    summary = json.loads(out)
    assert summary["status"].get("200", 0) > 2000, summary  # the load was real: every connection answered
    healthy = [s for s in seen if s[0] == "healthy"]
    assert all(up for _, up, _, _ in healthy), [s for s in healthy if not s[1]][:3]
    assert max(n for _, _, n, _ in healthy) >= 4  # ~5 expected at 2 s over 8+ s of load; it kept collecting
