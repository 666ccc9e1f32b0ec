"""The whole exposition of a fixed snapshot, byte for byte against a checked-in file, in both formats (as
node_exporter's e2e fixture). After a deliberate change, rewrite the files with
`UPDATE_GOLDEN=1 python3 -m pytest tests/unit/test_exposition_golden.py` and review the diff.

The process collector's own series (CPU, memory of this test process) and the version are not fixed, so
they are left out and masked."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from exporter import __version__
from exporter.health.config import SystemConfig
from exporter.health.evaluation import HealthMonitor
from exporter.metrics import OPENMETRICS, TEXT, Renderer, exporter_samples
from exporter.model import QueueStats, Sample
from tests.support import builders

GOLDEN = Path(__file__).parent / "golden"
NOW = builders.NOW


def snapshot_bytes(fmt: str) -> str:
    redis = builders.reading(
        [QueueStats("events", 3, "t1", NOW - 42.5), QueueStats("events", 0, "t2"),
         QueueStats("default", 7, "", NOW - 5, (("delayed", 2), ("reserved", 1)), failed=4, wait_seconds=7,
                    paused=False)],
        [Sample("jobqueue_tenants", (), 2), Sample("jobqueue_jobs_processed", ("t1", "events"), 120),
         Sample("jobqueue_workers", ("", "default", "busy"), 2)],
        latency=0.0015, malformed=1)
    up = builders.status("redis", True, NOW, duration=0.02, collections=5)
    down = builders.status("pg", False, NOW, backend="postgres", duration=5.0, last_success=NOW - 300, collections=5)
    renderer = Renderer()
    fragments = [renderer.source(up, redis, {}, interval=15.0),
                 renderer.source(down, None, {"unreachable": 3}, interval=30.0)]
    system = SystemConfig.model_validate({"name": "shop", "sources": ["redis", "pg"],
                                          "queues": [{"source": "redis", "queue": "default"}]})
    monitor = HealthMonitor([system], clock=lambda: NOW)
    snap = builders.snapshot(builders.state("redis", redis, duration=0.02),
                             builders.state("pg", None, backend="postgres"))
    monitor(snap)
    derived = [renderer.samples(monitor.samples(snap)), renderer.samples(exporter_samples("abc123", (1, 3)))]
    text = renderer.exposition([*fragments, *derived]).body(fmt).decode()
    return own_series_only(text).replace(f'version="{__version__}"', 'version="VERSION"')


def own_series_only(text: str) -> str:
    """The exporter's own families (`jobqueue_*`), without the process collector's."""
    name = re.compile(r"^(?:# (?:HELP|TYPE|UNIT) )?([a-zA-Z_:][a-zA-Z0-9_:]*)")
    kept = [line for line in text.splitlines(keepends=True)
            if line == "# EOF\n" or ((m := name.match(line)) is not None and m.group(1).startswith("jobqueue_"))]
    return "".join(kept)


@pytest.mark.parametrize(("fmt", "file"), [(TEXT, "exposition.prom"), (OPENMETRICS, "exposition.om")])
def test_exposition_matches_the_golden_file(fmt: str, file: str) -> None:
    body = snapshot_bytes(fmt)
    path = GOLDEN / file
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(body)
    assert body == path.read_text(), f"{file} drifted; run with UPDATE_GOLDEN=1 and review the diff"
