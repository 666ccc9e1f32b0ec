"""End to end: the exporter itself dies -> JobQueueExporterDown pages through Alertmanager; it
comes back -> the page resolves. Proves the alert's `job=~".*jobqueue.*"` selector on a real scrape.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.support import ROOT, exporter_args, monitoring, process, wait_until
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e

CONFIG = """
sources:
  - name: host
    type: system
    interval: 1s
    timeout: 900ms
"""


def test_exporter_down_pages_and_resolves(tmp_path: Path) -> None:
    config = tmp_path / "exporter.yaml"
    config.write_text(CONFIG)
    port = free_port()
    args, env = exporter_args(config, port), {"PYTHONPATH": str(ROOT)}
    first = process(args, tmp_path, "exporter", port, env=env)
    first.__enter__()  # before Prometheus, so that no scrape fails before the test stops it
    try:
        with monitoring(tmp_path, port) as (prometheus, webhook):
            wait_until("the exporter scraped", lambda: prometheus.query('up{job="jobqueue-exporter"} == 1'),
                       timeout=30)
            first.__exit__(None, None, None)  # terminate the exporter
            first = None
            wait_until("JobQueueExporterDown firing at the pager receiver",
                       lambda: webhook.alerts("/pager", "JobQueueExporterDown", "firing"), timeout=40)
            (firing,) = webhook.alerts("/pager", "JobQueueExporterDown", "firing")[:1]
            assert firing["labels"]["job"] == "jobqueue-exporter"
            assert firing["labels"]["instance"] == f"127.0.0.1:{port}"
            assert firing["labels"]["severity"] == "critical"
            with process(args, tmp_path, "exporter-again", port, env=env):
                wait_until("JobQueueExporterDown resolved at the pager receiver",
                           lambda: webhook.alerts("/pager", "JobQueueExporterDown", "resolved"), timeout=40)
            assert not webhook.alerts("/ticket", "JobQueueExporterDown", "firing")
    finally:
        if first is not None:
            first.__exit__(None, None, None)
