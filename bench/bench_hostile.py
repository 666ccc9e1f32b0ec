"""Hostile-conditions benchmark (issues 15 and 20): /metrics p50/p99 and a healthy source's collection
interval, idle, with three sources hung in DNS, under 2,000 busy connections (observed on the main
listener, and on the `scrape_listen` listener of issue 20 item 6), and under 2,000 idle connections
with a soft open-file limit of 1,024 (issue 20 item 5).

Run (as root, for the DNS fault): `python3 bench/bench_hostile.py` (`--seconds 20 --tree /work/main`
to measure another checkout). Each scenario starts the exporter as a subprocess on a free port with
one healthy Redis source (`redis://localhost:6379`, interval 2s, timeout 1s) and:

- idle: nothing else;
- dns: three more Redis sources whose host names go to a DNS server that never answers: the
  exporter runs under `unshare -m` with a bind-mounted resolv.conf naming a UDP sink on
  127.0.0.2:53 (reads and drops every query), exactly as the fault was found;
- load: bench/loadgen.py holds 2,000 keep-alive connections sending GET /metrics back to back to the
  main listener; the observer scrapes the main listener;
- load-scrape: the same flood on the main listener; the observer scrapes `scrape_listen`;
- idle1024: the exporter starts with a soft RLIMIT_NOFILE of 1,024 (systemd's default) and the bench
  holds 2,000 idle connections on the main listener; the observer scrapes the main listener.

Figures: /metrics p50/p99 from a separate sequential client (one GET every 50 ms) and how many of its
scrapes did not get a 200; the healthy source's collection interval from the changes of its
`jobqueue_last_success_timestamp_seconds`; and its `jobqueue_collect_errors_total` (any non-zero
value is an `up 0`). It prints one table and writes bench/results/bench_hostile.json. It is a
benchmark, not a test; on a shared machine its figures move with the load of the other tenants.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


HEALTHY = """
  - {name: healthy, type: redis, url: "redis://localhost:6379/0", interval: 2s, timeout: 1s,
     queues: [{layout: laravel, prefix: "jqbench:hostile:", queues: [default]}]}"""
HUNG = "".join(f"""
  - {{name: hung{i}, type: redis, url: "redis://hung-{i}.example.com:6379/0", interval: 2s, timeout: 1s,
     queues: [{{layout: laravel, queues: [default]}}]}}""" for i in range(3))
LAST = re.compile(rb'jobqueue_last_success_timestamp_seconds\{source="healthy"\} (\S+)')
ERRORS = re.compile(rb'jobqueue_collect_errors_total\{source="healthy",kind="[^"]+"\} (\S+)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def udp_sink(stop: threading.Event) -> None:
    """A DNS server that reads every query and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.2", 53))
        sock.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                sock.recvfrom(4096)


def soft_1024() -> None:
    """In the child before exec: systemd's default soft open-file limit."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))


def start(tree: Path, config: str, port: int, workdir: Path, dns_fault: bool, scrape_port: int | None = None,
          low_fd: bool = False) -> subprocess.Popen[bytes]:
    path = workdir / "config.yaml"
    scrape = f"scrape_listen: 127.0.0.1:{scrape_port}\n" if scrape_port else ""
    path.write_text(f"listen: 127.0.0.1:{port}\n{scrape}sources:{config}\n")
    cmd = [sys.executable, "-m", "exporter", "--config", str(path), "--log-level", "error"]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    if dns_fault:
        resolv = workdir / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.2\noptions timeout:5 attempts:2\n")
        inner = f"mount --bind {resolv} /etc/resolv.conf && exec {' '.join(cmd)}"
        cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c", inner]
    return subprocess.Popen(cmd, cwd=tree, env=env, stderr=subprocess.DEVNULL, preexec_fn=soft_1024 if low_fd else None)


async def get(port: int, path: str = "/metrics") -> tuple[float, bytes]:
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    body = await reader.read()
    writer.close()
    return time.monotonic() - started, body


async def observe(port: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    stamps: list[float] = []
    errors = 0.0
    refused = 0
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        try:
            async with asyncio.timeout(30):
                took, body = await get(port)
        except (OSError, TimeoutError):
            refused += 1
            continue
        if not body.startswith(b"HTTP/1.1 200"):
            refused += 1
        latencies.append(took)
        match = LAST.search(body)
        if match and (not stamps or float(match.group(1)) != stamps[-1]):
            stamps.append(float(match.group(1)))
        errors = sum(float(m) for m in ERRORS.findall(body))
        await asyncio.sleep(0.05)
    latencies.sort()
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    return {
        "scrapes": len(latencies),
        "p50_ms": latencies[len(latencies) // 2] * 1000 if latencies else float("nan"),
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else float("nan"),
        "interval_mean_s": statistics.mean(gaps) if gaps else float("nan"),
        "interval_max_s": max(gaps) if gaps else float("nan"),
        "collect_errors": errors,
        "not_200": float(refused),
    }


async def scenario(tree: Path, name: str, seconds: float) -> dict[str, float]:
    port, scrape_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = start(tree, HEALTHY + (HUNG if name == "dns" else ""), port, Path(tmp), name == "dns",
                     scrape_port if name == "load-scrape" else None, low_fd=name == "idle1024")
        held: list[asyncio.StreamWriter] = []
        try:
            for _ in range(300):
                with contextlib.suppress(OSError):
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(3)  # first collections
            observed_port = scrape_port if name == "load-scrape" else port
            if name in ("load", "load-scrape"):  # the load from a process of its own, so it does not slow the observer
                gen = await asyncio.create_subprocess_exec(
                    sys.executable, str(ROOT / "bench" / "loadgen.py"), str(port), "--connections", "2000",
                    "--seconds", str(seconds), stdout=subprocess.PIPE)
                observed, (out, _) = await asyncio.gather(observe(observed_port, seconds), gen.communicate())
                loaded = json.loads(out)
                observed["load_requests"] = float(loaded["requests"])
                observed["load_p99_ms"] = float(loaded["p99_ms"])
                return observed
            if name == "idle1024":
                for _ in range(2000):
                    with contextlib.suppress(OSError):
                        held.append((await asyncio.open_connection("127.0.0.1", port))[1])
            return await observe(observed_port, seconds)
        finally:
            for writer in held:
                writer.close()
            proc.terminate()
            proc.wait(10)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--tree", type=Path, default=ROOT, help="checkout whose exporter to run")
    parser.add_argument("--only", nargs="*", default=["idle", "dns", "load", "load-scrape", "idle1024"])
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))  # the bench's own 2,000
    stop = threading.Event()
    sink = threading.Thread(target=udp_sink, args=(stop,), daemon=True)
    sink.start()
    rows = {}
    try:
        for name in args.only:
            rows[name] = await scenario(args.tree, name, args.seconds)
    finally:
        stop.set()
    print(f"tree: {args.tree}")
    keys = ["scrapes", "not_200", "p50_ms", "p99_ms", "interval_mean_s", "interval_max_s", "collect_errors",
            "load_requests", "load_p99_ms"]
    print(f"{'':18}" + "".join(f"{n:>12}" for n in rows))
    for key in keys:
        print(f"{key:18}" + "".join(f"{rows[n].get(key, float('nan')):>12.1f}" for n in rows))
    labels = {"idle": "idle", "dns": "3 sources hung in DNS",
              "load": "2,000 busy connections, scrape on `listen`",
              "load-scrape": "same flood, scrape on `scrape_listen`",
              "idle1024": "2,000 idle connections, soft fd limit 1,024"}
    figures = [("scrapes", f"scrapes in {args.seconds:g} s (sequential client)", "{:,.0f}"),
               ("not_200", "scrapes not answered 200", "{:,.0f}"),
               ("p50_ms", "`/metrics` p50 ms", "{:,.1f}"), ("p99_ms", "`/metrics` p99 ms", "{:,.1f}"),
               ("interval_mean_s", "healthy source's interval, mean s (configured 2 s)", "{:.1f}"),
               ("interval_max_s", "healthy source's interval, max s", "{:.1f}"),
               ("collect_errors", "healthy source's failed collections", "{:,.0f}")]
    result = {
        "bench": "bench_hostile",
        "command": f"python3 bench/bench_hostile.py --seconds {args.seconds:g}",
        "measured": time.strftime("%Y-%m-%d", time.gmtime()),
        "conditions": (f"{os.cpu_count()} cores shared with other work (load average "
                       f"{os.getloadavg()[0]:.1f} at the end); exporter, load generator and observer on one host"),
        "tables": {"scenarios": {
            "columns": ["figure", *(labels[n] for n in rows)],
            "rows": [[label, *(fmt.format(rows[n][key]) if key in rows[n] else "" for n in rows)]
                     for key, label, fmt in figures],
        }},
        "raw": rows,
    }
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "bench_hostile.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(rows))


if __name__ == "__main__":
    asyncio.run(main())
