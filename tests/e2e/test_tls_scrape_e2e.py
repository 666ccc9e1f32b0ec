"""End to end: a real Prometheus scrapes the exporter over TLS (the test's own CA) with basic auth,
exactly as a platform team configures it; a scrape with a wrong password is refused with 401."""

from __future__ import annotations

from pathlib import Path

import bcrypt
import pytest
import yaml

from tests.e2e.support import ROOT, Prometheus, binary, exporter_args, process, wait_until
from tests.support.pki import CA
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e

CONFIG = """
sources:
  - name: host
    type: system
    interval: 1s
    timeout: 900ms
"""


def scrape_job(name: str, port: int, ca: Path, password: str) -> dict[str, object]:
    return {"job_name": name, "scheme": "https", "tls_config": {"ca_file": str(ca)},
            "basic_auth": {"username": "prometheus", "password": password},
            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}


def test_prometheus_scrapes_over_tls_with_basic_auth(tmp_path: Path) -> None:
    ca = CA(tmp_path)
    ca.issue("server")
    web = tmp_path / "web.yml"
    web.write_text(yaml.safe_dump({
        "tls_server_config": {"cert_file": "server.crt", "key_file": "server.key", "min_version": "TLS12"},
        "basic_auth_users": {"prometheus": bcrypt.hashpw(b"scrape-me", bcrypt.gensalt(rounds=10)).decode()},
    }))
    config = tmp_path / "exporter.yaml"
    config.write_text(CONFIG)
    port, prom_port = free_port(), free_port()
    prom_config = tmp_path / "prometheus.yml"
    prom_config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "scrape_timeout": "900ms"},
        "scrape_configs": [scrape_job("jobqueue-exporter", port, ca.path, "scrape-me"),
                           scrape_job("wrong-password", port, ca.path, "nope")],
    }, sort_keys=False))
    args = [*exporter_args(config, port), "--web.config.file", str(web)]
    with process(args, tmp_path, "exporter", port, env={"PYTHONPATH": str(ROOT)}), \
            process([binary("prometheus"), f"--config.file={prom_config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                     f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"], tmp_path, "prometheus",
                    prom_port):
        prometheus = Prometheus(prom_port)
        (up,) = wait_until("a successful TLS scrape",
                           lambda: prometheus.query('up{job="jobqueue-exporter"} == 1'), timeout=60)
        assert up["metric"]["instance"] == f"127.0.0.1:{port}"
        (source,) = wait_until("the host source's series",
                               lambda: prometheus.query('jobqueue_source_up{job="jobqueue-exporter",source="host"}'),
                               timeout=30)
        assert source["value"][1] == "1"
        targets = wait_until("the refused target's error", lambda: [
            t for t in prometheus.get("/api/v1/targets")["activeTargets"]
            if t["labels"]["job"] == "wrong-password" and t["lastError"]], timeout=30)
        assert targets[0]["health"] == "down"
        assert "401" in targets[0]["lastError"]
        assert prometheus.query('up{job="wrong-password"}')[0]["value"][1] == "0"
