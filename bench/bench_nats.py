"""NATS benchmark: one collection of N streams with one consumer each (target: 1,000 in <= 1 s).

Run: `python3 bench/bench_nats.py` (`--streams 1000 --rounds 10 --messages 3`). It starts its own
nats-server -js on a free port in a temporary directory (never the shared one), creates N streams
with M messages and one durable pull consumer each (plus a KV bucket of 100 keys for the live-key
count), then times full collections of the `nats` source in process: the paged STREAM.LIST, one
paged CONSUMER.LIST per stream, KV key reads, parsing, and rendering of the source's exposition
fragment. It prints one table. It is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nats
from nats.js.api import ConsumerConfig

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporter.config import parse_config  # noqa: E402
from exporter.metrics import Renderer  # noqa: E402
from exporter.model import Snapshot, SourceStatus  # noqa: E402
from exporter.sources.base import SourceContext  # noqa: E402
from exporter.sources.nats import NatsSource  # noqa: E402
from tests.support.nats import NatsServer  # noqa: E402


async def seed(url: str, streams: int, messages: int) -> float:
    """Create the streams, their messages and consumers, and a KV bucket; return the seconds it took."""
    started = time.perf_counter()
    nc = await nats.connect(url)
    js = nc.jetstream()
    sem = asyncio.Semaphore(64)

    async def one(i: int) -> None:
        async with sem:
            name = f"BENCH_{i:05d}"
            await js.add_stream(name=name, subjects=[f"bench.{i}.>"])
            for m in range(messages):
                await js.publish(f"bench.{i}.job", f"job-{m}".encode())
            await js.add_consumer(name, ConsumerConfig(durable_name="workers", ack_wait=30))

    await asyncio.gather(*(one(i) for i in range(streams)))
    kv = await js.create_key_value(bucket="bench_jobs")
    for k in range(100):
        await kv.put(f"job{k}", b'{"status": "unprocessed"}' if k % 4 else b'{"status": "completed"}')
    await nc.close()
    return time.perf_counter() - started


async def measure(url: str, rounds: int) -> tuple[list[float], list[float], int, int]:
    config = parse_config(f"""
sources:
  - name: nats
    type: nats
    url: {url}
    timeout: 10s
    interval: 15s
    jobs: {{bucket: bench_jobs}}
""").sources[0]
    source = NatsSource(config, SourceContext(snapshot=lambda: Snapshot()))  # type: ignore[arg-type]
    collects, totals = [], []
    series = consumers = 0
    try:
        await source.collect()  # connect and warm up
        renderer = Renderer([source])  # the daemon's: kept across collections
        for _ in range(rounds):
            started = time.perf_counter()
            reading = await source.collect()
            collected = time.perf_counter()
            status = SourceStatus("nats", "nats", True, time.time(), collected - started, time.time())
            fragments = renderer.source(status, reading, {})
            done = time.perf_counter()
            collects.append(collected - started)
            totals.append(done - started)
            series = sum(body.count(b"\n") for body in fragments.values())
            consumers = reading.details["consumers"]["total"]
    finally:
        await source.close()
    return collects, totals, series, consumers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-nats-") as tmp:
        server = NatsServer(Path(tmp)).start()
        try:
            seeded = asyncio.run(seed(server.url, args.streams, args.messages))
            collects, totals, series, consumers = asyncio.run(measure(server.url, args.rounds))
        finally:
            server.stop()
    ms = lambda xs, q: 1000 * sorted(xs)[min(len(xs) - 1, int(q * len(xs)))]  # noqa: E731
    print(f"nats-server -js on a free port; {args.streams} streams x {args.messages} messages, one consumer each, "
          f"1 KV bucket of 100 keys (seeded in {seeded:.1f} s)")
    print(f"{'what':<38}{'median':>10}{'p90':>10}{'max':>10}")
    print(f"{'collect (all JS API reads + parsing)':<38}{1000 * statistics.median(collects):>8.0f}ms"
          f"{ms(collects, 0.9):>8.0f}ms{1000 * max(collects):>8.0f}ms")
    print(f"{'collect + render exposition fragment':<38}{1000 * statistics.median(totals):>8.0f}ms"
          f"{ms(totals, 0.9):>8.0f}ms{1000 * max(totals):>8.0f}ms")
    print(f"consumers seen: {consumers}; series rendered: {series}; rounds: {args.rounds}")
    budget = 1.0 * args.streams / 1000
    verdict = "within" if max(totals) <= budget else "OVER"
    print(f"target: {args.streams} streams collected in <= {budget:.1f} s: {verdict} (worst round {max(totals):.3f} s)")
    return 0 if verdict == "within" else 1


if __name__ == "__main__":
    sys.exit(main())
