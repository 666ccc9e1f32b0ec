"""Redis benchmark: collection cycle, /metrics latency and RSS at 1k and 10k tenants, beside redis_exporter.

Run: `python3 bench/bench_redis.py` (add `--tenants 1000` to run one size). `--curve` measures the
cost curve instead: 1k, 10k, 30k and 100k tenants, plus 100k tenants read by one
replica of four (`shard: 0/4`), without the peer; it writes
bench/results/raw/redis_curve.json. It starts its own
redis-server on a free port, seeds N tenants x 2 list queues (3 JSON items each) plus Laravel
queues, then measures:
  * the median collection cycle (PING + two batched op runs + parsing + rendering), in process, and
    the Redis CPU it costs (the read-only Lua path this used to compare is gone: at 10k tenants it
    cost Redis ~10x the CPU for a slower cycle);
  * /metrics latency p50/p99 with wrk (8 connections, gzip as Prometheus asks) against the real
    daemon while it keeps collecting every 5 s, and the daemon's peak RSS;
  * Debian's prometheus-redis-exporter with -check-keys on the same keys (median scrape time).
It prints one table and writes bench/results/raw/redis.json. It is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporter.config import parse_config, parse_shard  # noqa: E402
from exporter.metrics import Renderer  # noqa: E402
from exporter.model import Snapshot, SourceStatus  # noqa: E402
from exporter.sources.base import SourceContext  # noqa: E402
from exporter.sources.redis import RedisSource  # noqa: E402
from tests.support.servers import RedisServer, free_port, wait_for_port  # noqa: E402

LARAVEL_QUEUES = ("default", "high", "audience-sync")


def seed(client: redis.Redis, tenants: int) -> int:
    """N tenants x (events, heartbeats) lists of 3 JSON items, plus three Laravel queues."""
    now = time.time()
    pipe = client.pipeline(transaction=False)
    for t in range(tenants):
        for queue in ("events", "heartbeats"):
            items = [json.dumps({"id": f"{t}-{i}", "type": queue, "ts": now - 60 + i}) for i in range(3)]
            pipe.rpush(f"tenant_{t}:queues:{queue}", *items)
        if t % 1000 == 999:
            pipe.execute()
    for i, queue in enumerate(LARAVEL_QUEUES):
        payloads = [json.dumps({"uuid": f"{queue}-{j}", "createdAt": int(now) - 100 + j, "attempts": 0})
                    for j in range(5 + i)]
        pipe.rpush(f"laravel-database-queues:{queue}", *payloads)
        pipe.zadd(f"laravel-database-queues:{queue}:delayed", {f"d{j}": now + 60 for j in range(2)})
        pipe.zadd(f"laravel-database-queues:{queue}:reserved", {"r0": now + 90})
    pipe.execute()
    return client.dbsize()


def config_text(url: str, interval: str = "5s", shard: str = "0/1") -> str:
    return f"""
shard: "{shard}"
sources:
  - name: bench
    type: redis
    url: {url}
    interval: {interval}
    timeout: 2s
    tenants:
      scan: {{match: "tenant_*:queues:events", regex: "^tenant_(?P<tenant>[^:]+):", cap: 100000}}
    queues:
      - {{layout: list, name: events, key: "tenant_{{tenant}}:queues:events", timestamp_field: ts}}
      - {{layout: list, name: heartbeats, key: "tenant_{{tenant}}:queues:heartbeats", timestamp_field: ts}}
      - {{layout: laravel, queues: [{", ".join(LARAVEL_QUEUES)}]}}
"""


async def measure_cycles(url: str, rounds: int, shard: str = "0/1") -> dict[str, float]:
    """Median collect, render and total over `rounds` cycles, tenants cached as in steady state,
    and the Redis CPU time one collection costs (from INFO commandstats)."""
    config = parse_config(config_text(url, shard=shard), "<bench>", {})
    admin = redis.Redis.from_url(url)
    context = SourceContext(snapshot=lambda: Snapshot(), shard=parse_shard(shard))
    source = RedisSource(config.sources[0], context)  # type: ignore[arg-type]
    gc.collect()
    gc.freeze()  # as the daemon does once it is set up (exporter/cli.py)
    started = time.perf_counter()
    await source.collect()  # first cycle also SCANs the tenants
    first = time.perf_counter() - started
    collect, render, server, series = [], [], [], 0
    renderer = Renderer([source])  # the daemon's: kept across collections
    for _ in range(rounds):
        admin.config_resetstat()
        t0 = time.perf_counter()
        reading = await source.collect()
        t1 = time.perf_counter()
        server.append(sum(v["usec"] for v in admin.info("commandstats").values()) / 1e6)
        status = SourceStatus("bench", "redis", True, time.time(), t1 - t0, time.time())
        fragments = renderer.source(status, reading, {})
        t2 = time.perf_counter()
        collect.append(t1 - t0)
        render.append(t2 - t1)
        series = sum(body.count(b"\n") for body in fragments.values())
    await source.close()
    admin.close()
    return {
        "pipeline_first_cycle_with_scan_ms": first * 1000,
        "pipeline_collect_ms": statistics.median(collect) * 1000,
        "pipeline_redis_cpu_ms": statistics.median(server) * 1000,
        "pipeline_render_ms": statistics.median(render) * 1000,
        "pipeline_cycle_ms": statistics.median(c + r for c, r in zip(collect, render, strict=True)) * 1000,
        "series": series,
    }


def run_wrk(port: int, seconds: int = 10, connections: int = 8) -> dict[str, float]:
    """/metrics latency percentiles under concurrent scrapes, gzip accepted as Prometheus does."""
    script = Path(tempfile.mkdtemp()) / "report.lua"
    script.write_text(
        'done = function(summary, latency, requests)\n'
        '  io.write(string.format("JSON {\\"p50\\": %f, \\"p99\\": %f, \\"requests\\": %d, \\"errors\\": %d}\\n",\n'
        '    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.requests,\n'
        '    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout))\n'
        "end\n"
    )
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), "-H", "Accept-Encoding: gzip",
         "-H", "Accept: application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3",
         f"http://127.0.0.1:{port}/metrics"],
        capture_output=True, text=True, check=True,
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("JSON "))
    result = json.loads(line[5:])
    return {"p50_ms": result["p50"], "p99_ms": result["p99"], "rps": result["requests"] / seconds,
            "errors": result["errors"]}


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure_daemon(url: str, workdir: Path, shard: str = "0/1") -> dict[str, float]:
    port = free_port()
    cfg = workdir / "bench.yaml"
    cfg.write_text(config_text(url, shard=shard))
    proc = subprocess.Popen([sys.executable, "-m", "exporter", "--config", str(cfg), "--listen", f"127.0.0.1:{port}",
                             "--log-level", "warning"], cwd=ROOT)
    try:
        wait_for_port(port, 20)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz"):
                    break
            except urllib.error.HTTPError:  # 503 until the first collection
                time.sleep(0.2)
        time.sleep(2.5)
        result = run_wrk(port)
        result["peak_rss_mb"] = peak_rss_mb(proc.pid)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as resp:
            result["exposition_mb"] = len(resp.read()) / 1e6
        return result
    finally:
        proc.terminate()
        proc.wait(10)


def measure_redis_exporter(url: str, rounds: int = 5) -> dict[str, float] | None:
    """Median scrape time of prometheus-redis-exporter -check-keys on the same queue keys."""
    binary = shutil.which("prometheus-redis-exporter") or shutil.which("redis_exporter")
    if binary is None:
        return None
    port = free_port()
    proc = subprocess.Popen(
        [binary, "-redis.addr", url, "-web.listen-address", f"127.0.0.1:{port}",
         "-check-keys", "tenant_*:queues:*,laravel-database-queues:*"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, 20)
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=600) as resp:
                body = resp.read()
            times.append(time.perf_counter() - t0)
        return {"scrape_ms": statistics.median(times) * 1000,
                "key_series": body.count(b"\nredis_key_size{")}
    finally:
        proc.terminate()
        proc.wait(10)


def measure(tenants: int, rounds: int, peer: bool, shard: str = "0/1") -> dict[str, object]:
    """One row: a fresh redis-server seeded with `tenants` tenants, measured in process and as a daemon."""
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp)).start()
        try:
            keys = seed(redis.Redis.from_url(server.url), tenants)
            row: dict[str, object] = {"keys": keys, "shard": shard}
            row.update(asyncio.run(measure_cycles(server.url, rounds, shard)))
            row.update(measure_daemon(server.url, Path(tmp), shard))
            found = measure_redis_exporter(server.url) if peer else None
            if found:
                row["redis_exporter_scrape_ms"] = found["scrape_ms"]
                row["redis_exporter_key_series"] = found["key_series"]
                row["speedup_vs_redis_exporter"] = found["scrape_ms"] / row["pipeline_cycle_ms"]  # type: ignore[operator]
            return row
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, action="append", help="tenant counts (default 1000 and 10000)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--curve", action="store_true", help="the cost curve: 1k-100k tenants, default path only")
    args = parser.parse_args()
    results: dict[str, dict[str, object]] = {}
    if args.curve:
        runs = [(n, "0/1") for n in args.tenants or [1000, 10000, 30000, 100000]]
        runs.append((runs[-1][0], "0/4"))
    else:
        runs = [(n, "0/1") for n in args.tenants or [1000, 10000]]
    for tenants, shard in runs:
        row = measure(tenants, args.rounds, peer=not args.curve, shard=shard)
        name = str(tenants) if shard == "0/1" else f"{tenants} shard {shard}"
        results[name] = row
        print(f"\n== {name} tenants", file=sys.stderr)
        for key, value in row.items():
            print(f"  {key:28} {value:.2f}" if isinstance(value, float) else f"  {key:28} {value}", file=sys.stderr)
    # the raw figures; the README's tables are bench/results/redis*.json, written from these by hand
    out = ROOT / "bench" / "results" / "raw"
    out.mkdir(parents=True, exist_ok=True)
    (out / ("redis_curve.json" if args.curve else "redis.json")).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
