"""The web server's own limits: connections, header and idle timeouts, and what a malformed request gets.

aiohttp answers a request its parser rejects with a text/plain 400 that quotes the offending bytes, and
logs an 8 KB traceback with them at ERROR. A token sent with a stray CR or NUL went to the log and back
to the client that way. Here such a request gets `{"error": "bad_request"}` and nothing of it is echoed
or logged; the rejections are counted and logged as one line at most once a minute.

Serving order: `/metrics` and the probes are never shed; when more than `max_inflight` other requests
are in progress, the rest get a JSON 503 at once instead of queueing in front of the next scrape.
At the connection cap an idle connection (no request in progress; the least recently active first)
is closed to make room, so idle connections never take a scrape's place; only when every connection
is busy does a newcomer get the JSON 503. The soft open-file limit is raised to the hard one at start
(`raise_open_files`), as Go exporters do.

Budget: the daemon's listeners (`listen`, `scrape_listen`, `--health-listen`) and the sources' sockets
share one table of file descriptors, so the connections of all listeners together are bounded by one
`ConnectionBudget`: the soft open-file limit less `RESERVED_FDS` for the sources and less
`ACCEPT_ALLOWANCE` per listener for connections accepted but not yet counted (`reserved_files`). With a
cap per listener, floods on two listeners took the descriptors the sources need (a healthy source read
`up 0`) and accept() failed with EMFILE. Each listener takes its connections from its `Share` of the
budget: a small reserved part no other listener can take (so a flood on one never starves the probes or
the scrape listener) and the rest first come. At either bound, its own cap or the budget, a listener
evicts its own idle connection as above and hands its place straight to the newcomer (never free in
between, where another thread could take it); it never evicts another listener's (they run on other
loops; the reserved part is the rule).

TLS: a connection counts from accept, not from the end of its handshake. asyncio's own TLS server
hands a connection to its protocol only after the handshake (and gives the handshake 60 s), so TCP
connections that never sent a ClientHello were neither counted nor evicted, and a flood of them took
every file descriptor. Here the listening socket is plain (`GuardedSite`) and each guarded connection
wraps itself in TLS (`_Handshake`): the handshake and the request head share the header timeout, a
connection still in its handshake is idle (evicted first at the cap), and a TLS newcomer refused at
the cap (every connection busy) is closed without a handshake, since a 503 would need one first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import ssl
import sys
import threading
import time
from asyncio.sslproto import SSLProtocol
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Middleware
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server

log = logging.getLogger("jobqueue.web")

PRIORITY = frozenset({"/metrics", "/healthz", "/readyz"})
# Open files kept out of the connection budget for the sources, the log and files: the daemon itself holds
# about 20 with the example config's five sources and three listeners (its loops' selectors and wake-up
# pipes, the listeners, the log, one socket per Redis and NATS source, a PostgreSQL pool at rest); the rest
# is for what comes and goes: a PostgreSQL pool at its `pool_size` (at most 10), sentinels, cluster nodes,
# name lookups, HTTP checks, files read. Connections being accepted have an allowance of their own below.
RESERVED_FDS = 128
LISTENER_RESERVE = 64  # connections only `listen` (or only `scrape_listen`) may use
PROBE_RESERVE = 8  # only `--health-listen` may use: liveness, readiness and startup probes, a HEALTHCHECK
# connections asyncio accepts at once per listener, before the budget has seen any of them (GuardedSite)
ACCEPT_BATCH = 16
# Descriptors each listener holds past the budget under a flood, also kept out of it: a batch is counted
# two loop iterations after its accept and a refused or evicted connection closes one iteration later, so
# at most three batches (48) are open uncounted. Measured with the listeners flooded in parallel under a
# limit of 400: up to 42 per listener (two listeners: 84 and 79 past the budget, three: 91); four batches
# (64) leave half as much again.
ACCEPT_ALLOWANCE = 4 * ACCEPT_BATCH
# The smallest budget the daemon starts with: an eighth of it is the probes' whole reserve. Below it, each
# listener would have next to nothing (at 0 every connection, probes included, gets a 503).
MIN_BUDGET = 8 * PROBE_RESERVE


def reserved_files(listeners: int) -> int:
    """Open files kept out of the connection budget with `listeners` listeners: the sources' part and each
    listener's accept allowance (one listening socket each; a host name with two addresses would bind two)."""
    return RESERVED_FDS + listeners * ACCEPT_ALLOWANCE


class ConnectionBudget:
    """The connections of every listener of the process together, at most `total`.

    Thread-safe with one lock: the scrape listener admits and closes connections on its own thread, and
    `used += 1` on a shared int is a read, an add and a write that a thread switch can split. The lock is
    taken once per accept and once per close, never across an await, and nothing else is locked inside
    it, so it cannot deadlock; a take and a give cost about 1.2 µs together, next to an accept's syscalls.
    """

    def __init__(self, total: int) -> None:
        self.total = max(0, total)
        self._lock = threading.Lock()
        self._shares: list[Share] = []

    @classmethod
    def for_open_files(cls, listeners: int = 1) -> ConnectionBudget:
        """The soft open-file limit now less `reserved_files(listeners)` (call it after `raise_open_files`)."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        return cls(sys.maxsize if soft == resource.RLIM_INFINITY else soft - reserved_files(listeners))

    def share(self, name: str, reserve: int = 0) -> Share:
        """A listener's account. Its reserve is at most an eighth of the budget, so the reserves of the
        three listeners leave at least 5/8 of it first come, whatever the limit."""
        share = Share(self, name, max(0, min(reserve, self.total // 8)))
        with self._lock:
            self._shares.append(share)
        return share

    @property
    def used(self) -> int:
        with self._lock:
            return sum(s.used for s in self._shares)

    def describe(self) -> dict[str, int]:
        """What the start-up log says: the total and each listener's reserve."""
        with self._lock:
            return {"connection_budget": self.total, **{f"reserved_{s.name}": s.reserve for s in self._shares}}

    def _take(self, share: Share) -> bool:
        with self._lock:
            # every share's unused reserve stays free, so held + unused reserves <= total always holds,
            # and a share below its reserve can always take one more
            held = sum(s.used for s in self._shares)
            kept = sum(max(0, s.reserve - s.used) for s in self._shares if s is not share)
            if held + kept >= self.total:
                return False
            share.used += 1
            return True

    def _give(self, share: Share) -> None:
        with self._lock:
            share.used -= 1


@dataclass(eq=False)
class Share:
    """One listener's part of a `ConnectionBudget`; `used` changes only under the budget's lock."""

    budget: ConnectionBudget
    name: str
    reserve: int
    used: int = 0

    def take(self) -> bool:
        """One more connection, if the budget has room for it; False when it has not."""
        return self.budget._take(self)

    def give(self) -> None:
        """A connection taken with `take` has closed (or been evicted)."""
        self.budget._give(self)


@dataclass
class Limits:
    """Knobs and counters shared by every connection of one server."""

    max_connections: int = 4096  # and never more than the open-file limit leaves room for
    header_timeout: float = 10.0  # first byte of a request head to its end (slowloris)
    idle_timeout: float = 30.0  # keep-alive connection with no request
    max_inflight: int = 64  # concurrent requests other than PRIORITY paths
    log_every: float = 60.0
    open: int = 0
    inflight: int = 0
    # open connections, least recently active first (a dict keeps order; re-inserting moves to the end)
    conns: dict[GuardedHandler, None] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    _logged_at: float = 0.0
    _unlogged: int = 0

    def reject(self, reason: str) -> None:
        """Count one refused request or connection; log a summary line at most every `log_every` s."""
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        self._unlogged += 1
        now = time.monotonic()
        if now - self._logged_at >= self.log_every:
            log.warning("requests refused", extra={"since_last": self._unlogged, **self.rejected})
            self._logged_at, self._unlogged = now, 0


def _json_body(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "error"
    return json.dumps({"error": phrase.lower().replace(" ", "_").replace("-", "_")}).encode()


class GuardedHandler(RequestHandler):
    """aiohttp's connection handler with a connection cap, a header timeout and quiet, JSON errors;
    with `tls`, it runs the TLS handshake itself, counted and bounded from accept."""

    def __init__(self, manager: Server, limits: Limits, share: Share, tls: ssl.SSLContext | None = None,
                 **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.limits = limits
        self.share = share
        self.tls = tls
        self._raw: asyncio.Transport | None = None  # the TCP connection under TLS (set from accept)
        self._head_timer: asyncio.TimerHandle | None = None
        self._counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if self._raw is not None:  # the handshake finished: the HTTP connection starts on the TLS transport
            super().connection_made(transport)
            return
        if not self._admit(transport):
            return
        if self.tls is None:
            super().connection_made(transport)
            self._arm()
            return
        self._raw = transport
        self._arm()  # the handshake and the request head share the header timeout
        handshake = _Handshake(self._loop, self, self.tls, None, server_side=True,
                               ssl_handshake_timeout=self.limits.header_timeout)
        transport.set_protocol(handshake)
        handshake.connection_made(transport)

    def _admit(self, transport: asyncio.Transport) -> bool:
        """Count this connection, evicting an idle one of this listener at its cap or at the process's
        budget; False when it was refused."""
        limits = self.limits
        if self._take():
            limits.open += 1
        else:
            idle = next((h for h in limits.conns if not h._request_in_progress), None)
            if idle is None:
                limits.reject("connections" if limits.open >= limits.max_connections else "connection_budget")
                if self.tls is None:  # under TLS a 503 would need a handshake first: the connection just closes
                    body = _json_body(503)
                    transport.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                transport.close()
                return False
            limits.reject("idle_evicted")
            idle._hand_over()  # its place, under the cap and in the budget, is this connection's now
        self._counted = True
        limits.conns[self] = None
        return True

    def _take(self) -> bool:
        """A place under this listener's cap and in the process's budget (taken when True)."""
        return self.limits.open < self.limits.max_connections and self.share.take()

    @property
    def handshaking(self) -> bool:
        """Accepted under TLS and the handshake not finished: aiohttp's server does not know it yet."""
        return self._raw is not None and self.transport is None

    def _uncount(self) -> None:
        if self._counted:
            self.limits.open -= 1
            self.limits.conns.pop(self, None)
            self.share.give()
            self._counted = False

    def _touch(self) -> None:
        """Most recently active last in the eviction order."""
        if self._counted:
            self.limits.conns.pop(self, None)
            self.limits.conns[self] = None

    def _drop(self) -> None:
        """Close the connection now, in its handshake too (no TLS transport yet: the TCP one).

        Aborted, not closed: close() waits for the write buffer to drain, so an idle connection whose
        client never reads the end of its last response kept its descriptor for good while its place
        in the budget went to another (review6: each eviction one descriptor more past the budget). The
        connection is idle or refused; losing that unread tail is its client's doing."""
        for transport in (self.transport, self._raw):
            if transport is not None:
                transport.abort()
        self.force_close()

    def _evict(self) -> None:
        """Close this idle connection now; its place counts as free at once."""
        self._uncount()
        self._drop()

    def _hand_over(self) -> None:
        """Close this idle connection now for a newcomer of the same listener, which keeps its place: the
        count never drops, so the scrape thread cannot take the place between an eviction and the
        newcomer's take (which left an idle connection closed and the newcomer refused); nor does this
        connection's `connection_lost` give it back later."""
        self.limits.conns.pop(self, None)
        self._counted = False
        self._drop()

    def _handshake_lost(self) -> None:
        """The TCP connection under TLS ended; before the handshake finished nobody else is told."""
        self._uncount()
        self._disarm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._uncount()
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._touch()
        if self._head_timer is None and not self._request_in_progress:
            self._arm()
        before = self._request_count
        super().data_received(data)
        if self._request_count != before:  # a whole request head arrived
            self._disarm()

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self._loop.call_later(self.limits.header_timeout, self._head_expired)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        if not self._request_in_progress:
            self.limits.reject("header_timeout")
            self._drop()

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """A JSON answer that echoes nothing; the request's bytes never reach the log."""
        if status == 500 and exc is not None and not isinstance(exc, HttpProcessingError):
            log.error("request crashed", exc_info=exc, extra={"path": request.rel_url.path})
        else:
            self.limits.reject(f"status_{status}")
        if request.writer.output_size > 0:
            raise ConnectionError("response already started")
        response = web.Response(status=status, body=_json_body(status), content_type="application/json")
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp's own error log: parser errors only counted, anything else without request bytes."""
        exc = kw.get("exc_info")
        if isinstance(exc, HttpProcessingError):
            self.limits.reject("bad_request")
            return
        log.error("http server error", exc_info=exc if isinstance(exc, BaseException) else None)


class _Handshake(SSLProtocol):
    """asyncio's TLS protocol (the one its servers use) under a guarded connection: reports bytes of
    the handshake as activity and the end of a connection whose handshake never finished, which
    asyncio tells no one."""

    def __init__(self, loop: asyncio.AbstractEventLoop, handler: GuardedHandler, *args: Any, **kwargs: Any) -> None:
        super().__init__(loop, handler, *args, **kwargs)
        self.handler = handler

    def buffer_updated(self, nbytes: int) -> None:
        self.handler._touch()
        super().buffer_updated(nbytes)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.handler._handshake_lost()
        super().connection_lost(exc)


class GuardedServer(Server):
    """aiohttp's Server, making GuardedHandlers."""

    def __init__(self, *args: Any, limits: Limits, share: Share, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.share = share

    def __call__(self, tls: ssl.SSLContext | None = None) -> RequestHandler:
        return GuardedHandler(self, self.limits, self.share, tls, loop=self._loop, **self._kwargs)


class GuardedSite(web.TCPSite):
    """A TCP site whose TLS (`ssl_context`) is run by each guarded connection, not by the listening
    socket: a connection counts against `max_connections` and its header timeout from accept.

    asyncio accepts up to its server's `backlog` connections each time the listening socket is ready, and
    a connection reaches `connection_made` (where the budget applies) two iterations later, so under a
    flood the accepted sockets not yet counted pile up. Measured with two listeners flooded under a limit
    of 400, descriptors past the budget: aiohttp's 128 at a time reached the limit (EMFILE); 16: up to
    84, 8: 44, 4: 17, 1: none. The server is made with a backlog of `ACCEPT_BATCH` (16), then the kernel's
    queue of pending connections is set back to the site's `backlog` (listen() again on the same socket);
    `ACCEPT_ALLOWANCE` keeps four batches per listener out of the budget for them. Fewer at a time cost
    the scrapes on a flooded listener their turns: with 2,000 busy connections on `listen` (bench_hostile
    `load`) /metrics there had a p99 of 1,031 ms and 30 scrapes in 15 s before the budget, 2,346-2,848 ms
    and 19-20 with 4 at a time, 1,023-1,468 ms and 25-29 with 16."""

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site; TCPSite.start would hand the context to asyncio
        server = self._runner.server
        assert isinstance(server, GuardedServer)
        tls = self._ssl_context
        self._server = await asyncio.get_running_loop().create_server(
            lambda: server(tls), self._host, self._port, backlog=min(ACCEPT_BATCH, self._backlog),
            reuse_address=self._reuse_address, reuse_port=self._reuse_port)
        for listening in self._server.sockets:
            with listening.dup() as same:  # the same listening socket: its kernel queue as the site asked
                same.listen(self._backlog)
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port


def raise_open_files() -> tuple[int, int, int]:
    """Raise the soft open-file limit to the hard one (systemd's default soft 1,024 leaves a connection
    budget of only 704-832, by the listeners configured); returns (soft before, soft now, hard). Where
    it cannot be raised, it stays."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):  # a hard limit over the kernel's nr_open, or a sandbox
            return soft, soft, hard
        return soft, target, hard
    return soft, soft, hard


class GuardedAppRunner(web.AppRunner):
    """AppRunner whose server applies `limits` and takes its connections from `share` of the process's
    budget (the daemon hands each listener one; without it, a budget of its own from the open-file limit);
    idle keep-alive connections close after `idle_timeout`."""

    def __init__(self, app: web.Application, limits: Limits | None = None, share: Share | None = None,
                 **kwargs: Any) -> None:
        self.limits = limits or Limits()
        # past the fd limit accept() fails and asyncio stops accepting for 1 s
        self.share = share or ConnectionBudget.for_open_files().share("listener")
        self.limits.max_connections = max(1, min(self.limits.max_connections, self.share.budget.total))
        kwargs.setdefault("keepalive_timeout", self.limits.idle_timeout)
        super().__init__(app, **kwargs)

    async def shutdown(self) -> None:
        """Close the connections still in their TLS handshake (the listener has closed): aiohttp's server
        closes only those it was handed, after their handshake."""
        for handler in [h for h in self.limits.conns if h.handshaking]:
            handler._evict()
        await super().shutdown()

    def _reg_site(self, site: web.BaseSite) -> None:
        if site._ssl_context is not None and not isinstance(site, GuardedSite):
            raise TypeError("a TLS site of a GuardedAppRunner must be a GuardedSite (handshakes counted from accept)")
        super()._reg_site(site)

    async def _make_server(self) -> Server:
        server = await super()._make_server()  # runs the app's start-up, then builds aiohttp's Server
        return GuardedServer(server.request_handler, request_factory=server.request_factory,
                             handler_cancellation=server.handler_cancellation, loop=server._loop,
                             limits=self.limits, share=self.share, **server._kwargs)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def shed(limits: Limits) -> Middleware:
    """Middleware: PRIORITY paths always go through; others past `max_inflight` get a JSON 503 at once."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in PRIORITY:
            return await handler(request)
        if limits.inflight >= limits.max_inflight:
            limits.reject("shed")
            return web.Response(status=503, body=_json_body(503), content_type="application/json",
                                headers={"Retry-After": "1"})
        limits.inflight += 1
        try:
            return await handler(request)
        finally:
            limits.inflight -= 1

    return middleware
