"""/healthz and /readyz against a collector that stops (review: both passed while the collector was dead
or blocked, so the kubelet never restarted a pod whose /metrics had frozen).

A real daemon (tests/support/stalling_daemon.py: `exporter.cli.main` plus two faults sent by signal)
with a `system` source and an `http` source whose backend accepts and never answers, so each of its
collections lasts its whole timeout (1 s, its interval): slow but bounded. Probes are read on the main
port and on the `--health-listen` port. Asserted:
- slow: for longer than the stall bound (2 x (1 s + 1 s) + 10 s = 14 s) both probes stay 200;
- blocked collector loop (SIGUSR1): /healthz and /readyz turn 503 naming both sources, not before
  the bound less the time since the last step, and within the bound plus slack;
- collector thread dead (SIGUSR2): both 503 within a few seconds.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from exporter.scheduler import stall_after
from tests.support.servers import free_port, terminate, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
BOUND = stall_after(1.0, 1.0)  # both sources: interval 1 s, timeout 1 s
SLACK = 6.0


def get(port: int, path: str) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        conn.close()


@contextlib.contextmanager
def daemon(tmp: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, int]]:
    """The stalling daemon with a hung HTTP backend; yields (process, main port, probe port); always stopped."""
    with socket.socket() as hung:  # listens and never accepts: the kernel completes the connect, nothing answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(64)
        main, probes = free_port(), free_port()
        (tmp / "config.yaml").write_text(
            f"listen: 127.0.0.1:{main}\nsources:\n  - {{name: host, type: system, interval: 1s, timeout: 1s}}\n"
            f"  - {{name: api, type: http, url: 'http://127.0.0.1:{hung.getsockname()[1]}/health', interval: 1s, "
            "timeout: 1s}\n")
        with (tmp / "exporter.log").open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.support.stalling_daemon", "--config", str(tmp / "config.yaml"),
                 "--health-listen", f"127.0.0.1:{probes}"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(ROOT)})
            try:
                wait_for_port(main, timeout=30)
                wait_for_port(probes, timeout=10)
                yield proc, main, probes
            finally:
                terminate(proc, 30)


def probes(ports: tuple[int, int]) -> list[tuple[int, Any]]:
    return [get(port, path) for port in ports for path in ("/healthz", "/readyz")]


def wait_ready(ports: tuple[int, int]) -> None:
    deadline = time.monotonic() + 20
    while get(ports[0], "/readyz")[0] != 200:
        assert time.monotonic() < deadline, get(ports[0], "/readyz")
        time.sleep(0.2)


STALLED = (503, {"status": "stalled", "stalled": ["api", "host"]})


def test_a_slow_collector_passes_and_a_blocked_one_fails_after_the_bound(tmp_path: Path) -> None:
    with daemon(tmp_path) as (proc, main, probe_port):
        ports = (main, probe_port)
        wait_ready(ports)
        assert BOUND == 14.0
        slow_until = time.monotonic() + BOUND + 4
        while time.monotonic() < slow_until:  # every collection of `api` takes its whole timeout
            assert probes(ports) == [(200, {"status": "ok"}), (200, {"status": "ready"})] * 2
            time.sleep(0.5)
        metrics = http.client.HTTPConnection("127.0.0.1", main, timeout=10)
        metrics.request("GET", "/metrics")
        body = metrics.getresponse().read().decode()
        metrics.close()
        assert 'jobqueue_source_up{source="api",backend="http"} 0' in body  # slow: every collection timed out
        assert 'jobqueue_collect_errors_total{source="api",kind="timeout"}' in body
        assert 'jobqueue_source_up{source="host",backend="system"} 1' in body
        proc.send_signal(signal.SIGUSR1)
        blocked = time.monotonic()
        while probes(ports)[0][0] == 200:
            assert time.monotonic() - blocked < BOUND + SLACK, "still alive past the bound"
            time.sleep(0.25)
        failed_after = time.monotonic() - blocked
        # not before the bound, less the gap since the last rendered result before the block (one
        # interval + timeout + rendering, 2 s here; 4 s leaves room for a loaded machine)
        assert failed_after >= BOUND - 4, failed_after
        assert probes(ports) == [STALLED, STALLED] * 2


def test_a_dead_collector_thread_fails_both_probes_at_once(tmp_path: Path) -> None:
    with daemon(tmp_path) as (proc, main, probe_port):
        ports = (main, probe_port)
        wait_ready(ports)
        proc.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + 5
        while probes(ports) != [STALLED, STALLED] * 2:
            assert time.monotonic() < deadline, probes(ports)
            time.sleep(0.2)
