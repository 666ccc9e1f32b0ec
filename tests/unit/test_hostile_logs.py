"""Outages are logged as state changes, not one traceback per cycle (issue 15, item 5)."""

from __future__ import annotations

import io
import logging

import pytest

from exporter import scheduler as scheduler_module
from exporter.log import JsonFormatter, OneLineLibraries, TextFormatter
from exporter.scheduler import Scheduler
from exporter.sources.base import SourceError, SourceUnreachable
from tests.unit.test_scheduler import ScriptedSource


class Denied(SourceError):
    kind = "denied"


def events(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str | None]]:
    return [(r.getMessage(), getattr(r, "kind", None)) for r in caplog.records if r.name == "jobqueue.scheduler"]


async def test_an_outage_is_one_line_down_one_line_back(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="jobqueue.scheduler")
    lost = SourceUnreachable("connection refused")
    source = ScriptedSource("a", [1, lost, lost, lost, lost, Denied("no"), Denied("no"), 2, 3])
    scheduler = Scheduler([source])
    for _ in range(9):
        await scheduler.collect_once()
    assert events(caplog) == [("collect failed", "unreachable"), ("collect failed", "denied"),
                              ("collect recovered", None)]
    back = next(r for r in caplog.records if r.getMessage() == "collect recovered")
    assert back.failures == 2  # type: ignore[attr-defined]  # the denied spell; the kind change started it
    assert all(r.exc_info is None for r in caplog.records)


async def test_a_long_outage_is_reminded_every_few_minutes(caplog: pytest.LogCaptureFixture,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.INFO, logger="jobqueue.scheduler")
    monkeypatch.setattr(scheduler_module, "REMIND_AFTER", 0.0)
    lost = SourceUnreachable("connection refused")
    scheduler = Scheduler([ScriptedSource("a", [lost, lost, lost])])
    for _ in range(3):
        await scheduler.collect_once()
    assert [m for m, _ in events(caplog)] == ["collect failed", "collect still failing", "collect still failing"]
    assert [getattr(r, "failures", None) for r in caplog.records][1:] == [2, 3]


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()])
def test_library_tracebacks_become_one_line(formatter: logging.Formatter) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(OneLineLibraries())
    handler.setFormatter(formatter)
    library, own = logging.getLogger("asyncpg.pool"), logging.getLogger("jobqueue.test")
    for logger in (library, own):
        logger.addHandler(handler)
        logger.propagate = False
    try:
        try:
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")
        except ConnectionRefusedError:
            library.warning("Failed to restore the pool connection floor; retrying", exc_info=True)
            own.error("collect crashed", exc_info=True)  # our own bugs keep their traceback
    finally:
        for logger in (library, own):
            logger.removeHandler(handler)
            logger.propagate = True
    first, *rest = stream.getvalue().splitlines()
    assert "Failed to restore the pool connection floor" in first
    assert "ConnectionRefusedError: [Errno 111] Connect call failed" in first
    assert "Traceback" in stream.getvalue().split("collect crashed", 1)[1]
    assert "Traceback" not in first and len(rest) >= 1
