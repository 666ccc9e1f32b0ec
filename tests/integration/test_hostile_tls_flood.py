"""TCP connections that never start a TLS handshake (review: asyncio's TLS server handed a connection
to the exporter only after its handshake, and gave the handshake 60 s): they escaped the connection
cap and the header timeout, so a flood of them used up the file descriptors and a healthy exporter
missed scrapes. A real daemon serving TLS on `listen` and `scrape_listen`, started with an open-file
limit of 400 (soft and hard, so the process-wide connection budget is 400 - 128 - 2 x 64 = 144), gets
400 silent connections on one listener at a time. Asserted: TLS scrapes there are answered 200 (at the
cap the least recently active idle connection, here a silent one, makes room, as on a plain listener),
and every silent connection is closed within the header timeout (10 s) of its accept, plus slack for a
loaded machine."""

from __future__ import annotations

import asyncio
import contextlib
import re
import resource
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

from exporter.web.limits import reserved_files
from tests.support.pki import CA
from tests.support.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
FD_LIMIT = 400
SILENT = 400
HEADER_TIMEOUT = 10.0  # Limits.header_timeout: the bound of a handshake and a request head together
SLACK = 5.0


def fd_limit() -> None:
    """In the child, before exec: soft and hard 400, so raising the soft limit at start changes nothing."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


async def scrape(port: int, context: ssl.SSLContext) -> int:
    """One HTTPS GET /metrics on a new connection; its status."""
    async with asyncio.timeout(30):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
        try:
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            head = await reader.readline()
            await reader.read()
            return int(head.split()[1])
        finally:
            writer.close()


async def closed_after(opened: float, reader: asyncio.StreamReader) -> float:
    """Seconds from `opened` until the daemon closed this silent connection (EOF or reset)."""
    with contextlib.suppress(ConnectionResetError, ConnectionAbortedError):
        await reader.read()
    return time.monotonic() - opened


async def flood_and_scrape(port: int, context: ssl.SSLContext) -> tuple[list[int], list[float]]:
    """Open SILENT connections that send nothing, scrape five times over TLS, then wait (bounded) for
    every silent connection to be closed; (scrape statuses, seconds each silent one stayed open)."""
    writers: list[asyncio.StreamWriter] = []
    watching: list[asyncio.Task[float]] = []  # each watches its connection from the moment it opened
    try:
        for _ in range(SILENT):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writers.append(writer)
            watching.append(asyncio.create_task(closed_after(time.monotonic(), reader)))
        statuses = [await scrape(port, context) for _ in range(5)]
        async with asyncio.timeout(HEADER_TIMEOUT + 3 * SLACK):  # a connection left open fails here
            lifetimes = await asyncio.gather(*watching)
    finally:
        for task in watching:
            task.cancel()
        for writer in writers:
            writer.close()
    return statuses, lifetimes


async def test_silent_connections_on_tls_listeners_are_counted_and_closed(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < SILENT + 200:  # this test's own side of the connections
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, SILENT + 1000), hard))
    ca = CA(tmp_path)
    server = ca.issue("server")
    (tmp_path / "web.yml").write_text(f"tls_server_config:\n  cert_file: {server.cert}\n  key_file: {server.key}\n")
    main, scrape_port = free_port(), free_port()
    (tmp_path / "config.yaml").write_text(
        f"listen: 127.0.0.1:{main}\nscrape_listen: 127.0.0.1:{scrape_port}\n"
        "sources:\n  - {name: host, type: system, interval: 1s, timeout: 1s}\n")
    log = tmp_path / "exporter.log"
    context = ssl.create_default_context(cafile=str(ca.path))
    with log.open("wb") as out:
        daemon = subprocess.Popen(  # noqa: ASYNC220 - started once, stopped in finally
            [sys.executable, "-m", "exporter", "--config", str(tmp_path / "config.yaml"),
             "--web.config.file", str(tmp_path / "web.yml")],
            cwd=ROOT, preexec_fn=fd_limit, stdout=out, stderr=subprocess.STDOUT)
        try:
            await asyncio.to_thread(wait_for_port, main, 30.0)
            await asyncio.to_thread(wait_for_port, scrape_port, 10.0)
            results = {port: await flood_and_scrape(port, context) for port in (main, scrape_port)}
            assert daemon.poll() is None
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(daemon.wait, 30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                await asyncio.to_thread(daemon.wait, 10)
    text = log.read_text()
    budget = FD_LIMIT - reserved_files(2)
    assert re.search(rf"soft_limit={FD_LIMIT} hard_limit={FD_LIMIT} max_connections={budget}\b", text), text
    for statuses, lifetimes in results.values():
        assert statuses == [200] * 5
        assert len(lifetimes) == SILENT
        assert max(lifetimes) <= HEADER_TIMEOUT + SLACK, sorted(lifetimes)[-5:]
