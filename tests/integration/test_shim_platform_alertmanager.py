"""Seed 003 alerts from a real Alertmanager (API v2), and 503 when the configured one does not answer."""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.support import process, wait_until
from tests.support.servers import free_port
from tests.support.shims import get, serve

ENV = {"OPS_TOKEN": "ops-secret"}
OPS = {"Authorization": "Bearer ops-secret"}
ALERTS = "/api/v1/platform/system/infrastructure/alerts"


def config(am_url: str) -> str:
    return f"""
sources: [{{name: host, type: system}}]
systems: [{{name: email, sources: [host]}}]
auth: {{tokens: [{{name: ops, token: "${{OPS_TOKEN}}", roles: [ops]}}]}}
shims: {{platform: {{system: email, alertmanager_url: "{am_url}", jobs_timeout: 1s}}}}
"""


def post(url: str, alerts: list[dict[str, object]]) -> None:
    request = urllib.request.Request(f"{url}/api/v2/alerts", data=json.dumps(alerts).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 200


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


async def test_alerts_come_from_alertmanager(tmp_path: Path) -> None:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        pytest.skip("no alertmanager binary (apt-get install prometheus-alertmanager)")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    (tmp_path / "am.yml").write_text("route: {receiver: none}\nreceivers: [{name: none}]\n")
    with process([binary, f"--config.file={tmp_path / 'am.yml'}", f"--storage.path={tmp_path / 'data'}",
                  f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"],
                 tmp_path, "alertmanager", port):
        started = int(time.time()) - 600
        post(url, [
            {"labels": {"alertname": "JobQueueDepthCritical", "severity": "critical", "system": "SMTP"},
             "annotations": {"summary": "Queue size exceeded 10k threshold"}, "startsAt": iso(started)},
            {"labels": {"alertname": "JobQueueSlow", "severity": "warning", "system": "API"},
             "annotations": {"summary": "Wait above 5 minutes"}, "startsAt": iso(started + 60)},
        ])
        wait_until("alerts in alertmanager", lambda: len(json.load(urllib.request.urlopen(
            f"{url}/api/v2/alerts", timeout=5))) == 2, 10)
        async with serve(config(url), ENV) as (client, _):
            status, body = await get(client, ALERTS, **OPS)
            assert status == 200
            for alert in body["data"]["alerts"]:
                assert alert.pop("id").startswith("alert_")
            assert body["data"]["alerts"] == [
                {"timestamp": iso(started + 60), "severity": "warning", "service": "API",
                 "message": "Wait above 5 minutes", "acknowledged": False},
                {"timestamp": iso(started), "severity": "error", "service": "SMTP",
                 "message": "Queue size exceeded 10k threshold", "acknowledged": False}]
            status, body = await get(client, f"{ALERTS}?severity=error", ALERTS, **OPS)
            assert [a["service"] for a in body["data"]["alerts"]] == ["SMTP"]


async def test_an_unreachable_alertmanager_is_503() -> None:
    async with serve(config(f"http://127.0.0.1:{free_port()}"), ENV) as (client, _):
        assert await get(client, ALERTS, **OPS) == (503, {"success": False, "error": {
            "code": "ALERTMANAGER_UNAVAILABLE", "message": "Alertmanager did not answer"}})


def probed(am_url: str) -> str:
    """The pairing docs/shims.md asks for: the Alertmanager the shim reads is also an `http` source of
    the shim's system, so that an Alertmanager the exporter cannot read makes the system unhealthy."""
    return f"""
sources:
  - {{name: host, type: system}}
  - {{name: alertmanager, type: http, url: "{am_url}/-/ready", timeout: 1s}}
systems: [{{name: email, sources: [host, alertmanager]}}]
auth: {{tokens: [{{name: ops, token: "${{OPS_TOKEN}}", roles: [ops]}}]}}
shims: {{platform: {{system: email, alertmanager_url: "{am_url}", jobs_timeout: 1s}}}}
"""


async def test_an_alertmanager_the_exporter_cannot_read_pages(tmp_path: Path) -> None:
    """Issue 21 item 8: ALERTMANAGER_UNAVAILABLE used to page nobody. With the Alertmanager probed as a
    source of the system, the 503 comes with source_down (the system is unhealthy: JobQueueSourceDown
    and JobQueueSystemUnhealthy page, as the agreement table's "backend down" proves for any source)."""
    import contextlib

    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        pytest.skip("no alertmanager binary (apt-get install prometheus-alertmanager)")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    (tmp_path / "am.yml").write_text("route: {receiver: none}\nreceivers: [{name: none}]\n")
    with contextlib.ExitStack() as running:
        running.enter_context(process(
            [binary, f"--config.file={tmp_path / 'am.yml'}", f"--storage.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"],
            tmp_path, "alertmanager", port))
        wait_until("alertmanager ready", lambda: urllib.request.urlopen(f"{url}/-/ready", timeout=5).status == 200,
                   10)
        async with serve(probed(url), ENV) as (client, scheduler):
            assert (await get(client, ALERTS, **OPS))[0] == 200
            metrics = await (await client.get("/metrics")).text()
            assert 'jobqueue_health_status{system="email",status="ok"} 1' in metrics
            running.close()  # Alertmanager gone
            await scheduler.collect_once()
            assert await get(client, ALERTS, **OPS) == (503, {"success": False, "error": {
                "code": "ALERTMANAGER_UNAVAILABLE", "message": "Alertmanager did not answer"}})
            metrics = await (await client.get("/metrics")).text()
            assert 'jobqueue_source_up{source="alertmanager",backend="http"} 0' in metrics
            assert 'jobqueue_health_status{system="email",status="unhealthy"} 1' in metrics
            assert 'jobqueue_health_issue{system="email",issue="source_down:alertmanager"} 1' in metrics
