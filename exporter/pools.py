"""Capacity of its own for each kind of blocking work, so one kind can never starve another.

asyncio runs name lookups in the loop's default thread pool, the same pool that `asyncio.to_thread`
uses; a DNS server that never answers used to fill it, and every scrape waited behind the lookups.
Then a fixed pool of 16 lookup threads had the same flaw one level down: 20 names that never
resolve held all 16, and `localhost` queued behind them (issue 20 item 2). Here: rendering has its
own pool (RENDER), the collector's parsing has its own (the collector loop's default executor, made
in `collector_loop`), and name lookups go through a `Resolver`: an address or a name of /etc/hosts
is answered at once without any thread, a name asked within `remember` seconds gets the answer
remembered, and any other lookup runs on a thread of its own (one in flight per name), bounded by a
share of the source's timeout.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RENDER = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="jobqueue-render")

# The bound of one name lookup: the scheduler sets it to a share of the collecting source's timeout.
LOOKUP_TIMEOUT: contextvars.ContextVar[float] = contextvars.ContextVar("lookup_timeout", default=5.0)
# The names whose lookup failed during the current collection: the scheduler gives each collection a
# list, so a source that cannot resolve its backend's name is told apart from one that cannot connect.
LOOKUP_FAILURES: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("lookup_failures", default=None)
HOSTS_FILE = Path("/etc/hosts")

Lookup = Callable[..., list[Any]]
Key = tuple[Any, ...]


def _on_thread(fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
    """Run `fn` on a daemon thread of its own. A lookup stuck in getaddrinfo cannot be interrupted;
    an executor would join it at interpreter exit (so a hung DNS server would also hang SIGTERM), and
    a fixed pool would make every other name wait behind it. This thread is abandoned at exit."""
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def run() -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as err:  # handed to the waiter, as an executor does
            future.set_exception(err)

    threading.Thread(target=run, name="jobqueue-dns", daemon=True).start()
    return future


def read_hosts(text: str) -> dict[str, list[str]]:
    """/etc/hosts as {name (lower case): [addresses in file order]}."""
    names: dict[str, list[str]] = {}
    for line in text.splitlines():
        address, *aliases = line.split("#", 1)[0].split() or [""]
        for name in aliases:
            names.setdefault(name.lower(), []).append(address)
    return names


class Resolver:
    """getaddrinfo that never makes one name wait for another.

    Concurrent lookups of the same (host, port, ...) share one call; a caller waits at most
    LOOKUP_TIMEOUT and then gets `socket.gaierror(EAI_AGAIN)`, which every client library reports
    as "cannot connect", while the stuck call finishes (or not) on its own thread. The name is added
    to LOOKUP_FAILURES. When a lookup fails or hangs, the last answer for that name, however old, is
    used (serve-stale, as RFC 8767): a DNS outage does not take down a backend that has not moved.
    getaddrinfo does not return the record's TTL, so answers are remembered for `remember` seconds.
    """

    def __init__(self, lookup: Lookup = socket.getaddrinfo, remember: float = 30.0,
                 hosts_file: Path = HOSTS_FILE) -> None:
        self.lookup = lookup
        self.remember = remember
        self.hosts_file = hosts_file
        self._hosts: tuple[float, dict[str, list[str]]] = (-1.0, {})
        self._inflight: dict[Key, tuple[concurrent.futures.Future[list[Any]], float]] = {}
        self._answers: dict[Key, tuple[list[Any], float]] = {}

    def local(self, host: Any, port: Any, family: int, type: int, proto: int, flags: int) -> list[Any] | None:
        """The answer for an address or a name of /etc/hosts, computed here without any I/O but a stat."""
        numeric = flags | socket.AI_NUMERICHOST
        if not isinstance(host, str | bytes) or not host:
            return socket.getaddrinfo(host, port, family, type, proto, numeric)
        with contextlib.suppress(socket.gaierror):
            return socket.getaddrinfo(host, port, family, type, proto, numeric)
        name = host.decode() if isinstance(host, bytes) else host
        addresses = self._hosts_table().get(name.lower().rstrip("."))
        if not addresses:
            return None
        answer: list[Any] = []
        for address in addresses:
            with contextlib.suppress(socket.gaierror):  # an address of another family than asked
                answer += socket.getaddrinfo(address, port, family, type, proto, numeric)
        return answer or None

    def _hosts_table(self) -> dict[str, list[str]]:
        try:
            mtime = self.hosts_file.stat().st_mtime
        except OSError:
            return {}
        if mtime != self._hosts[0]:
            try:
                self._hosts = (mtime, read_hosts(self.hosts_file.read_text(errors="replace")))
            except OSError:
                return {}
        return self._hosts[1]

    async def getaddrinfo(self, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0,
                          flags: int = 0) -> list[Any]:
        local = self.local(host, port, family, type, proto, flags)
        if local is not None:
            return local
        key = (host, port, family, type, proto, flags)
        now = time.monotonic()
        known = self._answers.get(key)
        if known is not None and now - known[1] < self.remember:
            return known[0]
        entry = self._inflight.get(key)
        if entry is None:
            future = _on_thread(self.lookup, host, port, family, type, proto, flags)
            entry = self._inflight[key] = (future, now)
            future.add_done_callback(lambda f: self._inflight.pop(key, None) if self._inflight.get(key, (None,))[0] is f
                                     else None)
        future, started = entry
        timeout = LOOKUP_TIMEOUT.get()
        # a lookup already pending longer than our bound fails at once: a hung name costs one wait, not one per retry
        remaining = timeout - (now - started)
        try:
            if remaining <= 0:
                raise TimeoutError
            answer: list[Any] = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), remaining)
        except TimeoutError:
            failure = socket.gaierror(socket.EAI_AGAIN, f"name lookup of {host!r} took over {timeout:g}s")
        except socket.gaierror as err:
            failure = err
        else:
            self._answers[key] = (answer, time.monotonic())
            return answer
        if known is not None:
            return known[0]
        failures = LOOKUP_FAILURES.get()
        if failures is not None:
            failures.append(f"{host}: {failure.strerror or failure}")
        raise failure from None

    def close(self) -> None:
        """Nothing to stop: a thread stuck in a lookup ends when the lookup does (or with the process)."""


class CollectorLoop(asyncio.SelectorEventLoop):
    """The collector's event loop: name lookups through a Resolver, parsing on a pool of its own."""

    def __init__(self, resolver: Resolver) -> None:
        super().__init__()
        self.resolver = resolver
        self.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=4,
                                                                         thread_name_prefix="jobqueue-parse"))

    async def getaddrinfo(self, host: Any, port: Any, *, family: int = 0, type: int = 0, proto: int = 0,
                          flags: int = 0) -> list[Any]:
        return await self.resolver.getaddrinfo(host, port, family, type, proto, flags)
