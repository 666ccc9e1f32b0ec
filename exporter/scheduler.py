"""Runs every source on its own interval under its own timeout and swaps in new snapshots.

Failure is handled here, once: a source raises, the scheduler records `up 0` with the kind of
failure, drops the source's queue series and carries on. A slow source delays nobody else.

The daemon collects on an event loop and thread of its own (`start(threaded=True)`): 2,000 busy HTTP
connections cannot hold a collection back, so a source's timeout measures its backend, not the queue
in front of the web server's loop. Each finished collection is handed to the web loop, where the new
snapshot, the health verdicts and the exposition are built, so readers never race a writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import TypeVar

from exporter.metrics import OPENMETRICS, Exposition, Renderer, exporter_samples
from exporter.model import Reading, Sample, Snapshot, SourceState, SourceStatus, unique_series
from exporter.pools import LOOKUP_FAILURES, LOOKUP_TIMEOUT, RENDER, CollectorLoop, Resolver
from exporter.sources.base import Source, SourceError, SourceNameUnresolved

log = logging.getLogger("jobqueue.scheduler")
T = TypeVar("T")
REMIND_AFTER = 300.0  # seconds between "still failing" lines of a source that stays down
# Seconds that stopping waits for each step (source tasks to end, sources to close, the collector
# thread to end) before it abandons what is stuck: stop() takes at most about 3 * STOP_GRACE + 1.
STOP_GRACE = 2.0
# Added to twice a source's interval + timeout before its loop counts as stalled (see stall_after):
# room for the render pool, a busy machine and the hand-over to the web loop.
STALL_SLACK = 10.0


def stall_after(interval: float, timeout: float) -> float:
    """Seconds without progress (no collection's result rendered) after which a source's loop is
    stalled. A running loop starts a collection at least every `interval` and each ends within
    `timeout`, so the gap between two rendered results is at most interval + timeout plus rendering:
    twice interval + timeout plus STALL_SLACK is never reached by a slow collection, only by a stopped one."""
    return 2 * (interval + timeout) + STALL_SLACK


@dataclass(slots=True)
class _Down:
    """A source that is failing: since when (monotonic), for which kind, when it was last logged."""

    since: float
    kind: str
    logged: float
    failures: int = 1

@dataclass(slots=True)
class _RenderCrash:
    """A source whose readings the renderer cannot write: which error (type and where it was raised),
    when it was last logged, and the failures since."""

    where: str
    logged: float
    failures: int = 0


Listener = Callable[[Snapshot], None]
Producer = Callable[[Snapshot], Iterable[Sample]]  # derived series (health, reload), no `source` label


class Scheduler:
    """Owns the sources, the current snapshot, the renderer and the exposition it wrote."""

    def __init__(self, sources: Iterable[Source], revision: str = "unknown",
                 clock: Callable[[], float] = time.time, shard: tuple[int, int] = (0, 1),
                 resolver: Resolver | None = None) -> None:
        self.sources = list(sources)
        self.resolver = resolver
        self.revision = revision
        self.shard = shard
        self.clock = clock
        self.listeners: list[Listener] = []
        self.producers: list[Producer] = []
        self.renderer = Renderer(self.sources)
        self._errors: dict[str, dict[str, int]] = {s.name: {} for s in self.sources}
        self._last_success: dict[str, float | None] = {s.name: None for s in self.sources}
        self._count: dict[str, int] = {s.name: 0 for s in self.sources}
        self._collisions: dict[str, tuple[tuple[str, ...], ...]] = {}
        self._down: dict[str, _Down] = {}
        self._render_crash: dict[str, _RenderCrash] = {}
        initial = {
            s.name: SourceState(SourceStatus(s.name, s.backend, False, 0.0, 0.0, None), None)
            for s in self.sources
        }
        self.snapshot = Snapshot(initial, clock())
        own = self.renderer.samples(exporter_samples(revision, shard))
        self.exposition: Exposition = self.renderer.exposition([own])
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._home: asyncio.AbstractEventLoop | None = None  # the web loop, when collecting in a thread
        self._newest: Exposition | None = None  # built, maybe not yet served (see _swap)
        self._collector: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ended: asyncio.Event | None = None  # set on the web loop when the collector thread has ended
        # monotonic time of the last progress of each running source loop: its start, or a collection's
        # result applied on the web loop and rendered (a collection that started but never got there is
        # no progress: /metrics would be frozen); only sources whose loop runs are in it (see stalled)
        self._beat: dict[str, float] = {}

    async def collect_once(self) -> Snapshot:
        """Collect every source once, concurrently; used by `--once` and by tests."""
        await asyncio.gather(*(self._run_one(s) for s in self.sources))
        return self.snapshot

    def start(self, threaded: bool = False) -> None:
        """Start one task per source: on this loop, or (`threaded`) on a collector loop and thread of its own."""
        if not threaded:
            self._tasks = {s.name: self._start(s) for s in self.sources}
            return
        self._home = asyncio.get_running_loop()
        self.resolver = self.resolver or Resolver()
        ready = threading.Event()
        self._ended = asyncio.Event()
        self._thread = threading.Thread(target=self._run_collector, args=(ready, self._home, self._ended),
                                        name="jobqueue-collector", daemon=True)
        self._thread.start()
        ready.wait()

    def _run_collector(self, ready: threading.Event, home: asyncio.AbstractEventLoop, ended: asyncio.Event) -> None:
        assert self.resolver is not None
        loop = CollectorLoop(self.resolver)
        asyncio.set_event_loop(loop)
        self._collector = loop
        self._tasks = {s.name: self._start(s, loop) for s in self.sources}  # before run_forever: no running loop
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
            with contextlib.suppress(RuntimeError):  # the web loop has closed
                home.call_soon_threadsafe(ended.set)

    async def call(self, work: Awaitable[T]) -> T:
        """Await `work` where the sources' connections live: the collector loop when threaded, else here."""
        if self._collector is None:
            return await work
        future = asyncio.run_coroutine_threadsafe(_await(work), self._collector)
        return await asyncio.wrap_future(future)  # cancelling this cancels the work on the collector loop

    async def stop(self) -> None:
        """Cancel the loops and close every source's connections, in bounded time whatever the sources do.

        A source task that swallows its cancellation, a close() that waits on a peer that stopped
        reading, a collector thread that never ends: each is waited for STOP_GRACE seconds, logged and
        abandoned (the collector thread and the lookup threads are daemons), so the daemon can exit
        (issue 18: a test hung for 15 minutes here, and SIGTERM could too)."""
        collector, ended = self._collector, self._ended
        if collector is None or ended is None:
            await self._stop_here()
            return
        done = asyncio.run_coroutine_threadsafe(self._stop_here(), collector)
        # the collector loop itself may be blocked (a source calling blocking code): wait for it, bounded
        if not await _within(asyncio.wrap_future(done), 2 * STOP_GRACE + 1):
            log.warning("collector loop did not stop its sources in time; abandoned")
        collector.call_soon_threadsafe(collector.stop)
        # not thread.join in an executor thread: asyncio joins those at exit, so a stuck one would hang it
        if not await _within(ended.wait(), STOP_GRACE):
            log.warning("collector thread did not end in time; abandoned")
        self._collector = self._thread = self._home = self._ended = None
        if self.resolver is not None:
            self.resolver.close()

    def stalled(self) -> list[str]:
        """Names of the sources whose loop made no progress for longer than `stall_after`, or every
        source when the collector thread has ended: their series are frozen and only a restart helps.
        For the probes: no I/O, a copy of one small table (one C-level step under the GIL)."""
        thread = self._thread
        if thread is not None and not thread.is_alive():
            return sorted(s.name for s in self.sources)
        beats, now = dict(self._beat), time.monotonic()
        return sorted(s.name for s in list(self.sources) if s.name in beats
                      and now - beats[s.name] > stall_after(s.config.interval, s.config.timeout))

    def _step(self, name: str) -> None:
        """Progress of a running source loop (a source no longer running is not brought back)."""
        if name in self._beat:
            self._beat[name] = time.monotonic()

    async def _stop_here(self) -> None:
        self._beat.clear()
        tasks, self._tasks = list(self._tasks.values()), {}
        await _cancel(tasks)
        await _close(self.sources)

    def _start(self, source: Source, loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Task[None]:
        """The source's loop as a task of `loop`, by default the running one (the collector loop when threaded)."""
        loop = loop or asyncio.get_running_loop()
        self._beat[source.name] = time.monotonic()
        return loop.create_task(self._loop(source), name=f"source:{source.name}")

    async def replace_sources(self, sources: Iterable[Source]) -> None:
        """Reload: sources passed in that already run keep running untouched (no gap in their series);
        the others are stopped and closed, the new ones started, each on the loop that collects. A
        source replaced under the same name keeps its counters and last state until its first new
        collection swaps in. Runs on the web loop, where snapshots are built."""
        new = list(sources)
        kept = {id(s) for s in new}
        running = bool(self._tasks)
        await self.call(self._stop_sources([s for s in self.sources if id(s) not in kept]))
        names = {s.name for s in new}
        states = {n: st for n, st in self.snapshot.sources.items() if n in names}
        for source in new:
            self._errors.setdefault(source.name, {})
            self._last_success.setdefault(source.name, None)
            self._count.setdefault(source.name, 0)
            states.setdefault(source.name, SourceState(
                SourceStatus(source.name, source.backend, False, 0.0, 0.0, None), None))
        # the collector thread may add to or drop from these tables meanwhile: copy the keys (one C-level
        # step under the GIL) and pop, so neither side sees a dict change size under its iteration
        for table in (self._errors, self._last_success, self._count, self._down, self._render_crash):
            for name in [n for n in list(table) if n not in names]:
                table.pop(name, None)
        self.sources = new
        self.renderer.declare(new)  # and drops what it kept of the sources gone
        self.snapshot = replace(self.snapshot, sources={s.name: states[s.name] for s in new},
                                created_at=self.clock())
        self.refresh()
        if running:
            await self.call(self._start_missing())

    async def _stop_sources(self, gone: list[Source]) -> None:
        for source in gone:
            self._beat.pop(source.name, None)
        await _cancel([self._tasks.pop(s.name) for s in gone if s.name in self._tasks])
        await _close(gone)

    async def _start_missing(self) -> None:
        for source in self.sources:
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
        LOOKUP_TIMEOUT.set(source.config.timeout * 0.8)  # a hung name lookup ends inside the source's timeout
        unresolved: list[str] = []
        LOOKUP_FAILURES.set(unresolved)
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
        if reading is None and unresolved:  # the name never resolved: not the backend's fault
            kind, error = SourceNameUnresolved.kind, f"name lookup failed: {'; '.join(unresolved)}"
        duration = time.perf_counter() - started
        try:
            state = await self._settle(source, reading, kind, error, duration)
            self._render_crash.pop(name, None)
        except Exception as err:  # a value the renderer cannot write must not freeze this source's series
            # nor stall its loop (the probes would restart the pod, every source with it): it reads down
            self._log_render_crash(name, err)
            state = await self._settle(source, None, "error", f"render failed: {type(err).__name__}", duration)
        if self._home is not None and self._collector is not None:  # threaded: the web loop builds what it reads
            with contextlib.suppress(RuntimeError):  # the web loop has closed: the daemon is stopping
                self._home.call_soon_threadsafe(self._swap, name, state)
        else:
            self._swap(name, state)

    async def _settle(self, source: Source, reading: Reading | None, kind: str | None, error: str | None,
                      duration: float) -> SourceState:
        """Status and rendering of one collection's outcome; the counters change once it has rendered."""
        name = source.name
        now = self.clock()
        count = self._count[name] + 1
        last_success = now if reading is not None else self._last_success[name]
        errors = dict(self._errors[name])
        if reading is None:
            errors[kind or "error"] = errors.get(kind or "error", 0) + 1
        status = SourceStatus(name, source.backend, reading is not None, now, duration, last_success, error, kind,
                              count)
        # on the render pool: at 10k tenants the dedup and the rendering walk tens of thousands of records
        reading, fragments = await asyncio.get_running_loop().run_in_executor(
            RENDER, self._render, status, reading, errors, source.config.interval)
        self._count[name] = count
        self._last_success[name] = last_success
        if not status.up:
            table = self._errors[name]
            table[kind or "error"] = table.get(kind or "error", 0) + 1
        self._log_state(name, (kind or "error") if not status.up else None, error)
        return SourceState(status, reading, fragments)

    def _log_render_crash(self, name: str, err: Exception) -> None:
        """The traceback once per source and distinct error (the same data fails every cycle until it
        changes: a traceback each cycle buried the log), then one line every REMIND_AFTER seconds."""
        frame = traceback.extract_tb(err.__traceback__)[-1]
        where = f"{type(err).__name__} at {frame.filename}:{frame.lineno}"
        now = time.monotonic()
        crash = self._render_crash.get(name)
        if crash is None or crash.where != where:
            log.exception("render crashed", extra={"source": name})
            self._render_crash[name] = _RenderCrash(where, now)
            return
        crash.failures += 1
        if now - crash.logged >= REMIND_AFTER:
            log.error("render still failing", extra={"source": name, "error": f"{type(err).__name__}: {err}",
                                                     "failures": crash.failures})
            crash.logged, crash.failures = now, 0

    def _log_state(self, name: str, kind: str | None, error: str | None) -> None:
        """One line per change of state: down (or down for another reason), still down every
        REMIND_AFTER seconds, back up. Not one line per failed cycle."""
        now = time.monotonic()
        down = self._down.get(name)
        if kind is None:
            if down is not None:
                log.info("collect recovered", extra={"source": name, "down_seconds": round(now - down.since, 1),
                                                     "failures": down.failures})
                del self._down[name]
            return
        if down is None or down.kind != kind:
            log.warning("collect failed", extra={"source": name, "kind": kind, "error": error})
            self._down[name] = _Down(now if down is None else down.since, kind, now)
            return
        down.failures += 1
        if now - down.logged >= REMIND_AFTER:
            log.warning("collect still failing", extra={"source": name, "kind": kind, "error": error,
                                                        "down_seconds": round(now - down.since, 1),
                                                        "failures": down.failures})
            down.logged = now

    def _render(self, status: SourceStatus, reading: Reading | None, errors: dict[str, int], interval: float
                ) -> tuple[Reading | None, dict[str, bytes]]:
        if reading is not None:
            reading = self._once(status.name, reading)
        return reading, self.renderer.source(status, reading, errors, interval)

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
        if name not in self.snapshot.sources:  # a late hand-over from a source a reload removed
            return
        sources = dict(self.snapshot.sources)
        sources[name] = state
        self.snapshot = replace(self.snapshot, sources=sources, created_at=self.clock())
        self.refresh()
        self._step(name)  # on the web loop, once rendered: a result that never gets here is no progress

    def refresh(self) -> None:
        """Tell the listeners of the current snapshot and render the exposition again."""
        snapshot = self.snapshot
        for listener in self.listeners:  # e.g. health history, before metrics derive from it
            try:
                listener(snapshot)
            except Exception:
                log.exception("snapshot listener crashed", extra={"listener": getattr(listener, "__name__", "?")})
        derived = [self.renderer.samples(exporter_samples(self.revision, self.shard))]
        for produce in self.producers:
            try:
                derived.append(self.renderer.samples(produce(snapshot)))
            except Exception:  # the source series still go out; the derived ones are missing, not stale
                log.exception("derived metrics crashed", extra={"producer": getattr(produce, "__name__", "?")})
        exposition = self.renderer.exposition([*(s.fragments for s in snapshot.sources.values()), *derived])
        self._newest = exposition
        if self._collector is None:
            self.exposition = exposition
            return
        # The daemon: scrapes keep the bytes of the previous exposition until the new one is gzipped
        # in the format Prometheus asks for, so no scrape waits for the compression of a large
        # exposition (tens of milliseconds at 10k tenants); other formats are built on first demand.
        ready = asyncio.get_running_loop().run_in_executor(RENDER, exposition.body, OPENMETRICS, True)
        ready.add_done_callback(lambda _: self._publish(exposition))

    def _publish(self, exposition: Exposition) -> None:
        """Serve `exposition` unless a newer one was built meanwhile (that one is published when ready)."""
        if self._newest is exposition:
            self.exposition = exposition


async def _await(work: Awaitable[T]) -> T:
    return await work


async def _within(work: Awaitable[T], seconds: float) -> bool:
    """Wait for `work` at most `seconds`; False if it is still running (it is cancelled, not awaited)."""
    future = asyncio.ensure_future(work)
    finished, _ = await asyncio.wait({future}, timeout=seconds)
    if not finished:
        future.cancel()
    return bool(finished)


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel source tasks and wait up to STOP_GRACE for them to end; one that will not is left behind.

    Cancelled again every 0.1 s: Python 3.11's asyncio.wait_for swallows a cancellation that arrives as
    its inner future completes (CPython gh-86296, fixed in 3.12 only), and redis-py, asyncpg and our
    Redis wire all wait_for their connects, so one cancel may be lost and the source's loop go on."""
    pending = set(tasks)
    deadline = time.monotonic() + STOP_GRACE
    while pending and time.monotonic() < deadline:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)
    for task in pending:
        log.warning("source task did not stop when cancelled; abandoned", extra={"task": task.get_name()})


async def _close(sources: Iterable[Source]) -> None:
    """Close sources concurrently, each given STOP_GRACE (a peer that stopped reading can hold a close)."""
    closing = {asyncio.ensure_future(s.close()): s.name for s in sources}
    if not closing:
        return
    finished, pending = await asyncio.wait(closing, timeout=STOP_GRACE)
    for task in finished:
        if not task.cancelled() and task.exception() is not None:
            log.warning("source close failed", extra={"source": closing[task], "error": repr(task.exception())})
    for task in pending:
        task.cancel()
        log.warning("source did not close in time; abandoned", extra={"source": closing[task]})
