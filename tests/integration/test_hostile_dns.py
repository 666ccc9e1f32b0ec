"""DNS pool starvation (issue 20 item 2), reproduced as found: a real DNS server that never answers
(a UDP socket on a loopback address of its own that reads every query and drops it), named by the
resolv.conf of the daemon (bind-mounted over /etc/resolv.conf in a mount namespace of the daemon's
own, `unshare -m`), 30 Redis sources whose host names go to it, and one healthy Redis source at
`localhost`. With the old fixed pool of 16 lookup threads the healthy source read `up 0` (20 hung
names: 35 of 95 scrapes; 40: never collected). Now it is up in every scrape, the hung sources say
`dns`, and glibc's real getaddrinfo is what hangs."""

from __future__ import annotations

import contextlib
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
HUNG = 30
UP = re.compile(r'^jobqueue_source_up\{source="healthy",backend="redis"\} (\S+)$', re.M)
LAST = re.compile(r'^jobqueue_last_success_timestamp_seconds\{source="healthy"\} (\S+)$', re.M)
KINDS = re.compile(r'^jobqueue_collect_errors_total\{source="(hung\d+)",kind="([a-z_]+)"\} \S+$', re.M)

pytestmark = pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux) and root")


@contextlib.contextmanager
def dns_sink() -> Iterator[tuple[str, list[int]]]:
    """A DNS server on 127.x.y.z:53 that reads every query and never answers; yields (address, counter)."""
    address = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, 53))
    sock.settimeout(0.2)
    stop, queries = threading.Event(), [0]

    def drop() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                sock.recvfrom(4096)
                queries[0] += 1

    thread = threading.Thread(target=drop, daemon=True)
    thread.start()
    try:
        yield address, queries
    finally:
        stop.set()
        thread.join(5)
        sock.close()


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        return str(answer.read().decode())


def test_thirty_hung_names_cost_nothing_to_a_source_at_localhost(tmp_path: Path) -> None:
    port = free_port()
    tag = f"{random.randrange(16**6):06x}"
    hung = "".join(f"""
  - {{name: hung{i}, type: redis, url: "redis://hung-{i}.jq{tag}.example:6379/0", interval: 1s, timeout: 1s,
     queues: [{{layout: laravel, queues: [default]}}]}}""" for i in range(HUNG))
    config = tmp_path / "config.yaml"
    config.write_text(f"""listen: 127.0.0.1:{port}
sources:
  - {{name: healthy, type: redis, url: "redis://localhost:6379/0", interval: 1s, timeout: 1s,
     queues: [{{layout: laravel, prefix: "jq{tag}:", queues: [default]}}]}}{hung}
""")
    with dns_sink() as (address, queries):
        resolv = tmp_path / "resolv.conf"
        resolv.write_text(f"nameserver {address}\noptions timeout:5 attempts:2\n")
        command = f"mount --bind {resolv} /etc/resolv.conf && exec {sys.executable} -m exporter --config {config}"
        daemon = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", command], cwd=ROOT,
                                  stderr=subprocess.DEVNULL)
        try:
            wait_for_port(port, timeout=60)
            bodies: list[str] = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (bodies and UP.search(bodies[-1])):
                bodies = [scrape(port)]  # until the healthy source's first collection
                time.sleep(0.2)
            until = time.monotonic() + 8
            while time.monotonic() < until:
                bodies.append(scrape(port))
                time.sleep(0.25)
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait(10)
    ups = [m.group(1) if (m := UP.search(body)) else None for body in bodies]
    assert ups == ["1"] * len(bodies)
    stamps = {m.group(1) for body in bodies if (m := LAST.search(body))}
    assert len(stamps) >= 4  # ~8 collections in 8 s: it kept collecting, not only once
    kinds = dict(KINDS.findall(bodies[-1]))
    assert kinds == {f"hung{i}": "dns" for i in range(HUNG)}
    assert queries[0] >= HUNG  # the names really went to the sink
