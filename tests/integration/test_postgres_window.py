"""The finished window read incrementally, against real rows of River's schema (its
river_job_state_and_finalized_at_index, riverpgxv5/migration/main/002_initial_schema.up.sql), over
several cycles of one source: every cycle's figure is the full count `finalized_at > now() - window`
at the `now()` of the cycle's own statement.

A 10 min window (buckets of 10 s, 20 s of overlap) keeps the wait for a bucket to expire short.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from exporter.model import Reading
from exporter.sources.postgres.presets import WINDOW_BUCKETS, FinishedWindow
from exporter.sources.postgres.source import PostgresSource
from tests.support.postgres import RIVER, admin, make_source, scratch_database

WINDOW = 600.0
BODY = "    queues:\n      - preset: river\n        schema: river\n        finished_window: 10m\n"
OUTCOME = "CASE state WHEN 'completed' THEN 'completed' WHEN 'discarded' THEN 'failed' ELSE 'cancelled' END"


@pytest.fixture()
def dsn() -> Iterator[str]:
    with scratch_database() as url:
        with admin(url) as conn:
            conn.execute("CREATE SCHEMA river;" + RIVER.format(s="river"))
        yield url


def finish(dsn: str, queue: str, state: str, ago: float, n: int = 1) -> None:
    with admin(dsn) as conn:
        conn.execute("INSERT INTO river.river_job (kind, queue, state, finalized_at) SELECT 'k', %s, "
                     "%s::river.river_job_state, now() - make_interval(secs => %s) FROM generate_series(1, %s)",
                     (queue, state, ago, n))


def full_count(dsn: str, at: float) -> dict[tuple[str, str], int]:
    """What a full read of the window counts at the database time `at` (the cycle's now())."""
    with admin(dsn) as conn:
        rows = conn.execute(f"SELECT queue, {OUTCOME}, count(*) FROM river.river_job WHERE state IN "
                            "('completed', 'discarded', 'cancelled') AND finalized_at > to_timestamp(%s) - "
                            "make_interval(secs => %s) GROUP BY 1, 2", (at, WINDOW)).fetchall()
    return {(q, o): n for q, o, n in rows}


def figure(reading: Reading) -> dict[tuple[str, str], int]:
    """The non-zero jobqueue_jobs_finished_window series by (queue, outcome)."""
    return {(labels[1], labels[2]): int(s) for labels, s in
            ((x.labels, x.value) for x in reading.samples if x.metric == "jobqueue_jobs_finished_window") if s}


async def cycle(source: PostgresSource, dsn: str, late: str = "") -> tuple[Reading, FinishedWindow]:
    """One collection; checks it against the full count at its own now() (leaving out queue `late`)."""
    reading = await source.collect()
    assert reading.details["queries"]["river"]["error"] is None
    window = source._windows[0]
    assert window.read_at is not None
    expected = {k: n for k, n in full_count(dsn, window.read_at).items() if k[0] != late}
    assert {k: n for k, n in figure(reading).items() if k[0] != late} == expected
    width = WINDOW / WINDOW_BUCKETS  # bounded: buckets only within the window, at most 60 per (queue, outcome)
    assert len(window.buckets) <= WINDOW_BUCKETS
    assert all(window.read_at - WINDOW <= at <= window.read_at + width for at in window.buckets)
    return reading, window


async def test_incremental_window_equals_a_full_count(dsn: str) -> None:
    finish(dsn, "mail", "completed", 20, 5)
    finish(dsn, "mail", "discarded", 200, 2)
    finish(dsn, "pdf", "cancelled", 400)
    finish(dsn, "pdf", "completed", 700, 3)  # before the window
    finish(dsn, "old", "completed", WINDOW - 15, 4)  # leaves the window within seconds
    source = make_source(dsn, BODY)
    try:
        reading, window = await cycle(source, dsn)  # the first cycle reads the whole window
        assert figure(reading)[("mail", "completed")] == 5
        assert ("pdf", "completed") not in figure(reading)
        assert window.since() > 0  # the next cycles read from the last read less the overlap
        finish(dsn, "mail", "completed", 0, 3)
        await cycle(source, dsn)
        # a job committed long after its finish time (older than the overlap) is not read again
        # (docs/sources/postgres.md): the documented limit, seen through queue `late`
        finish(dsn, "late", "completed", 300)
        reading, _ = await cycle(source, dsn, late="late")
        assert ("late", "completed") not in figure(reading)
        # a transaction that commits after a read, inside the overlap, is counted by the next one
        with admin(dsn) as conn:
            conn.autocommit = False
            conn.execute("INSERT INTO river.river_job (kind, queue, state, finalized_at) "
                         "VALUES ('k', 'mail', 'discarded', now())")
            reading, _ = await cycle(source, dsn, late="late")
            assert figure(reading)[("mail", "failed")] == 2
            conn.commit()
        reading, _ = await cycle(source, dsn, late="late")
        assert figure(reading)[("mail", "failed")] == 3
        # until `old` has left the window through its first, partial bucket and its buckets are dropped
        seen_old = [("old", "completed") in figure(reading)]
        deadline = time.monotonic() + 90
        while seen_old[-1] and time.monotonic() < deadline:
            await asyncio.sleep(1)
            reading, window = await cycle(source, dsn, late="late")
            seen_old.append(("old", "completed") in figure(reading))
        assert not seen_old[-1]
        assert all(key[1] != "old" for counts in window.buckets.values() for key in counts)
    finally:
        await source.close()
    # a new source (a restart, a reload) reads the whole window again: `late` is there
    source = make_source(dsn, BODY)
    try:
        reading, _ = await cycle(source, dsn)
        assert figure(reading)[("late", "completed")] == 1
    finally:
        await source.close()
