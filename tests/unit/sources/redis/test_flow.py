"""The shared flow helpers of the Redis layouts and the Celery event state, on exact inputs."""

from __future__ import annotations

import base64
import json
import tracemalloc
from typing import Any

import pytest

from exporter.model import QueueStats, Reading, Sample, unique_series
from exporter.sources.redis import events as celery_events
from exporter.sources.redis.events import MAX_HOSTNAME, MAX_NAME, MAX_UUID, CeleryEvents
from exporter.sources.redis.layouts.base import Parsed, Retained, Workers, merge_flow


def test_retained_counts_never_go_down_when_workers_leave_or_restart() -> None:
    kept = Retained()
    assert kept.total({"a": (5, 1), "b": (2, 0)}, 2) == (7, 1)
    assert kept.total({"a": (6, 1)}, 2) == (8, 1)  # b exited: its last counts stay
    assert kept.total({"a": (1, 0)}, 2) == (9, 1)  # a restarted under its name: from 0 again
    assert kept.total({}, 2) == (9, 1)


def test_workers_count_under_every_queue_and_emit_zeros_for_known_queues() -> None:
    out = Parsed()
    workers = Workers("t")
    workers.add(["a", "b", "a"], "busy", capacity=4, busy=2)
    workers.add([], "idle", capacity=1, busy=0)
    workers.emit(out, ["c"])
    got = {(s.metric, s.labels): s.value for s in out.samples}
    assert got[("jobqueue_workers", ("t", "a", "busy"))] == 1  # a repeated queue counts once
    assert got[("jobqueue_workers", ("t", "c", "idle"))] == 0
    assert got[("jobqueue_workers", ("t", "", "idle"))] == 1
    assert got[("jobqueue_worker_capacity", ("t", "b"))] == 4
    assert got[("jobqueue_worker_busy_slots", ("t", "c"))] == 0


def test_merge_flow_adds_up_libraries_sharing_a_label_set() -> None:
    samples = [Sample("jobqueue_jobs_processed", ("", ""), 3), Sample("jobqueue_depth", ("", "q"), 1),
               Sample("jobqueue_jobs_processed", ("", ""), 4), Sample("jobqueue_job_runtime_seconds", ("", ""), 1.0),
               Sample("jobqueue_job_runtime_seconds", ("", ""), 9.0)]
    assert merge_flow(samples) == [Sample("jobqueue_jobs_processed", ("", ""), 7),
                                   Sample("jobqueue_depth", ("", "q"), 1),
                                   Sample("jobqueue_job_runtime_seconds", ("", ""), 1.0)]


def test_a_named_queue_of_two_layouts_is_a_collision_not_a_sum() -> None:
    """Two apps' `default` under one tenant: depth and workers both come from the first layout, the
    rest counted as collisions, so a backlog beside another app's live workers still shows no worker."""
    first = [Sample("jobqueue_workers", ("", "default", "idle"), 0),
             Sample("jobqueue_jobs_processed", ("", "default"), 5)]
    second = [Sample("jobqueue_workers", ("", "default", "idle"), 3),
              Sample("jobqueue_jobs_processed", ("", "default"), 7)]
    merged = merge_flow([*first, *second])
    assert merged == [*first, *second]  # passed on untouched
    reading = unique_series(Reading((QueueStats("default", 9, ""), QueueStats("default", 0, "")), tuple(merged),
                                    0.0))
    assert [q.depth for q in reading.queues] == [9]
    assert list(reading.samples) == first
    assert reading.collisions == (("jobqueue_depth", "", "default"), ("jobqueue_workers", "", "default", "idle"),
                                  ("jobqueue_jobs_processed", "", "default"))


def message(*events: dict[str, Any], multi: bool = False) -> str:
    body = json.dumps(list(events) if multi else events[0]).encode()
    return json.dumps({"body": base64.b64encode(body).decode(), "properties": {"body_encoding": "base64"}})


def test_celery_events_state() -> None:
    state = CeleryEvents("/0.celeryev/", task_cap=1)
    state.handle(message({"type": "worker-heartbeat", "hostname": "w1", "freq": 2.0, "active": 3}), 100.0)
    state.handle(message({"type": "worker-heartbeat", "hostname": "w2", "freq": 2.0, "active": 0}), 100.0)
    state.handle(message({"type": "task-received", "uuid": "u1", "name": "a"},
                         {"type": "task-received", "uuid": "u2", "name": "b"},
                         {"type": "task-succeeded", "uuid": "u1", "runtime": 0.5},
                         {"type": "task-failed", "uuid": "u2"},
                         {"type": "task-succeeded", "uuid": "never-received", "runtime": 1.5}, multi=True), 101.0)
    state.handle("not json", 101.0)
    state.handle(message({"no": "type"}), 101.0)
    state.handle(message({"type": "worker-offline", "hostname": "w2"}), 102.0)
    heard = state.freeze(103.0)
    assert heard.workers == (("w1", 104.0, 3),)  # alive until 100 + 2 x 2 (celery heartbeat_expires)
    # the cap of one name: b and the unnamed task go under "other"
    assert heard.tasks == (("a", 1, 0, 0.5), ("other", 1, 1, 1.5))
    assert (heard.succeeded, heard.failed, heard.runtime, heard.malformed) == (2, 1, 1.0, 2)
    again = state.freeze(104.5)
    assert (again.workers, again.runtime, again.malformed) == ((), None, 0)  # expired; a new window
    assert state.channels[0] == "/0.celeryev/worker.heartbeat"


def test_a_parse_left_running_by_a_timeout_never_overlaps_the_next() -> None:
    """The scheduler's timeout cancels the await, not the parse thread: the next cycle's parse must wait
    for it, or both update the same Retained counts (RQ) at once and a counter jumps."""
    import threading

    from exporter.sources.redis.layouts.base import Plan
    from tests.support.redis_libs import make_source

    source = make_source("redis://127.0.0.1:1/0", [{"layout": "rq", "queues": ["q"]}])
    entered, release, second = threading.Event(), threading.Event(), threading.Event()

    def slow(replies: list[Any], now: float, out: Parsed) -> None:
        entered.set()
        release.wait(10)

    def fast(replies: list[Any], now: float, out: Parsed) -> None:
        second.set()

    first = threading.Thread(target=source._parse, args=([Plan([], slow)], [(0, None)], [], 0.0, 0.0, 0))
    first.start()
    assert entered.wait(10)
    later = threading.Thread(target=source._parse, args=([Plan([], fast)], [(0, None)], [], 0.0, 0.0, 0))
    later.start()
    overlapped = second.wait(0.5)
    release.set()
    first.join()
    later.join()
    assert not overlapped
    assert second.is_set()  # it ran, after the first


def test_celery_events_with_nan_infinite_or_negative_numbers_never_stop_the_listener() -> None:
    """Anyone may PUBLISH on the event topic, and kombu's JSON reads NaN and Infinity: `active: NaN` raised
    out of handle() and ended the listener for good (workers then expire, counters freeze); `freq:
    Infinity` kept a worker live forever; a NaN or negative runtime poisoned a summed counter."""
    state = CeleryEvents("/0.celeryev/")
    state.handle('{"body": "{\\"type\\": \\"worker-heartbeat\\", \\"hostname\\": \\"w1\\", \\"active\\": NaN}"}',
                 100.0)
    state.handle('{"body": "{\\"type\\": \\"worker-heartbeat\\", \\"hostname\\": \\"w2\\", \\"freq\\": Infinity}"}',
                 100.0)
    state.handle(message({"type": "task-received", "uuid": "u1", "name": "a"},
                         {"type": "task-succeeded", "uuid": "u1", "runtime": -5.0}, multi=True), 100.0)
    state.handle('{"body": "{\\"type\\": \\"task-succeeded\\", \\"uuid\\": \\"u2\\", \\"runtime\\": NaN}"}', 100.0)
    heard = state.freeze(101.0)
    assert heard.workers == (("w1", 104.0, 0), ("w2", 104.0, 0))  # Celery's defaults: freq 2 s, 0 active
    assert heard.tasks == (("a", 1, 0, 0.0), ("unknown", 1, 0, 0.0))
    assert (heard.succeeded, heard.runtime) == (2, 0.0)
    assert state.freeze(104.5).workers == ()  # w2 expired like any other


def test_a_celery_runtime_over_a_year_reads_as_absent_so_sums_stay_finite() -> None:
    """Two runtimes of 1e308 are each finite, but their sum is not: the task's runtime counter would
    read +Inf for good. Over MAX_RUNTIME a runtime reads as 0, as a NaN does."""
    state = CeleryEvents("/0.celeryev/")
    state.handle(message({"type": "task-received", "uuid": "u1", "name": "a"},
                         {"type": "task-succeeded", "uuid": "u1", "runtime": 1e308},
                         {"type": "task-received", "uuid": "u2", "name": "a"},
                         {"type": "task-succeeded", "uuid": "u2", "runtime": 1e308},
                         {"type": "task-received", "uuid": "u3", "name": "a"},
                         {"type": "task-succeeded", "uuid": "u3", "runtime": 2.5}, multi=True), 100.0)
    heard = state.freeze(101.0)
    assert heard.tasks == (("a", 3, 0, 2.5),)
    assert (heard.succeeded, heard.runtime) == (3, 2.5 / 3)


def sized(size: int, char: str) -> str:
    """A string of exactly `size` UTF-8 bytes: `char` repeated, then ASCII to fill."""
    width = len(char.encode())
    return char * (size // width) + "x" * (size % width)


def test_celery_events_keep_what_one_publisher_sends_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the listener keeps is bounded whatever is published: a worker event needs a hostname and a
    task event a uuid (before, a heartbeat without one was a live worker "" and a task event without
    one was filed under "None"), kept strings are bounded in UTF-8 bytes (10,000 uuids of 1 MiB each
    were 10 GB; then a bound of 1,024 characters let each be 1,024 emoji, 4 KiB), a heartbeat `freq`
    reads as at most an hour (1e300 kept a worker live forever) and at most WORKERS_KEPT workers are
    kept; each skipped event is one malformed count."""
    monkeypatch.setattr(celery_events, "WORKERS_KEPT", 2)
    state = CeleryEvents("/0.celeryev/")
    # at each bound, in 2- and 4-byte characters; one byte more is fewer characters than the bound
    host, uuid, name = sized(MAX_HOSTNAME, "\u00e9"), sized(MAX_UUID, "\U0001f600"), sized(MAX_NAME, "\u20ac")
    state.handle(b"\xff not UTF-8", 100.0)  # what redis-py hands the listener: undecoded bytes
    state.handle(message({"type": "worker-heartbeat", "freq": 2.0},
                         {"type": "worker-heartbeat", "hostname": ["w"]},
                         {"type": "worker-heartbeat", "hostname": sized(MAX_HOSTNAME + 1, "\u00e9")},
                         {"type": "worker-heartbeat", "hostname": host, "freq": 1e300},
                         {"type": "worker-heartbeat", "hostname": "w2"},
                         {"type": "worker-heartbeat", "hostname": "w3"},  # a third: over the cap
                         {"type": "worker-heartbeat", "hostname": "w2", "active": 1},  # one it knows
                         {"type": "task-received", "name": "a"},
                         {"type": "task-received", "uuid": sized(MAX_UUID + 1, "\U0001f600"), "name": "a"},
                         {"type": "task-received", "uuid": "u1", "name": sized(MAX_NAME + 1, "\u20ac")},
                         {"type": "task-received", "uuid": "u1", "name": {"n": 1}},
                         {"type": "task-received", "uuid": uuid, "name": name},
                         {"type": "task-succeeded", "runtime": 1.0},
                         {"type": "task-succeeded", "uuid": uuid, "runtime": 1.0}, multi=True), 100.0)
    assert state.malformed == 10 and state.why == "not UTF-8"
    heard = state.freeze(100.0)
    assert heard.workers == (("w2", 104.0, 1), (host, 100.0 + 3600 * 2, 0))
    assert heard.tasks == ((name, 1, 0, 1.0),)
    assert (heard.succeeded, heard.malformed, heard.why) == (1, 10, "not UTF-8")
    assert list(state.names) == [] and (state.malformed, state.why) == (0, "")
    assert state.freeze(100.0 + 7201).workers == ()  # the first expired after an hour's freq x 2
    for event, why in (({"type": "worker-offline", "hostname": sized(MAX_HOSTNAME + 1, "\U0001f600")},
                        f"a hostname over {MAX_HOSTNAME} bytes"),
                       ({"type": "task-failed", "uuid": sized(MAX_UUID + 1, "\u00e9")},
                        f"a task uuid over {MAX_UUID} bytes"),
                       ({"type": "task-received", "uuid": "u", "name": sized(MAX_NAME + 1, "\u00e9")},
                        f"a task name over {MAX_NAME} bytes")):
        state.handle(message(event), 100.0)
        assert state.freeze(100.0).why == why


@pytest.mark.timeout(120)
def test_celery_events_hold_a_measured_bound_whatever_is_published() -> None:
    """The worst case, measured: every table full (WORKERS_KEPT workers, NAMES_KEPT received tasks
    with their names, task_cap counted names at its largest, 10,000) and every string at its bound
    with one emoji in it (Python then keeps each of its characters in 4 bytes), the state and the
    frozen copy a collection reads. Before (a bound of 1,024 characters), 10,000 workers and 10,000
    names of emoji held 121 MiB; at task_cap 100 this holds 48 MiB (the figure in events.py)."""
    def worst(size: int, i: int) -> str:
        return f"{i:06d}\U0001f600" + "x" * (size - 10)

    def send(*events: dict[str, Any]) -> None:
        state.handle(json.dumps({"body": json.dumps(list(events)), "properties": {}}), 0.0)

    state = CeleryEvents("/0.celeryev/", task_cap=10000)
    tracemalloc.start()
    try:
        for i in range(state.task_cap):
            send({"type": "task-received", "hostname": "h", "uuid": worst(MAX_UUID, i), "name": worst(MAX_NAME, i)},
                 {"type": "task-succeeded", "hostname": "h", "uuid": worst(MAX_UUID, i), "runtime": 1.0})
        for i in range(max(celery_events.WORKERS_KEPT, celery_events.NAMES_KEPT)):
            send({"type": "worker-heartbeat", "hostname": worst(MAX_HOSTNAME, i), "freq": 3600},
                 {"type": "task-received", "hostname": "h", "uuid": worst(MAX_UUID, 10**5 + i),
                  "name": worst(MAX_NAME, i)})
        send({"type": "task-received", "uuid": worst(MAX_UUID + 1, 0)})
        heard = state.freeze(0.0)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert (len(heard.workers), len(state.names), len(heard.tasks), heard.malformed) == (10000, 10000, 10000, 1)
    assert len(heard.workers[0][0].encode()) == MAX_HOSTNAME and len(heard.tasks[0][0].encode()) == MAX_NAME
    assert held < 80 << 20  # measured 70 MiB (CPython 3.11); a bound, not a timing: tables full is asserted above
