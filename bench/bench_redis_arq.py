"""arq benchmark: what the in-progress check (op ZEXISTS, one EXISTS per ready job up to `cap`) costs.

Run: `python3 bench/bench_redis_arq.py [--jobs 20000]`. It starts its own redis-server on a free
port, writes an arq queue of N ready jobs (every 50th with an `arq:in-progress:` key, as arq's
`Worker.start_jobs` sets it), and prints, for each read path, the mean collection time in process
and the Redis CPU per collection (`INFO commandstats`). It is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.redis_libs import make_source
from tests.support.servers import RedisServer

ROUNDS = 20


async def measure(url: str, admin: redis.Redis, mode: str) -> tuple[float, float, dict[str, int]]:
    """Mean wall time and Redis CPU of one collection (ms), and the states read."""
    source = make_source(url, [{"layout": "arq"}], mode)
    try:
        await source.collect()  # warm: connection, script cache
        admin.config_resetstat()
        start = time.perf_counter()
        for _ in range(ROUNDS):
            reading = await source.collect()
        wall = (time.perf_counter() - start) / ROUNDS * 1000
    finally:
        await source.close()
    stats = admin.info("commandstats")
    usec = sum(v["usec"] for k, v in stats.items() if k not in ("cmdstat_info", "cmdstat_config|resetstat"))
    return wall, usec / ROUNDS / 1000, dict(reading.queues[0].states)


async def main(jobs: int) -> None:
    server = RedisServer(Path(tempfile.mkdtemp())).start()
    try:
        admin = redis.Redis.from_url(server.url)
        pipe = admin.pipeline(transaction=False)
        for i in range(jobs):
            pipe.zadd("arq:queue", {f"j{i}": 1_699_000_000_000 + i})
            if i % 50 == 0:
                pipe.set(f"arq:in-progress:j{i}", b"1")
        pipe.execute()
        print(f"arq queue, {jobs} ready jobs, cap 1000")
        print(f"{'path':<10}{'collection ms':>15}{'redis cpu ms':>14}  states")
        for mode in ("pipeline", "lua"):
            wall, cpu, states = await measure(server.url, admin, mode)
            print(f"{mode:<10}{wall:>15.2f}{cpu:>14.2f}  {states}")
        admin.close()
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20000)
    asyncio.run(main(parser.parse_args().jobs))
