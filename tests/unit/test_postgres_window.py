"""FinishedWindow's folding of the rows `_window` (exporter/sources/postgres/presets.py) returns, cycle
after cycle: its total is the jobs finished within the window at each cycle's now(), from at most 60
buckets per (queue, outcome). The statement's rows are built here as the SQL builds them, from one
list of finish times, so the test is the definition itself (the real statement:
tests/integration/test_postgres_window.py)."""

from __future__ import annotations

import math

from exporter.sources.postgres.presets import WINDOW_BUCKETS, FinishedWindow

WINDOW = 3600.0
WIDTH = WINDOW / WINDOW_BUCKETS


def statement(finished: list[float], now: float, since: float) -> list[tuple[object, ...]]:
    """The rows of the window's statement for jobs of queue `q` finished at these Unix times."""
    edge = math.floor((now - WINDOW) / WIDTH) * WIDTH + WIDTH
    start = max(since, edge)
    buckets: dict[float, int] = {}
    first = 0
    for at in finished:
        if at >= start:
            key = math.floor(at / WIDTH) * WIDTH
            buckets[key] = buckets.get(key, 0) + 1
        elif now - WINDOW < at < edge:
            first += 1
    rows: list[tuple[object, ...]] = [("", "q", "_done_completed", n, at, 0) for at, n in buckets.items()]
    if first:
        rows.append(("", "q", "_first_completed", first, None, 0))
    return [*rows, ("", "", "_window_now", 0, now, 0), ("", "", "_window_edge", 0, edge, 0),
            ("", "q", "ready", 3, 1.0, 0)]


def test_three_hours_of_cycles_count_the_window_from_at_most_60_buckets() -> None:
    window = FinishedWindow(WINDOW)
    t0 = 1_800_000_000.0
    finished: list[float] = []
    for cycle in range(3 * 240):  # every 15 s for 3 hours, 7 jobs finishing in each
        now = t0 + cycle * 15.0
        finished += [now - 14.0 + i * 2 for i in range(7)]
        since = window.since()
        rows = window.fold(statement(finished, now, since), since)
        done = [r for r in rows if r[2] == "_done_completed"]
        assert done == [("", "q", "_done_completed", sum(now - WINDOW < at <= now for at in finished), None, 0)]
        assert ("", "q", "ready", 3, 1.0, 0) in rows  # the other rows pass through
        assert len(window.buckets) <= WINDOW_BUCKETS
        assert all(now - WINDOW <= at <= now for at in window.buckets)
        assert window.totals == {k: sum(b.get(k, 0) for b in window.buckets.values()) for k in window.totals}
        if cycle:
            assert since >= now - 15.0 - 3 * WIDTH  # read only the last minutes, not the hour


def test_a_late_commit_inside_the_overlap_is_counted_and_a_reset_reads_the_whole_window() -> None:
    window = FinishedWindow(WINDOW)
    now = 1_800_000_000.0
    finished = [now - 100.0, now - 3000.0]
    window.fold(statement(finished, now, window.since()), window.since())
    finished.append(now - 5.0)  # finished before the last read, committed after it
    now += 15.0
    since = window.since()
    rows = window.fold(statement(finished, now, since), since)
    assert [r[3] for r in rows if r[2] == "_done_completed"] == [3]
    finished.append(now - 600.0)  # committed 10 minutes after it finished: past the overlap, missed
    now += 15.0
    since = window.since()
    assert [r[3] for r in window.fold(statement(finished, now, since), since) if r[2] == "_done_completed"] == [3]
    window.reset()
    assert window.since() == 0.0
    assert [r[3] for r in window.fold(statement(finished, now, 0.0), 0.0) if r[2] == "_done_completed"] == [4]
