"""Stopping the scheduler ends in bounded time whatever its sources do (issue 18).

The hang found: a test stopped the app after load, and the scheduler's stop waited forever for a
source task that had swallowed its cancellation. Python 3.11's asyncio.wait_for does that when the
cancel arrives as its inner future completes (Lib/asyncio/tasks.py, 3.11.7, wait_for:
`except exceptions.CancelledError: if fut.done(): return fut.result()`), and the Redis wire waits for
its connects with wait_for (exporter/sources/redis/wire.py, Wire._connect), as redis-py and asyncpg do.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import threading
from typing import Literal

import pytest

from exporter.model import QueueStats, Reading
from exporter.scheduler import STOP_GRACE, Scheduler
from exporter.sources.base import Source, SourceConfig, SourceContext

# stop() waits at most about 3 * STOP_GRACE + 1 s; the tests allow far more (a loaded machine), and
# only fail when stop() does not return at all
NEVER = 10 * STOP_GRACE + 30


class StubConfig(SourceConfig):
    type: Literal["stub"] = "stub"


def reading() -> Reading:
    return Reading(queues=(QueueStats("q", 1, ""),))  # type: ignore[call-overload]


class RacingSource(Source):
    """Collects by waiting for its backend with asyncio.wait_for, like Wire._connect; `answer()`
    makes the backend answer, so the answer and the scheduler's cancel arrive together."""

    backend = "stub"
    config_model = StubConfig

    def __init__(self, name: str) -> None:
        super().__init__(StubConfig(name=name, interval=0.2, timeout=0.2), SourceContext(lambda: None))
        self.waiting: asyncio.Future[None] | None = None
        self.closed = False

    async def collect(self) -> Reading:
        self.waiting = asyncio.get_running_loop().create_future()
        await asyncio.wait_for(self.waiting, 30)
        return reading()

    def answer(self) -> None:
        assert self.waiting is not None
        self.waiting.set_result(None)

    async def close(self) -> None:
        self.closed = True


class StubbornSource(Source):
    """Swallows every cancellation while collecting and while closing, until `release` is set."""

    backend = "stub"
    config_model = StubConfig

    def __init__(self, name: str, release: threading.Event) -> None:
        super().__init__(StubConfig(name=name, interval=0.2, timeout=0.2), SourceContext(lambda: None))
        self.release = release
        self.collecting = threading.Event()

    async def _ignore_cancellation(self) -> None:
        while not self.release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.02)

    async def collect(self) -> Reading:
        self.collecting.set()
        await self._ignore_cancellation()
        return reading()

    async def close(self) -> None:
        await self._ignore_cancellation()


class PoliteSource(Source):
    backend = "stub"
    config_model = StubConfig

    def __init__(self, name: str) -> None:
        super().__init__(StubConfig(name=name, interval=0.2, timeout=0.2), SourceContext(lambda: None))
        self.closed = False

    async def collect(self) -> Reading:
        return reading()

    async def close(self) -> None:
        self.closed = True


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="asyncio.wait_for swallows no cancellation since 3.12")
async def test_stop_ends_a_source_whose_cancellation_wait_for_swallowed() -> None:
    racing = RacingSource("racing")
    scheduler = Scheduler([racing])
    scheduler.start()
    for _ in range(100):  # until the collection waits on its backend (bounded)
        if racing.waiting is not None:
            break
        await asyncio.sleep(0.01)
    task = scheduler._tasks["racing"]
    racing.answer()  # the answer and stop()'s cancel land in the same turn of the loop
    await asyncio.wait_for(scheduler.stop(), NEVER)
    assert task.done() and racing.closed


@pytest.mark.parametrize("threaded", [False, True], ids=["same-loop", "collector-thread"])
async def test_stop_abandons_a_source_that_ignores_cancellation_and_never_closes(
        threaded: bool, caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()
    stubborn, polite = StubbornSource("stubborn", release), PoliteSource("polite")
    scheduler = Scheduler([stubborn, polite])
    scheduler.start(threaded=threaded)
    try:
        assert await asyncio.to_thread(stubborn.collecting.wait, 30)
        with caplog.at_level(logging.WARNING, logger="jobqueue.scheduler"):
            await asyncio.wait_for(scheduler.stop(), NEVER)
        warnings = [(r.getMessage(), getattr(r, "task", None) or getattr(r, "source", None)) for r in caplog.records]
        assert ("source task did not stop when cancelled; abandoned", "source:stubborn") in warnings
        assert ("source did not close in time; abandoned", "stubborn") in warnings
        assert polite.closed  # the others are stopped and closed all the same
    finally:
        release.set()  # the abandoned task and close end now, so the test's own loop can close
        await asyncio.sleep(0.1)
        # those left on the collector's closed loop can never end: collect them here, inside the test,
        # not at a random later moment of the run (their "destroyed but pending" line then crashed pytest)
        del scheduler, stubborn
        gc.collect()
