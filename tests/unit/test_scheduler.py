"""The scheduler's contract, with sources defined here: failures are isolated and never go stale."""

from __future__ import annotations

import asyncio
from typing import Literal

from exporter.metrics import TEXT
from exporter.model import QueueStats, Reading
from exporter.scheduler import Scheduler
from exporter.sources.base import Source, SourceConfig, SourceContext, SourceUnreachable


class StubConfig(SourceConfig):
    type: Literal["stub"] = "stub"


class ScriptedSource(Source):
    """A source whose behaviour per collection is scripted: a depth, an exception, or a hang."""

    backend = "stub"
    config_model = StubConfig

    def __init__(self, name: str, script: list[object], timeout: float = 0.05) -> None:
        super().__init__(StubConfig(name=name, interval=timeout, timeout=timeout), SourceContext(lambda: None))
        self.script = script
        self.calls = 0

    async def collect(self) -> Reading:
        step = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        if step == "hang":
            await asyncio.sleep(3600)
        if isinstance(step, Exception):
            raise step
        return Reading(queues=(QueueStats("q", int(step), ""),))  # type: ignore[call-overload]


def lines(scheduler: Scheduler, source: str) -> list[str]:
    return [line for line in scheduler.exposition.body(TEXT).decode().splitlines()
            if f'source="{source}"' in line]


async def test_failure_drops_queue_series_and_recovery_restores_them() -> None:
    flaky = ScriptedSource("flaky", [5, SourceUnreachable("gone"), 7])
    scheduler = Scheduler([flaky])
    await scheduler.collect_once()
    assert 'jobqueue_depth{source="flaky",tenant="",queue="q"} 5' in lines(scheduler, "flaky")
    await scheduler.collect_once()
    now = lines(scheduler, "flaky")
    assert not any(line.startswith("jobqueue_depth") for line in now)
    assert 'jobqueue_source_up{source="flaky",backend="stub"} 0' in now
    assert 'jobqueue_collect_errors_total{source="flaky",kind="unreachable"} 1' in now
    state = scheduler.snapshot.sources["flaky"]
    assert (state.status.up, state.status.error, state.reading) == (False, "gone", None)
    await scheduler.collect_once()
    assert 'jobqueue_depth{source="flaky",tenant="",queue="q"} 7' in lines(scheduler, "flaky")
    assert 'jobqueue_collect_errors_total{source="flaky",kind="unreachable"} 1' in lines(scheduler, "flaky")


async def test_a_hung_source_times_out_without_delaying_another() -> None:
    hung = ScriptedSource("hung", ["hang"], timeout=2.0)
    fast = ScriptedSource("fast", list(range(100)))
    scheduler = Scheduler([hung, fast])
    scheduler.start()
    await wait_until(lambda: fast.calls >= 3)
    assert scheduler.snapshot.sources["hung"].status.collections == 0  # still hanging, nobody waits for it
    assert scheduler.snapshot.sources["fast"].status.up
    await wait_until(lambda: scheduler.snapshot.sources["hung"].status.collections == 1)
    status = scheduler.snapshot.sources["hung"].status
    await scheduler.stop()
    assert (status.up, status.error_kind, status.error) == (False, "timeout", "no answer within 2.0s")


async def wait_until(condition: object, limit: float = 10.0) -> None:
    """Poll a condition with a bound, so a slow machine waits longer instead of failing."""
    deadline = asyncio.get_running_loop().time() + limit
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_a_crashing_source_is_reported_as_error_kind() -> None:
    buggy = ScriptedSource("buggy", [ZeroDivisionError("oops")])
    scheduler = Scheduler([buggy])
    await scheduler.collect_once()
    status = scheduler.snapshot.sources["buggy"].status
    assert (status.up, status.error_kind, status.error) == (False, "error", "ZeroDivisionError: oops")


async def test_readiness_needs_one_collection_of_every_source() -> None:
    scheduler = Scheduler([ScriptedSource("a", [1]), ScriptedSource("b", [SourceUnreachable("x")])])
    assert not scheduler.snapshot.ready
    await scheduler.collect_once()
    assert scheduler.snapshot.ready
