"""The host source under load (issue 20 item 3): with 2,000 busy HTTP connections and a 1 s timeout,
the host source timed out. Its read mapped every socket on the host to a pid (psutil.net_connections,
for a component found by `port`), including the 2,000 connections to the exporter itself, and it
scanned the whole process table at every collection, each /proc read waiting for the GIL behind
the web thread. A real daemon, the shared NATS server as the component found by name and port, and
bench/loadgen.py holding 2,000 connections that send GET /metrics back to back: no collection fails."""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.support.servers import free_port, stop_daemon, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
ERRORS = re.compile(r'^jobqueue_collect_errors_total\{source="host",kind="([a-z_]+)"\} (\S+)$', re.M)
COLLECTED = re.compile(r'^jobqueue_last_success_timestamp_seconds\{source="host"\} (\S+)$', re.M)
RUNNING = re.compile(r'^jobqueue_process_running\{source="host",process="nats",type="nats"\} (\S+)$', re.M)


def nats_listens() -> bool:
    return any(p.info["name"] == "nats-server" for p in psutil.process_iter(["name"]))


@pytest.mark.skipif(not nats_listens(), reason="needs the shared nats-server on 127.0.0.1:4222")
def test_two_thousand_busy_connections_never_time_the_host_source_out(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(f"""listen: 127.0.0.1:{port}
sources:
  - name: host
    type: system
    interval: 1s
    timeout: 1s
    processes:
      - {{name: nats, type: nats, process: nats-server, port: 4222}}
      - {{name: exporter, type: api, own: true}}
""")
    daemon = subprocess.Popen([sys.executable, "-m", "exporter", "--config", str(config), "--log-level", "warning"],
                              cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, timeout=60)
        load = subprocess.run([sys.executable, str(ROOT / "bench" / "loadgen.py"), str(port), "--connections", "2000",
                               "--seconds", "15"], capture_output=True, text=True, timeout=120, cwd=ROOT,
                              preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), hard)))
        assert '"200"' in load.stdout, load.stdout + load.stderr  # the flood was served
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
            body = answer.read().decode()
    finally:
        log = stop_daemon(daemon)
    assert ERRORS.findall(body) == []
    assert "collect failed" not in log
    assert COLLECTED.search(body) is not None
    assert RUNNING.findall(body) == ["1"]  # the component was found by name and port
