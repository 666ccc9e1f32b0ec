"""Hostile or odd input found by review: each once made a 500, a crash or a dead collection loop."""

from __future__ import annotations

import asyncio
from typing import Literal

from exporter.metrics import TEXT
from exporter.model import QueueStats, Reading, Sample, Snapshot
from exporter.scheduler import Scheduler
from exporter.sources.base import Source, SourceConfig, SourceContext
from exporter.values import as_number, iso
from exporter.web.shims.platform import alertmanager_alerts


class StubConfig(SourceConfig):
    type: Literal["stub"] = "stub"


class Counting(Source):
    backend = "stub"
    config_model = StubConfig

    def __init__(self, name: str) -> None:
        super().__init__(StubConfig(name=name, interval=0.02, timeout=0.02), SourceContext(lambda: Snapshot()))
        self.calls = 0

    async def collect(self) -> Reading:
        self.calls += 1
        return Reading(queues=(QueueStats("q", self.calls, ""),))


async def test_a_crashing_listener_neither_stops_collection_nor_freezes_metrics() -> None:
    source = Counting("a")
    scheduler = Scheduler([source])

    def broken(snapshot: Snapshot) -> None:
        raise OverflowError("int too large to convert to float")

    scheduler.listeners.append(broken)
    scheduler.producers.append(lambda snapshot: [Sample("jobqueue_health_status", ("s", "ok"), 1 / 0)])
    scheduler.start()
    deadline = asyncio.get_running_loop().time() + 10
    while source.calls < 5:
        assert asyncio.get_running_loop().time() < deadline, "collection stopped"
        await asyncio.sleep(0.01)
    await scheduler.stop()
    text = scheduler.exposition.body(TEXT).decode()
    depth = int(text.split('jobqueue_depth{source="a",tenant="",queue="q"} ')[1].split("\n")[0])
    assert depth >= 4  # fresh, not the first cycle's value


def test_numbers_and_times_out_of_range_are_not_numbers() -> None:
    assert as_number(10**400) is None
    assert iso(1_700_000_000_123_456) is None  # microseconds read as seconds: year 55840
    assert iso(1e20) is None
    assert iso(1_700_000_000) == "2023-11-14T22:13:20Z"


def test_alertmanager_answer_of_the_wrong_shape_is_skipped_not_a_500() -> None:
    raw = ["text", {"labels": ["x"], "annotations": "y", "status": "z", "startsAt": "2026-11-23T10:00:00Z"},
           {"labels": {"severity": "critical", "system": "mail"}, "annotations": {"summary": "Down."},
            "status": {"state": "active"}, "startsAt": "2026-11-23T10:00:00Z", "fingerprint": "f1"}]
    alerts = alertmanager_alerts(raw, 24, None, 1_795_435_200.0)
    assert [(a["id"], a["severity"], a["service"], a["acknowledged"]) for a in alerts] == [
        ("alert_", "warning", None, False), ("alert_f1", "error", "mail", False)]
