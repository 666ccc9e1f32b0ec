"""Capacity of its own for each kind of blocking work, so one kind can never starve another.

asyncio runs name lookups in the loop's default thread pool, the same pool that `asyncio.to_thread`
uses; a DNS server that never answers used to fill it, and every scrape waited behind the lookups.
Here: rendering has its own pool (RENDER), the collector's parsing has its own (the collector loop's
default executor, made in `collector_loop`), and name lookups go through a `Resolver` with its own
threads, one lookup in flight per name, and a timeout inside the source's timeout.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

RENDER = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="jobqueue-render")

# The bound of one name lookup: the scheduler sets it to a share of the collecting source's timeout.
LOOKUP_TIMEOUT: contextvars.ContextVar[float] = contextvars.ContextVar("lookup_timeout", default=5.0)

Lookup = Callable[..., list[Any]]


class DaemonPool:
    """Up to `workers` daemon threads running submitted calls, each started when the calls waiting
    outnumber the idle threads (an idle daemon holds none). A lookup stuck in getaddrinfo cannot be interrupted;
    ThreadPoolExecutor would join it at interpreter exit, so a hung DNS server would also hang SIGTERM.
    These threads are abandoned at exit instead."""

    def __init__(self, workers: int, name: str) -> None:
        self._queue: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], Callable[..., Any], tuple[Any, ...]]
                                       | None] = queue.SimpleQueue()
        self._workers = workers
        self._name = name
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting for a call
        self._waiting = 0  # calls no thread has taken yet
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._queue.put((future, fn, args))
        with self._lock:
            self._waiting += 1
            if self._waiting > self._idle and len(self._threads) < self._workers:
                thread = threading.Thread(target=self._work, name=f"{self._name}_{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                self._idle += 1  # idle until it takes its first call
                thread.start()
        return future

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            with self._lock:
                self._idle -= 1
                self._waiting -= 1
            future, fn, args = job
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as err:  # handed to the waiter, as an executor does
                    future.set_exception(err)
            with self._lock:
                self._idle += 1

    def shutdown(self) -> None:
        """Idle threads end; a thread stuck in a call ends when the call does (or with the process)."""
        with self._lock:
            started = len(self._threads)
        for _ in range(started):
            self._queue.put(None)


class Resolver:
    """getaddrinfo on threads of its own; a name that hangs holds one thread, not the pool.

    Concurrent lookups of the same (host, port, ...) share one call; a caller waits at most
    LOOKUP_TIMEOUT and then gets `socket.gaierror(EAI_AGAIN)`, which every client library reports
    as "cannot connect", while the stuck call finishes (or not) on its own thread.
    """

    def __init__(self, lookup: Lookup = socket.getaddrinfo, workers: int = 16) -> None:
        self.lookup = lookup
        self.pool = DaemonPool(workers, "jobqueue-dns")
        self._inflight: dict[tuple[Any, ...], tuple[concurrent.futures.Future[list[Any]], float]] = {}

    async def getaddrinfo(self, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0,
                          flags: int = 0) -> list[Any]:
        key = (host, port, family, type, proto, flags)
        entry = self._inflight.get(key)
        if entry is None:
            future = self.pool.submit(self.lookup, host, port, family, type, proto, flags)
            entry = self._inflight[key] = (future, time.monotonic())
            future.add_done_callback(lambda f: self._inflight.pop(key, None) if self._inflight.get(key, (None,))[0] is f
                                     else None)
        future, started = entry
        timeout = LOOKUP_TIMEOUT.get()
        # a lookup already pending longer than our bound fails at once: a hung name costs one wait, not one per retry
        remaining = timeout - (time.monotonic() - started)
        try:
            if remaining <= 0:
                raise TimeoutError
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), remaining)
        except TimeoutError:
            raise socket.gaierror(socket.EAI_AGAIN, f"name lookup of {host!r} took over {timeout:g}s") from None

    def close(self) -> None:
        self.pool.shutdown()


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
