"""SIGTERM stops the daemon within EXIT_BOUND (README, "Command line") even while its sources hang: one in a
name lookup that never returns, three on a TCP peer that accepts and never answers (Redis, PostgreSQL,
NATS). Issue 18: a shutdown that could wait forever on a source is cut at bounded steps."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.cli import EXIT_BOUND
from tests.support.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]

# The daemon as `jobqueue-exporter --config ...`, except that a lookup of a name under .invalid never
# returns (a DNS server that never answers; glibc's own retries would end it after some seconds). It is
# patched before the exporter is imported, so the exporter's Resolver calls it as it calls getaddrinfo.
BOOT = textwrap.dedent("""
    import socket, sys, threading
    real, marker = socket.getaddrinfo, sys.argv[2]

    def getaddrinfo(host, port=None, family=0, type=0, proto=0, flags=0):
        # a numeric-only lookup (AI_NUMERICHOST) never asks DNS, in glibc as here
        if str(host).endswith(".invalid") and not flags & socket.AI_NUMERICHOST:
            open(marker, "a").write(host + "\\n")
            threading.Event().wait()  # never answers
        return real(host, port, family, type, proto, flags)

    socket.getaddrinfo = getaddrinfo
    from exporter.cli import main
    sys.exit(main(["--config", sys.argv[1]]))
""")


class HalfOpen:
    """A TCP peer that accepts every connection and never reads or writes on it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed: the test is over
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5)
        for conn in self.held:
            conn.close()


@pytest.fixture
def half_open() -> Iterator[HalfOpen]:
    peer = HalfOpen()
    yield peer
    peer.close()


def test_sigterm_stops_the_daemon_within_the_bound_while_sources_hang(tmp_path: Path, half_open: HalfOpen) -> None:
    port = free_port()
    lookups = tmp_path / "lookups"
    hung = "interval: 60s, timeout: 30s"  # every collection is still in flight when SIGTERM comes
    config = tmp_path / "config.yaml"
    config.write_text(f"""
listen: "127.0.0.1:{port}"
sources:
  - {{name: dns, type: redis, url: "redis://hung-dns.invalid:6379/0", {hung},
     queues: [{{layout: laravel, queues: [default]}}]}}
  - {{name: half_open_redis, type: redis, url: "redis://127.0.0.1:{half_open.port}/0", {hung},
     queues: [{{layout: laravel, queues: [default]}}]}}
  - {{name: half_open_pg, type: postgres, dsn: "postgresql://postgres@127.0.0.1:{half_open.port}/test", {hung},
     queues: [{{preset: generic, table: jobs, waiting: [new]}}]}}
  - {{name: half_open_nats, type: nats, url: "nats://127.0.0.1:{half_open.port}", {hung}}}
""")
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", BOOT, str(config), str(lookups)], stdout=out,
                                stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            wait_for_port(port, timeout=60)
            deadline = time.monotonic() + 60  # bounded wait for the sources to be stuck where we want them
            while time.monotonic() < deadline and not (lookups.exists() and len(half_open.held) >= 3):
                time.sleep(0.05)
            assert lookups.read_text() == "hung-dns.invalid\n", log.read_text()
            assert len(half_open.held) >= 3, log.read_text()  # Redis, PostgreSQL and NATS each connected
            proc.send_signal(signal.SIGTERM)
            # generous over the bound for a loaded machine: past EXIT_BOUND the daemon's own
            # last resort ends it with status 1, so status 0 says the orderly stop finished in time
            returncode = proc.wait(timeout=EXIT_BOUND + 30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    text = log.read_text()
    assert returncode == 0, text
    assert "stopping" in text and "exiting now" not in text, text


def test_past_the_bound_the_daemon_exits_anyway(tmp_path: Path) -> None:
    """A read that no cancellation reaches: a files source's manifest is a FIFO whose writer never
    writes, so the source's reading thread is stuck in read() for good (as on a hung network file
    system). Python joins that thread at exit, forever; the daemon's last resort ends the process at
    EXIT_BOUND, with status 1."""
    port = free_port()
    fifo = tmp_path / "manifest.sha256"
    os.mkfifo(fifo)
    config = tmp_path / "config.yaml"
    config.write_text(f"""
listen: "127.0.0.1:{port}"
sources:
  - name: stuck_files
    type: files
    interval: 60s
    timeout: 30s
    checks:
      pipeline:
        integrity: {{manifest: "{fifo}"}}
""")
    log = tmp_path / "daemon.log"
    writer = -1
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "exporter", "--config", str(config)], stdout=out,
                                stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            wait_for_port(port, timeout=60)
            deadline = time.monotonic() + 60
            while writer < 0 and time.monotonic() < deadline:  # until the source opens the FIFO to read
                try:
                    writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO while no reader
                except OSError:
                    time.sleep(0.05)
            assert writer >= 0, log.read_text()
            proc.send_signal(signal.SIGTERM)
            returncode = proc.wait(timeout=EXIT_BOUND + 30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            if writer >= 0:
                os.close(writer)
    text = log.read_text()
    assert returncode == 1, text
    assert "stopping took too long; exiting now" in text, text
