"""Redis Cluster benchmark: the collection of N tenants' list queues on a 3-primary cluster beside one server.

Run: `python3 bench/bench_redis_cluster.py [--tenants 10000]`. It starts a local cluster (three
`redis-server --cluster-enabled yes` + `redis-cli --cluster create`) and one plain server, writes one
JSON item into each tenant's list on both, and prints the median of 7 collections (pipeline path:
LLEN + LINDEX per tenant) for each. On a cluster the same reads are grouped by node, one pipeline
per node, so the extra cost is routing each key to its slot. It is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.redis_libs import make_source
from tests.support.redis_topology import LocalCluster
from tests.support.servers import RedisServer

QUEUES = [{"layout": "list", "name": "q", "key": "tenant_{tenant}:q", "timestamp_field": "ts"}]


def fill(client: Any, tenants: list[str]) -> None:
    pipe = client.pipeline(transaction=False)
    for tenant in tenants:
        pipe.rpush(f"tenant_{tenant}:q", json.dumps({"ts": 1.7e9}))
    pipe.execute()


async def median_collection(url: str, tenants: list[str], **extra: Any) -> float:
    source = make_source(url, QUEUES, "pipeline", None, tenants={"static": tenants}, **extra)
    try:
        await source.collect()
        times = []
        for _ in range(7):
            started = time.perf_counter()
            reading = await source.collect()
            times.append(time.perf_counter() - started)
        assert len(reading.queues) == len(tenants)
        return statistics.median(times)
    finally:
        await source.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=10000)
    tenants = [f"t{i:05d}" for i in range(parser.parse_args().tenants)]
    root = Path(tempfile.mkdtemp(prefix="jqbench-cluster-"))
    (root / "single").mkdir()
    cluster = LocalCluster(root / "cluster").start()
    single = RedisServer(root / "single").start()
    try:
        fill(cluster.client(), tenants)
        fill(redis.Redis(port=single.port), tenants)
        one = asyncio.run(median_collection(single.url, tenants))
        three = asyncio.run(median_collection(cluster.url, tenants, cluster=True))
        print(f"{len(tenants)} tenants: one server {one * 1000:.0f} ms, 3-node cluster {three * 1000:.0f} ms")
    finally:
        cluster.stop()
        single.stop()


if __name__ == "__main__":
    main()
