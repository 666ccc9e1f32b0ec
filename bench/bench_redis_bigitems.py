"""Big items at a list head: ten 50 MB items with no usable timestamp, read with a 1 s timeout.

Run: `python3 bench/bench_redis_bigitems.py [--baseline DIR]` (DIR: a checkout of another revision,
e.g. `git archive main | tar -x -C DIR`, measured the same way for comparison). It starts its own
redis-server on a free port, seeds 50 healthy list queues (3 small JSON items each) and one list whose
head holds ten 50 MB JSON items without the timestamp field (then one good item), and runs the real
daemon on it (interval 2 s, timeout 1 s) for about 20 s: how many collections succeeded, whether the
healthy queues and the big queue's depth are served, the malformed count, and the daemon's peak RSS
(VmHWM). It also times what a server-side script would cost for the same head item (the case where
the removed Lua path could have won: `string.sub` of `LINDEX` inside Redis, which blocks Redis)
against the plain `LINDEX` that ships the item. It writes bench/results/redis_bigitems.json.
It is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporter.sources.redis.connect import parse_endpoint  # noqa: E402
from exporter.sources.redis.wire import Wire, pack  # noqa: E402
from tests.support.servers import RedisServer, free_port, wait_for_port  # noqa: E402

ITEM_MB = 50
BIG_ITEMS = 10
HEALTHY = 50


def seed(client: redis.Redis) -> None:
    now = time.time()
    pipe = client.pipeline(transaction=False)
    for i in range(HEALTHY):
        pipe.rpush(f"h{i}", *(json.dumps({"ts": now - 30 + j}) for j in range(3)))
    pipe.execute()
    pad = b"x" * (ITEM_MB * 1_000_000)
    for _ in range(BIG_ITEMS):
        client.rpush("big", b'{"id": 1, "pad": "' + pad + b'"}')
    client.rpush("big", json.dumps({"ts": now - 60}))


def config(url: str) -> str:
    queues = "".join(f"      - {{layout: list, name: h{i}, key: h{i}, timestamp_field: ts}}\n" for i in range(HEALTHY))
    return (f"sources:\n  - name: r\n    type: redis\n    url: {url}\n    interval: 2s\n    timeout: 1s\n"
            f"    queues:\n{queues}      - {{layout: list, name: big, key: big, timestamp_field: ts}}\n")


def metric(body: str, name: str) -> float | None:
    match = re.search("^" + re.escape(name) + r" ([0-9.e+-]+)$", body, re.M)
    return float(match.group(1)) if match else None


def _cell(value: float | None) -> str:
    return "absent (source down)" if value is None else f"{value:g}"


def run_daemon(code: Path, url: str, workdir: Path, seconds: float = 20.0) -> dict[str, str]:
    """The daemon of `code` on the seeded server: what /metrics says every second, and its peak RSS."""
    cfg = workdir / f"big-{code.name}.yaml"
    cfg.write_text(config(url))
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(code)}
    proc = subprocess.Popen([sys.executable, "-m", "exporter", "--config", str(cfg), "--listen", f"127.0.0.1:{port}",
                             "--log-level", "error"], cwd=code, env=env)
    up = scrapes = healthy_seen = big_seen = 0
    body = ""
    try:
        wait_for_port(port, 30)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(1.0)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                    body = resp.read().decode()
            except (urllib.error.URLError, TimeoutError):
                continue
            scrapes += 1
            up += metric(body, 'jobqueue_source_up{source="r",backend="redis"}') == 1
            healthy_seen += sum(f'queue="h{i}"}}' in body for i in range(HEALTHY)) == HEALTHY
            big_seen += metric(body, 'jobqueue_depth{source="r",tenant="",queue="big"}') == BIG_ITEMS + 1
        rss = next(int(line.split()[1]) / 1024 for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                   if line.startswith("VmHWM:"))
    finally:
        proc.terminate()
        proc.wait(15)
    return {"up": f"{up}/{scrapes}", "healthy": f"{healthy_seen}/{scrapes}", "big depth": f"{big_seen}/{scrapes}",
            "malformed_total": _cell(metric(body, 'jobqueue_malformed_items{source="r"}')),
            "peak_rss_mb": f"{rss:.0f}"}


async def head_costs(url: str) -> dict[str, str]:
    """One head item: shipped by LINDEX through the lean connection (bounded), or cut inside Redis by a
    script (what a Lua path would do), with Redis's own CPU time for each."""
    admin = redis.Redis.from_url(url)
    wire = Wire(parse_endpoint(url), 30.0)
    admin.config_resetstat()
    t0 = time.perf_counter()
    (reply,) = await wire.execute([pack("LINDEX", "big", 0)])
    shipped = time.perf_counter() - t0
    lindex_cpu = admin.info("commandstats")["cmdstat_lindex"]["usec"] / 1e3
    await wire.close()
    admin.config_resetstat()
    t0 = time.perf_counter()
    cut = admin.eval("return string.sub(redis.call('LINDEX', KEYS[1], 0), 1, 1048576)", 1, "big")
    scripted = time.perf_counter() - t0
    stats = admin.info("commandstats")
    eval_cpu = stats["cmdstat_eval"]["usec"] / 1e3
    admin.close()
    return {"lindex_s": f"{shipped:.2f}", "lindex_redis_cpu_ms": f"{lindex_cpu:.1f}", "lindex_reply": repr(reply[:20]),
            "script_s": f"{scripted:.2f}", "script_redis_cpu_ms": f"{eval_cpu:.1f}",
            "script_reply_bytes": str(len(cut))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="a checkout of another revision, measured the same way")
    parser.add_argument("--conditions", default="", help="machine and load, for the results file")
    args = parser.parse_args()
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp)).start()
        try:
            seed(redis.Redis.from_url(server.url))
            for label, code in (("this revision", ROOT), ("baseline", args.baseline)):
                if code is None:
                    continue
                got = run_daemon(code.resolve(), server.url, Path(tmp))
                print(label, got, file=sys.stderr)
                rows.append([label, got["up"], got["healthy"], got["big depth"], got["malformed_total"],
                             got["peak_rss_mb"]])
            costs = asyncio.run(head_costs(server.url))
            print(costs, file=sys.stderr)
        finally:
            server.stop()
    result = {
        "bench": "redis_bigitems",
        "command": "python3 bench/bench_redis_bigitems.py --baseline DIR",
        "measured": datetime.now(UTC).strftime("%Y-%m-%d"),
        "conditions": args.conditions or f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at the end",
        "tables": {
            "daemon": {
                "columns": ["code", "scrapes with up 1", "scrapes with all 50 healthy queues",
                            "scrapes with the big queue's depth", "malformed items (last collection)",
                            "peak RSS MB"],
                "rows": rows,
            },
            "head": {
                "columns": ["read of one 50 MB head item", "seconds (client)", "Redis CPU ms"],
                "rows": [["LINDEX, shipped and skipped by the lean connection", costs["lindex_s"],
                          costs["lindex_redis_cpu_ms"]],
                         ["string.sub(LINDEX) in a script (blocks Redis)", costs["script_s"],
                          costs["script_redis_cpu_ms"]]],
            },
        },
    }
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "redis_bigitems.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
