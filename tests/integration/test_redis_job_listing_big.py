"""The job listing with 50 MB items in the page (issue 20 item 4): the one live read holds no reply over
1 MiB, as the collection does not (see test_redis_hostile_items.py).

Before, `jobs.read_page` read the page through redis-py, which takes every item whole: 100 items of
50 MB each would be 5 GB in the daemon. Now it reads on a lean connection of its own (wire.py's
`Replies` skips a bulk reply over MAX_ITEM as it streams by and hands TOO_BIG), and such an item lists
as a job whose body could not be read (jobs.UNREADABLE). On the shared Redis under the test's own
prefix (deleted afterwards by the `prefix` fixture).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import redis

from exporter.sources.redis.jobs import UNREADABLE
from tests.conftest import REDIS_URL
from tests.support.shims import listing_config

ROOT = Path(__file__).resolve().parents[2]
ITEM = 50 * 1_000_000

# The real app and shim in a process of its own; its peak RSS (VmHWM) before and after one page:
# what the big items cost the daemon, apart from what the test process holds to write them.
LIST_PAGE = '''
import asyncio, json, sys
from pathlib import Path
from tests.support.shims import serve

def hwm():
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024

async def main():
    async with serve(sys.argv[1], {"OPS_TOKEN": "ops-secret"}) as (client, scheduler):
        before = hwm()
        response = await client.get("/api/v1/platform/system/queues/jobs/jobs?status=waiting&limit=100",
                                    headers={"Authorization": "Bearer ops-secret"})
        body = await response.json()
        return {"status": response.status, "body": body, "grew_mb": hwm() - before}
print(json.dumps(asyncio.run(main())))
'''


def test_a_page_with_50mb_items_lists_them_unread_and_holds_none(redis_client: redis.Redis, prefix: str) -> None:
    """Good, 50 MB, good, 50 MB, good: the page answers 200 with all five in order and the right total,
    the good ones read whole, the big ones marked UNREADABLE (nothing taken from them), and the daemon's
    peak RSS grows by far less than one item (before: ~100 MB per item, the reply and its text)."""
    key = f"{prefix}jobs"
    pad = b"x" * ITEM
    for n in range(5):
        if n % 2:
            redis_client.rpush(key, b'{"id": "big%d", "data": "' % n + pad + b'"}')
        else:
            redis_client.rpush(key, json.dumps({"id": f"ok{n}", "data": {"n": n}, "attempts": 1}))
    del pad
    # 100 MB cross the loopback on a loaded machine: a longer bound of the listing
    config = listing_config(REDIS_URL, key, "{system: s, jobs_timeout: 60s}")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", LIST_PAGE, config], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout)
    assert got["status"] == 200, got["body"]
    jobs = got["body"]["data"]["jobs"]
    assert got["body"]["data"]["pagination"]["total"] == 5
    assert [(j["id"], j["payload"]) for j in jobs] == [
        ("ok0", {"n": 0}), (None, UNREADABLE), ("ok2", {"n": 2}), (None, UNREADABLE), ("ok4", {"n": 4})]
    assert [j["attempts"] for j in jobs] == [1, None, 1, None, 1]
    assert got["grew_mb"] < 20, got["grew_mb"]  # at most 1 MiB of any one reply; the 50 MB ones not at all


async def test_a_job_body_over_the_bound_keeps_its_id(redis_client: redis.Redis, prefix: str) -> None:
    """Where the item is an id and the body is stored elsewhere (dramatiq: the id in the queue list, the
    message in the `.msgs` hash, as dispatch.lua's `enqueue` writes them: HSET then RPUSH), a body over
    1 MiB lists under its id, payload UNREADABLE; the next job is read whole."""
    from tests.support.shims import get, serve

    ns = f"{prefix}dq"
    small = {"message_id": "m2", "actor_name": "ok", "args": [2], "kwargs": {}, "message_timestamp": 1_700_000_000_000}
    redis_client.hset(f"{ns}:default.msgs", mapping={
        "m1": json.dumps({"message_id": "m1", "actor_name": "big", "args": ["x" * (2 << 20)], "kwargs": {}}),
        "m2": json.dumps(small)})
    redis_client.rpush(f"{ns}:default", "m1", "m2")
    config = f"""
sources:
  - name: r
    type: redis
    url: {REDIS_URL}
    queues:
      - {{layout: dramatiq, namespace: "{ns}"}}
systems:
  - {{name: s, sources: [r], queues: [{{source: r, queue: default}}]}}
auth:
  tokens:
    - {{name: ops, token: "${{OPS_TOKEN}}", roles: [ops]}}
shims:
  platform: {{system: s}}
"""
    async with serve(config, {"OPS_TOKEN": "ops-secret"}) as (client, _):
        status, body = await get(client, "/api/v1/platform/system/queues/default/jobs?status=waiting",
                                 "/api/v1/platform/system/queues/{queue_name}/jobs",
                                 Authorization="Bearer ops-secret")  # checked against the OpenAPI document
        assert status == 200
    jobs = body["data"]["jobs"]
    assert body["data"]["pagination"]["total"] == 2
    assert [(j["id"], j["payload"], j["created_at"]) for j in jobs] == [
        ("m1", UNREADABLE, None), ("m2", {"actor_name": "ok", "args": [2], "kwargs": {}}, "2023-11-14T22:13:20Z")]
