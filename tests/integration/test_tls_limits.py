"""The connection limits on a TLS listener, counted from accept (exporter/web/limits.py `GuardedSite`):
the real guarded runner and a real TLS context on a free port, with a cap of 3 and a header timeout
of 1 s so that each rule shows in a second. Asserted on the runner's own counters and on what the
clients see: silent connections count and are evicted first, a TLS request is answered past them,
the handshake shares the header timeout, a newcomer is closed without a handshake when every
connection is busy, a plain TCPSite with TLS is refused, and cleanup closes handshakes in progress."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from exporter.web.limits import GuardedAppRunner, GuardedSite, Limits
from tests.support.pki import CA
from tests.support.servers import free_port


@dataclass
class Served:
    port: int
    limits: Limits
    client: ssl.SSLContext
    release: asyncio.Event
    all_busy: asyncio.Event  # set when the cap's worth of /slow requests are in progress
    runner: GuardedAppRunner


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    """/fast answers at once, /slow waits for `release`; TLS with a certificate of a throwaway CA."""
    ca = CA(tmp_path)
    issued = ca.issue("server")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(issued.cert, issued.key)
    release, all_busy, in_progress = asyncio.Event(), asyncio.Event(), [0]

    async def fast(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def slow(request: web.Request) -> web.Response:
        in_progress[0] += 1
        if in_progress[0] == 3:
            all_busy.set()
        await release.wait()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/fast", fast)
    app.router.add_get("/slow", slow)
    limits = Limits(max_connections=3, header_timeout=1.0, log_every=0.0)
    runner = GuardedAppRunner(app, limits, access_log=None)
    await runner.setup()
    port = free_port()
    await GuardedSite(runner, "127.0.0.1", port, ssl_context=context).start()
    try:
        yield Served(port, limits, ssl.create_default_context(cafile=str(ca.path)), release, all_busy, runner)
    finally:
        release.set()
        await runner.cleanup()


async def request(served: Served, path: str) -> bytes:
    """One HTTPS GET on a new connection; the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port, ssl=served.client)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            await writer.wait_closed()


async def silent(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await asyncio.sleep(0.05)  # accepted by the server
    return reader, writer


async def closed(reader: asyncio.StreamReader, within: float) -> bool:
    """True when the server closes this connection within `within` seconds."""
    try:
        async with asyncio.timeout(within):
            return await reader.read() == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


async def test_silent_connections_count_and_make_room_for_a_tls_request(served: Served) -> None:
    conns = [await silent(served.port) for _ in range(3)]
    assert served.limits.open == 3  # counted from accept, before any handshake
    assert all(h.handshaking for h in served.limits.conns)
    answer = await request(served, "/fast")
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b'{"ok": true}')
    assert served.limits.rejected == {"idle_evicted": 1}
    assert await closed(conns[0][0], 1.0)  # the least recently active one made room
    # the others end with the header timeout (1 s from their accept), handshake never started
    assert all([await closed(reader, 2.0) for reader, _ in conns[1:]])
    await asyncio.sleep(0.05)
    assert served.limits.open == 0 and served.limits.rejected["header_timeout"] == 2
    for _, writer in conns:
        writer.close()


async def test_a_handshake_that_stalls_midway_shares_the_header_timeout(served: Served) -> None:
    reader, writer = await silent(served.port)
    # a ClientHello's first bytes and no more: activity, but neither a handshake nor a request head
    writer.write(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    assert not await closed(reader, 0.5)
    assert await closed(reader, 1.5)
    writer.close()
    await asyncio.sleep(0.05)
    assert served.limits.open == 0 and served.limits.rejected == {"header_timeout": 1}


async def test_when_every_connection_is_busy_a_tls_newcomer_is_closed_without_a_handshake(served: Served) -> None:
    busy = [asyncio.create_task(request(served, "/slow")) for _ in range(3)]
    async with asyncio.timeout(10):
        await served.all_busy.wait()
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await request(served, "/fast")
    assert served.limits.rejected == {"connections": 1}
    served.release.set()
    assert all(a.startswith(b"HTTP/1.1 200") for a in await asyncio.gather(*busy))


async def test_cleanup_closes_connections_in_their_handshake(served: Served) -> None:
    reader, writer = await silent(served.port)
    await served.runner.cleanup()
    assert await closed(reader, 0.5)
    assert served.limits.open == 0
    writer.close()


async def test_a_plain_tcp_site_with_tls_is_refused(served: Served) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with pytest.raises(TypeError, match="GuardedSite"):
        await web.TCPSite(served.runner, "127.0.0.1", free_port(), ssl_context=context).start()
