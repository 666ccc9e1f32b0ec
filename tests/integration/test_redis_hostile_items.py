"""Hostile data in the queues: 50 MB items at a list head, and a stream entry id in the far future.

Both on the shared Redis under the test's own prefix (deleted afterwards).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import redis

from tests.conftest import REDIS_URL
from tests.support.redis_libs import NOW, by_queue, collect

ROOT = Path(__file__).resolve().parents[2]
ITEM = 50 * 1_000_000

# One collection in a process of its own, its peak RSS (VmHWM) before and after: what the big items cost
# the source's memory, apart from what the test process itself holds to write them.
COLLECT = '''
import asyncio, json, sys
from pathlib import Path
from tests.support.redis_libs import make_source

def hwm():
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024

source = make_source(sys.argv[1], json.loads(sys.argv[2]), timeout="1s")
async def main():
    await source.client.ping()
    before = hwm()
    readings = [await source.collect() for _ in range(3)]  # each starts where the last ended
    await source.close()
    assert all(r.queues == readings[0].queues for r in readings)
    return before, readings[-1]
before, reading = asyncio.run(main())
print(json.dumps({"grew_mb": hwm() - before, "malformed": reading.malformed, "heavy": sorted(source.runner._heavy),
                  "queues": {q.queue: [q.depth, q.oldest_timestamp] for q in reading.queues}}))
'''


def test_big_head_items_are_malformed_and_never_held(redis_client: redis.Redis, prefix: str) -> None:
    """Two 50 MB items (no usable time) at the head, then a good one; a healthy queue beside it. The
    source stays up within a 1 s timeout, reads both depths, counts the head item as malformed (the
    items behind it are not scanned: they would cross the network whole as well), and its memory does
    not grow with the items (before: it read each whole, ~100 MB each with its text copy). From the
    second collection on, that head is read alone and the connection dropped once it is known to be too
    big, and the collections keep giving the same answer."""
    pad = b"x" * ITEM
    for _ in range(2):
        redis_client.rpush(f"{prefix}big", b'{"id": 1, "pad": "' + pad + b'"}')
    del pad
    redis_client.rpush(f"{prefix}big", json.dumps({"ts": NOW - 60}))
    redis_client.rpush(f"{prefix}ok", json.dumps({"ts": NOW - 5}))
    queues = [{"layout": "list", "name": name, "key": f"{prefix}{name}", "timestamp_field": "ts"}
              for name in ("ok", "big")]  # the big item's read last: its bytes end the round trip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", COLLECT, REDIS_URL, json.dumps(queues)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout)
    assert got["queues"] == {"big": [3, None], "ok": [1, NOW - 5]}
    assert got["malformed"] == 1
    assert got["heavy"] == [f"{prefix}big"]  # after the first, its head is read alone and cut short
    assert got["grew_mb"] < 20, got  # 1 MiB per value at most, and the big ones not at all


async def test_a_far_future_stream_id_is_a_timestamp_anomaly(redis_client: redis.Redis, prefix: str) -> None:
    """`99999999999999-0` (an explicit XADD id, year 5138) is no enqueue time: malformed, no age (it used
    to read as an age of 0, which hides a stuck queue), as for a list or sorted set stamp."""
    for key in ("log", "grouped"):
        redis_client.xadd(f"{prefix}{key}", {"k": "v"}, id="99999999999999-0")
    redis_client.xgroup_create(f"{prefix}grouped", "g", id="0")
    redis_client.xadd(f"{prefix}fine", {"k": "v"}, id=f"{int((NOW - 30) * 1000)}-0")
    queues = [{"layout": "stream", "name": "log", "key": f"{prefix}log", "groups": False},
              {"layout": "stream", "name": "grouped", "key": f"{prefix}grouped"},
              {"layout": "stream", "name": "fine", "key": f"{prefix}fine"}]
    reading = await collect(REDIS_URL, queues)
    got = by_queue(reading)
    assert [(got[q].depth, got[q].oldest_timestamp) for q in ("log", "grouped", "fine")] == [
        (1, None), (1, None), (1, NOW - 30)]
    assert reading.malformed == 2
