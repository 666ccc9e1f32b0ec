"""Runs every source on its own interval under its own timeout and swaps in new snapshots.

Failure is handled here, once: a source raises, the scheduler records `up 0` with the kind of
failure, drops the source's queue series and carries on. A slow source delays nobody else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import replace

from exporter.metrics import Exposition, build_exposition, render_source
from exporter.model import Reading, Snapshot, SourceState, SourceStatus, unique_series
from exporter.sources.base import Source, SourceError

log = logging.getLogger("jobqueue.scheduler")

Listener = Callable[[Snapshot], None]


class Scheduler:
    """Owns the sources, the current snapshot and its exposition."""

    def __init__(self, sources: Iterable[Source], revision: str = "unknown",
                 clock: Callable[[], float] = time.time, shard: tuple[int, int] = (0, 1)) -> None:
        self.sources = list(sources)
        self.revision = revision
        self.shard = shard
        self.clock = clock
        self.listeners: list[Listener] = []
        self.derived: list[Callable[[Snapshot], dict[str, bytes]]] = []
        self._errors: dict[str, dict[str, int]] = {s.name: {} for s in self.sources}
        self._last_success: dict[str, float | None] = {s.name: None for s in self.sources}
        self._count: dict[str, int] = {s.name: 0 for s in self.sources}
        self._collisions: dict[str, tuple[tuple[str, ...], ...]] = {}
        initial = {
            s.name: SourceState(SourceStatus(s.name, s.backend, False, 0.0, 0.0, None), None)
            for s in self.sources
        }
        self.snapshot = Snapshot(initial, clock())
        self.exposition: Exposition = build_exposition([], revision, shard=shard)
        self._tasks: list[asyncio.Task[None]] = []

    async def collect_once(self) -> Snapshot:
        """Collect every source once, concurrently; used by `--once` and by tests."""
        await asyncio.gather(*(self._run_one(s) for s in self.sources))
        return self.snapshot

    def start(self) -> None:
        """Start one task per source."""
        self._tasks = [asyncio.create_task(self._loop(s), name=f"source:{s.name}") for s in self.sources]

    async def stop(self) -> None:
        """Cancel the loops and close every source's connections."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await asyncio.gather(*(s.close() for s in self.sources), return_exceptions=True)

    async def _loop(self, source: Source) -> None:
        interval = source.config.interval
        next_run = time.monotonic()
        while True:
            try:
                await self._run_one(source)
            except Exception:  # a bug after collect (render, health) must not end this source's loop
                log.exception("cycle crashed", extra={"source": source.name})
            next_run += interval
            now = time.monotonic()
            if next_run < now:  # the collection overran: skip missed ticks rather than pile up
                next_run = now + interval - ((now - next_run) % interval)
            await asyncio.sleep(next_run - now)

    async def _run_one(self, source: Source) -> None:
        name = source.name
        started = time.perf_counter()
        reading: Reading | None = None
        error: str | None = None
        kind: str | None = None
        try:
            async with asyncio.timeout(source.config.timeout):
                reading = await source.collect()
        except TimeoutError:
            kind, error = "timeout", f"no answer within {source.config.timeout}s"
        except SourceError as err:
            kind, error = err.kind, str(err)
        except Exception as err:  # a bug in a source must not stop the others
            kind, error = "error", f"{type(err).__name__}: {err}"
            log.exception("collect crashed", extra={"source": name})
        duration = time.perf_counter() - started
        now = self.clock()
        self._count[name] += 1
        if reading is not None:
            self._last_success[name] = now
        else:
            errors = self._errors[name]
            errors[kind or "error"] = errors.get(kind or "error", 0) + 1
            log.warning("collect failed", extra={"source": name, "kind": kind, "error": error})
        status = SourceStatus(name, source.backend, reading is not None, now, duration,
                              self._last_success[name], error, kind, self._count[name])
        # off the event loop: at 10k tenants both walk tens of thousands of records
        reading, fragments = await asyncio.to_thread(self._render, status, reading, source.config.interval)
        self._swap(name, SourceState(status, reading, fragments))

    def _render(self, status: SourceStatus, reading: Reading | None, interval: float
                ) -> tuple[Reading | None, dict[str, bytes]]:
        if reading is not None:
            reading = self._once(status.name, reading)
        return reading, render_source(status, reading, dict(self._errors[status.name]), interval)

    def _once(self, name: str, reading: Reading) -> Reading:
        """Every series once (a doubled series is invalid OpenMetrics); collisions logged when they change."""
        reading = unique_series(reading)
        if reading.collisions != self._collisions.get(name, ()):
            self._collisions[name] = reading.collisions
            if reading.collisions:
                log.warning("series produced twice, first kept", extra={
                    "source": name, "count": len(reading.collisions),
                    "series": [list(c) for c in reading.collisions[:10]]})
        return reading

    def _swap(self, name: str, state: SourceState) -> None:
        sources = dict(self.snapshot.sources)
        sources[name] = state
        snapshot = replace(self.snapshot, sources=sources, created_at=self.clock())
        self.snapshot = snapshot
        for listener in self.listeners:  # e.g. health history, before metrics derive from it
            try:
                listener(snapshot)
            except Exception:
                log.exception("snapshot listener crashed", extra={"listener": getattr(listener, "__name__", "?")})
        extra: dict[str, bytes] = {}
        for derive in self.derived:
            try:
                extra.update(derive(snapshot))
            except Exception:  # the source series still go out; the derived ones are missing, not stale
                log.exception("derived metrics crashed", extra={"derive": getattr(derive, "__name__", "?")})
        self.exposition = build_exposition((s.fragments for s in sources.values()), self.revision, extra,
                                           self.shard)
