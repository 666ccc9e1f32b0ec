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
from exporter.model import Reading, Snapshot, SourceState, SourceStatus
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
        initial = {
            s.name: SourceState(SourceStatus(s.name, s.backend, False, 0.0, 0.0, None), None)
            for s in self.sources
        }
        self.snapshot = Snapshot(initial, clock())
        self.exposition: Exposition = build_exposition([], revision, shard=shard)
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def collect_once(self) -> Snapshot:
        """Collect every source once, concurrently; used by `--once` and by tests."""
        await asyncio.gather(*(self._run_one(s) for s in self.sources))
        return self.snapshot

    def start(self) -> None:
        """Start one task per source."""
        self._tasks = {s.name: self._start(s) for s in self.sources}

    def _start(self, source: Source) -> asyncio.Task[None]:
        return asyncio.create_task(self._loop(source), name=f"source:{source.name}")

    async def stop(self) -> None:
        """Cancel the loops and close every source's connections."""
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks = {}
        await asyncio.gather(*(s.close() for s in self.sources), return_exceptions=True)

    async def replace_sources(self, sources: Iterable[Source]) -> None:
        """Reload: sources passed in that already run keep running untouched (no gap in their series);
        the others are stopped and closed, the new ones started. A source replaced under the same name
        keeps its counters and last state until its first new collection swaps in."""
        new = list(sources)
        kept = {id(s) for s in new}
        running = bool(self._tasks)
        gone = [s for s in self.sources if id(s) not in kept]
        tasks = [self._tasks.pop(s.name) for s in gone if s.name in self._tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(s.close() for s in gone), return_exceptions=True)
        names = {s.name for s in new}
        states = {n: st for n, st in self.snapshot.sources.items() if n in names}
        for source in new:
            self._errors.setdefault(source.name, {})
            self._last_success.setdefault(source.name, None)
            self._count.setdefault(source.name, 0)
            states.setdefault(source.name, SourceState(
                SourceStatus(source.name, source.backend, False, 0.0, 0.0, None), None))
        for table in (self._errors, self._last_success, self._count):
            for name in [n for n in table if n not in names]:
                del table[name]
        self.sources = new
        self.snapshot = replace(self.snapshot, sources={s.name: states[s.name] for s in new},
                                created_at=self.clock())
        self.refresh()
        if running:
            for source in new:
                if source.name not in self._tasks:
                    self._tasks[source.name] = self._start(source)

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
        fragments = await asyncio.to_thread(render_source, status, reading, dict(self._errors[name]),
                                            source.config.interval)
        self._swap(name, SourceState(status, reading, fragments))

    def _swap(self, name: str, state: SourceState) -> None:
        sources = dict(self.snapshot.sources)
        sources[name] = state
        snapshot = replace(self.snapshot, sources=sources, created_at=self.clock())
        self.snapshot = snapshot
        self.refresh()

    def refresh(self) -> None:
        """Tell the listeners of the current snapshot and render the exposition again."""
        snapshot = self.snapshot
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
        self.exposition = build_exposition((s.fragments for s in snapshot.sources.values()), self.revision,
                                           extra, self.shard)
