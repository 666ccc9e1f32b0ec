"""The example Alertmanager config in a real Alertmanager: inhibitions and quiet hours do what
docs/alerting.md says. Alerts are posted to its API; notifications land in a local webhook.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.support import Webhook, alertmanager_config, binary, process, wait_until
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e

ALWAYS = [{"times": [{"start_time": "00:00", "end_time": "24:00"}]}]
NEVER = [{"years": ["2000"]}]


@contextmanager
def alertmanager(tmp: Path, quiet_hours: list[dict[str, Any]] | None = None) -> Iterator[tuple[str, Webhook]]:
    """A real Alertmanager with the example config; `quiet_hours` replaces the interval's definition."""
    with Webhook() as webhook:
        path = alertmanager_config(tmp / "am.yml", webhook.url)
        if quiet_hours is not None:
            config = yaml.safe_load(path.read_text())
            (quiet,) = [t for t in config["time_intervals"] if t["name"] == "quiet-hours"]
            quiet["time_intervals"] = quiet_hours
            path.write_text(yaml.safe_dump(config, sort_keys=False))
        port = free_port()
        args = [binary("prometheus-alertmanager", "alertmanager"), f"--config.file={path}",
                f"--storage.path={tmp / 'am-data'}", f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=", "--log.level=warn"]
        with process(args, tmp, "alertmanager", port):
            yield f"http://127.0.0.1:{port}", webhook


def post(base: str, alerts: list[dict[str, str]]) -> None:
    body = json.dumps([{"labels": {"instance": "e:9839", **a}, "annotations": {"summary": "Test."}}
                       for a in alerts]).encode()
    request = urllib.request.Request(f"{base}/api/v2/alerts", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200


def states(base: str) -> dict[tuple[str, str, str], str]:
    """(alertname, severity, queue/system/source) -> active | suppressed."""
    with urllib.request.urlopen(f"{base}/api/v2/alerts", timeout=10) as resp:
        alerts = json.load(resp)
    out = {}
    for a in alerts:
        labels = a["labels"]
        key = labels.get("queue") or labels.get("system") or labels.get("source", "")
        out[(labels["alertname"], labels.get("severity", ""), key)] = a["status"]["state"]
    return out


def alerts(base: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{base}/api/v2/alerts", timeout=10) as resp:
        result: list[dict[str, Any]] = json.load(resp)
    return result


def delivered(webhook: Webhook, path: str) -> set[tuple[str, str, str]]:
    out = set()
    for p, body in list(webhook.received):
        if p == path:
            for a in body["alerts"]:
                labels = a["labels"]
                key = labels.get("queue") or labels.get("system") or labels.get("source", "")
                out.add((labels["alertname"], labels.get("severity", ""), key))
    return out


def test_inhibitions(tmp_path: Path) -> None:
    with alertmanager(tmp_path, quiet_hours=NEVER) as (base, webhook):
        post(base, [
            {"alertname": "JobQueueDepthHigh", "severity": "critical", "source": "cache", "queue": "q1"},
            {"alertname": "JobQueueDepthHigh", "severity": "warning", "source": "cache", "queue": "q1"},
            {"alertname": "JobQueueDepthHigh", "severity": "warning", "source": "cache", "queue": "q2"},
            {"alertname": "JobQueueSystemUnhealthy", "severity": "critical", "system": "s1"},
            {"alertname": "JobQueueSystemDegraded", "severity": "warning", "system": "s1"},
            {"alertname": "JobQueueSystemDegraded", "severity": "warning", "system": "s2"},
            {"alertname": "JobQueueSourceDown", "severity": "critical", "source": "db", "backend": "postgres"},
            {"alertname": "JobQueueCollectionStale", "severity": "critical", "source": "db"},
            {"alertname": "JobQueueExporterDown", "severity": "critical", "job": "jq", "instance": "r1:9839"},
            {"alertname": "JobQueueShardsMismatch", "severity": "critical", "job": "jq", "instance": ""},
            {"alertname": "JobQueueNoWorkers", "severity": "critical", "source": "cache", "tenant": "t1",
             "queue": "q3"},
            {"alertname": "JobQueueStuck", "severity": "critical", "source": "cache", "tenant": "t1", "queue": "q3"},
            {"alertname": "JobQueueThroughputStalled", "severity": "critical", "source": "cache", "tenant": "t1",
             "queue": "q3"},
            {"alertname": "JobQueueStuck", "severity": "critical", "source": "cache", "tenant": "t2", "queue": "q3"},
        ])
        wait_until("pages and tickets delivered", lambda: len(delivered(webhook, "/pager")) >= 6
                   and len(delivered(webhook, "/ticket")) >= 2, timeout=20)
        time.sleep(2)  # a few group intervals: anything not inhibited has been delivered by now
        assert delivered(webhook, "/pager") == {
            ("JobQueueDepthHigh", "critical", "q1"), ("JobQueueSystemUnhealthy", "critical", "s1"),
            ("JobQueueSourceDown", "critical", "db"), ("JobQueueExporterDown", "critical", ""),
            ("JobQueueNoWorkers", "critical", "q3"), ("JobQueueStuck", "critical", "q3")}
        assert delivered(webhook, "/ticket") == {
            ("JobQueueDepthHigh", "warning", "q2"), ("JobQueueSystemDegraded", "warning", "s2")}
        seen = states(base)
        assert seen[("JobQueueDepthHigh", "warning", "q1")] == "suppressed"
        assert seen[("JobQueueSystemDegraded", "warning", "s1")] == "suppressed"
        assert seen[("JobQueueCollectionStale", "critical", "db")] == "suppressed"
        assert seen[("JobQueueShardsMismatch", "critical", "")] == "suppressed"
        assert seen[("JobQueueDepthHigh", "warning", "q2")] == "active"
        assert seen[("JobQueueThroughputStalled", "critical", "q3")] == "suppressed"
        stuck = [a["status"]["state"] for a in alerts(base) if a["labels"]["alertname"] == "JobQueueStuck"]
        assert sorted(stuck) == ["active", "suppressed"]  # tenant t1's stuck waits, tenant t2's pages


@pytest.mark.parametrize(("quiet", "ticketed"), [(ALWAYS, False), (NEVER, True)], ids=["in-quiet-hours", "outside"])
def test_quiet_hours_mute_tickets_never_pages(tmp_path: Path, quiet: list[dict[str, Any]], ticketed: bool) -> None:
    with alertmanager(tmp_path, quiet_hours=quiet) as (base, webhook):
        post(base, [
            {"alertname": "JobQueueSourceDown", "severity": "critical", "source": "cache", "backend": "redis"},
            {"alertname": "JobQueueDepthHigh", "severity": "warning", "source": "other", "queue": "q9"},
        ])
        wait_until("the page", lambda: delivered(webhook, "/pager"), timeout=20)
        if ticketed:
            wait_until("the ticket", lambda: delivered(webhook, "/ticket"), timeout=20)
        else:
            time.sleep(3)
        assert delivered(webhook, "/pager") == {("JobQueueSourceDown", "critical", "cache")}
        assert delivered(webhook, "/ticket") == ({("JobQueueDepthHigh", "warning", "q9")} if ticketed else set())
