"""The HTTP server under hostile clients (issue 15, items 1 and 4), over raw sockets against the real
server: malformed requests carrying a token get a JSON 400 that echoes nothing and leave nothing of
the token in the log; slow and silent connections are closed; past the connection cap a client gets a
JSON 503; shims are shed before /metrics is."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from exporter.cli import build_scheduler
from exporter.config import parse_config
from exporter.log import TextFormatter
from exporter.web.app import build_app
from exporter.web.keys import LIMITS
from exporter.web.limits import GuardedAppRunner, Limits
from tests.support.servers import free_port

TOKEN = "tok-7f3a9c1e5b2d4680"
CONFIG = """
sources:
  - {name: host, type: system}
auth:
  tokens:
    - {name: ops, token: "${OPS_TOKEN}", roles: [ops]}
"""


@dataclass
class Served:
    port: int
    limits: Limits
    log: list[str]


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(TextFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    """The real app behind the real (guarded) runner on a free port, every log line captured."""
    config = parse_config(CONFIG, "<test>", {"OPS_TOKEN": TOKEN})
    scheduler = build_scheduler(config)
    app = build_app(config, scheduler, run_scheduler=False)
    limits = app[LIMITS]
    limits.header_timeout, limits.max_connections, limits.log_every = 0.5, 20, 0.0
    capture = Capture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    runner = GuardedAppRunner(app, limits, access_log=None)
    await runner.setup()
    port = free_port()
    from aiohttp import web

    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield Served(port, limits, capture.lines)
    finally:
        await runner.cleanup()
        await scheduler.stop()
        root.removeHandler(capture)
        root.setLevel(old_level)


async def exchange(port: int, raw: bytes, wait: float = 5.0) -> bytes:
    """Send raw bytes, read until the server closes (or `wait` seconds pass)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    chunks = []
    try:
        async with asyncio.timeout(wait):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
    finally:
        writer.close()
    return b"".join(chunks)


def split(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


MALFORMED = [
    b"GET /api/health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\r\n\r\n",
    b"GET /api/health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode() + b"\x00\r\n\r\n",
    b"GET /api/health HTTP/1.1\r\nHost: x\r\nAuthori zation: Bearer " + TOKEN.encode() + b"\r\n\r\n",
    b"GET /" + TOKEN.encode() + b" HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET /api/health?t=" + TOKEN.encode() + b"\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Token: " + TOKEN.encode() * 1000 + b"\r\n\r\n",
    b"GET /api/health HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\nAuthorization: Bearer " + TOKEN.encode()
    + b"\r\n\r\n",
]


async def test_malformed_requests_get_json_and_leave_no_token_anywhere(served: Served) -> None:
    for raw in MALFORMED:
        answer = await exchange(served.port, raw)
        status, headers, body = split(answer)
        assert status in (400, 413, 431), answer[:200]
        assert headers["content-type"].startswith("application/json")
        assert json.loads(body)["error"] in ("bad_request", "request_entity_too_large",
                                             "request_header_fields_too_large")
        assert TOKEN.encode() not in answer
    text = "\n".join(served.log)
    assert TOKEN not in text and "Traceback" not in text
    assert sum(served.limits.rejected.values()) >= len(MALFORMED)
    assert any("requests refused" in line for line in served.log)
    # and a well-formed request with the token still works
    answer = await exchange(served.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert split(answer)[0] == 200


async def test_slow_and_silent_connections_are_closed(served: Served) -> None:
    # slowloris: a request head that never ends; the server closes it after header_timeout (0.5 s here)
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
    async with asyncio.timeout(5):
        for _ in range(20):
            writer.write(b"X-a: b\r\n")
            await asyncio.sleep(0.05)
            if reader.at_eof():
                break
        assert await reader.read() == b""
    writer.close()
    # a connection that never says anything
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    async with asyncio.timeout(5):
        assert await reader.read() == b""
    writer.close()
    assert served.limits.rejected["header_timeout"] == 2


async def test_at_the_connection_cap_an_idle_connection_makes_room(served: Served) -> None:
    """Issue 20 item 5: idle connections never take /metrics's place; the least recently active goes."""
    held = [await asyncio.open_connection("127.0.0.1", served.port) for _ in range(served.limits.max_connections)]
    try:
        scrape = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        status, _, _ = split(await exchange(served.port, scrape))
        assert status == 200
        assert served.limits.rejected["idle_evicted"] == 1
        async with asyncio.timeout(5):
            assert await held[0][0].read() == b""  # the oldest idle one was closed
    finally:
        for _, writer in held:
            writer.close()
    await asyncio.sleep(0.2)
    answer = await exchange(served.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert split(answer)[0] == 200


async def test_shims_are_shed_before_metrics(served: Served) -> None:
    served.limits.max_inflight = 0
    get = b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n\r\n"
    status, _, body = split(await exchange(served.port, get % b"/api/health"))
    assert (status, json.loads(body)) == (503, {"error": "service_unavailable"})
    assert split(await exchange(served.port, get % b"/metrics"))[0] == 200
    assert split(await exchange(served.port, get % b"/healthz"))[0] == 200
