"""`Scheduler.stalled`, what /healthz and /readyz read: a source loop that stops making progress is
named once its bound has passed, a slow one (each collection timed out) never is, a reload neither
leaves a removed source behind nor names a new one, and sources that only `collect_once` (tests,
`--once`) run no loop to stall. The slack is cut to 0.3 s (module constant) so bounds pass in a second;
the real-daemon side is tests/integration/test_probes_stall.py."""

from __future__ import annotations

import asyncio
import logging

import pytest

from exporter import scheduler as scheduler_module
from exporter.metrics import TEXT
from exporter.model import QueueStats, Reading
from exporter.scheduler import Scheduler, stall_after
from tests.unit.test_scheduler import ScriptedSource

TIMEOUT = 0.05  # ScriptedSource: interval = timeout


class StuckSource(ScriptedSource):
    """A collection that swallows its cancellation and never ends (its timeout cannot end it): the loop
    stops, the process lives. `release()` lets the next cancellation through, so the test can stop it."""

    released = False

    async def collect(self):  # type: ignore[no-untyped-def]
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if self.released:
                    raise

    def release(self) -> None:
        self.released = True


@pytest.fixture(autouse=True)
def short_slack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduler_module, "STALL_SLACK", 0.3)


async def test_a_stuck_loop_is_named_after_its_bound_a_slow_one_never() -> None:
    bound = stall_after(TIMEOUT, TIMEOUT)
    assert bound == pytest.approx(0.5)
    slow = ScriptedSource("slow", ["hang"])  # every collection runs into its timeout, then the next starts
    stuck = StuckSource("stuck", [1])
    scheduler = Scheduler([slow, stuck])
    scheduler.start()
    try:
        assert scheduler.stalled() == []
        await asyncio.sleep(bound / 2)
        assert scheduler.stalled() == []
        await asyncio.sleep(bound + 0.2)
        assert scheduler.stalled() == ["stuck"]
        assert slow.calls >= 5
    finally:
        stuck.release()
        await scheduler.stop()


async def test_a_reload_names_neither_a_removed_nor_a_new_source() -> None:
    stuck, ok = StuckSource("stuck", [1]), ScriptedSource("ok", [1])
    scheduler = Scheduler([stuck, ok])
    scheduler.start()
    try:
        await asyncio.sleep(stall_after(TIMEOUT, TIMEOUT) + 0.2)
        assert scheduler.stalled() == ["stuck"]
        fresh = ScriptedSource("fresh", [2])
        await scheduler.replace_sources([ok, fresh])
        assert scheduler.stalled() == []
        await asyncio.sleep(0.3)
        assert scheduler.stalled() == []
    finally:
        stuck.release()
        await scheduler.stop()


async def test_collect_once_runs_no_loop_that_could_stall() -> None:
    scheduler = Scheduler([ScriptedSource("once", [1])])
    await scheduler.collect_once()
    await asyncio.sleep(stall_after(TIMEOUT, TIMEOUT) + 0.2)
    assert scheduler.stalled() == []
    await scheduler.stop()


async def test_a_result_that_never_reaches_metrics_is_a_stall(monkeypatch: pytest.MonkeyPatch) -> None:
    """Collections that start and end but whose result is never rendered (here the renderer fails on
    every exposition, as a bug in it would) leave /metrics frozen: that is no progress."""
    source = ScriptedSource("s", [1, 2, 3, 4, 5, 6, 7, 8, 9])
    scheduler = Scheduler([source])
    await scheduler.collect_once()
    frozen = scheduler.exposition

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("renderer bug")

    monkeypatch.setattr(scheduler.renderer, "exposition", broken)
    scheduler.start()
    try:
        await asyncio.sleep(stall_after(TIMEOUT, TIMEOUT) + 0.3)
        assert source.calls >= 5  # collecting all along
        assert scheduler.exposition is frozen
        assert scheduler.stalled() == ["s"]
    finally:
        await scheduler.stop()


async def test_a_stuck_source_replaced_under_its_name_is_judged_afresh() -> None:
    stuck = StuckSource("db", [1])
    scheduler = Scheduler([stuck])
    scheduler.start()
    try:
        await asyncio.sleep(stall_after(TIMEOUT, TIMEOUT) + 0.2)
        assert scheduler.stalled() == ["db"]
        stuck.release()
        fixed = ScriptedSource("db", [1, 2, 3, 4, 5, 6, 7, 8, 9])
        await scheduler.replace_sources([fixed])
        assert scheduler.stalled() == []
        await asyncio.sleep(stall_after(TIMEOUT, TIMEOUT) + 0.2)
        assert fixed.calls >= 5
        assert scheduler.stalled() == []
    finally:
        await scheduler.stop()


class Unwritable(ScriptedSource):
    """A reading holding a value no codec can write (a lone surrogate in a label), as a source that let
    one through would hand over; what renders it raises."""

    async def collect(self):  # type: ignore[no-untyped-def]
        self.calls += 1
        return Reading(queues=(QueueStats("x\ud800", 1, ""),))


async def test_a_value_the_renderer_cannot_write_makes_its_source_down_not_the_daemon_stalled() -> None:
    bad, good = Unwritable("bad", [1]), ScriptedSource("good", [1, 2, 3, 4, 5, 6, 7, 8, 9])
    scheduler = Scheduler([bad, good])
    scheduler.start()
    try:
        await asyncio.sleep(stall_after(TIMEOUT, TIMEOUT) + 0.3)
        assert bad.calls >= 5
        assert scheduler.stalled() == []  # /healthz stays 200: a restart would bring the same data back
        text = scheduler.exposition.body(TEXT).decode()
        assert 'jobqueue_source_up{source="bad",backend="stub"} 0' in text
        assert 'jobqueue_source_up{source="good",backend="stub"} 1' in text
        assert not any(line.startswith("jobqueue_depth{") and 'source="bad"' in line for line in text.splitlines())
        errors = next(line for line in text.splitlines()
                      if line.startswith('jobqueue_collect_errors_total{source="bad",kind="error"}'))
        assert float(errors.split()[-1]) == scheduler.snapshot.sources["bad"].status.collections
        status = scheduler.snapshot.sources["bad"].status
        assert (status.up, status.error_kind, status.error) == (False, "error", "render failed: UnicodeEncodeError")
        assert status.last_success is None  # never rendered, never a success
    finally:
        await scheduler.stop()


class Switchable(ScriptedSource):
    """A reading that is writable, or not in one of two ways (a lone surrogate; an oldest timestamp the
    renderer cannot format), as the test sets `bad` before each collection."""

    bad: str | None = None

    async def collect(self):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.bad == "surrogate":
            return Reading(queues=(QueueStats("x\ud800", 1, ""),))
        if self.bad == "timestamp":
            return Reading(queues=(QueueStats("q", 1, "", "not a number"),))  # type: ignore[arg-type]
        return Reading(queues=(QueueStats("q", 3, ""),))


async def test_a_render_crash_logs_its_traceback_once_per_error_then_a_line_now_and_then(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same reading fails to render every cycle until its data changes: its traceback was logged
    every cycle. Now once per source and distinct error (again after a recovery), and in between one
    line at most every REMIND_AFTER seconds; the source reads up 0, kind error, each cycle."""
    source = Switchable("bad", [1])
    scheduler = Scheduler([source])

    def up() -> str:
        text = scheduler.exposition.body(TEXT).decode()
        return next(line for line in text.splitlines() if line.startswith("jobqueue_source_up{")).split()[-1]

    async def cycles(bad: str | None, n: int) -> list[tuple[str, str]]:
        source.bad = bad
        caplog.clear()
        seen = []
        for _ in range(n):
            await scheduler.collect_once()
            status = scheduler.snapshot.sources["bad"].status
            seen.append((up(), status.error or ""))
        return seen

    def said() -> list[tuple[str, bool]]:
        return [(r.getMessage(), r.exc_info is not None) for r in caplog.records
                if r.getMessage().startswith("render")]

    with caplog.at_level(logging.INFO, logger="jobqueue.scheduler"):
        assert await cycles("surrogate", 4) == [("0", "render failed: UnicodeEncodeError")] * 4
        assert said() == [("render crashed", True)]
        assert await cycles(None, 1) == [("1", "")]
        assert said() == []
        assert await cycles("surrogate", 3) == [("0", "render failed: UnicodeEncodeError")] * 3
        assert said() == [("render crashed", True)]  # failing again after a recovery: a traceback again
        assert await cycles("timestamp", 2) == [("0", "render failed: ValueError")] * 2
        assert said() == [("render crashed", True)]  # another error: its own traceback
        monkeypatch.setattr(scheduler_module, "REMIND_AFTER", 0.0)
        assert await cycles("timestamp", 2) == [("0", "render failed: ValueError")] * 2
        assert said() == [("render still failing", False)] * 2  # one line, no traceback
        lines = [r.__dict__ for r in caplog.records if r.getMessage() == "render still failing"]
        # the failures since the line before: the first counts the unlogged one of the cycles above
        assert [(x["source"], x["failures"]) for x in lines] == [("bad", 2), ("bad", 1)]
        assert lines[0]["error"].startswith("ValueError: Unknown format code")
    await scheduler.stop()
