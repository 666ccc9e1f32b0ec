"""No series twice: what the config cannot rule out (two registries announcing one queue name) is
emitted once at run time, counted and logged; the job listing reads the layout that holds the queue."""

from __future__ import annotations

import json
import logging
import time

import pytest
import redis

from tests.conftest import REDIS_URL
from tests.support.redis_libs import seed_sidekiq
from tests.support.shims import get, serve


async def test_two_sidekiq_namespaces_emit_each_series_once(redis_client: redis.Redis, prefix: str,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="jobqueue.scheduler")
    now = time.time()
    seed_sidekiq(redis_client, f"{prefix}a:", "default", [now - 30, now - 20])
    seed_sidekiq(redis_client, f"{prefix}b:", "default", [now - 5])
    text = f"""
sources:
  - name: redis
    type: redis
    url: {REDIS_URL}
    queues:
      - {{layout: sidekiq, prefix: "{prefix}a:"}}
      - {{layout: sidekiq, prefix: "{prefix}b:"}}
      - {{layout: sidekiq, prefix: "{prefix}c:", tenant: other-app}}
"""
    seed_sidekiq(redis_client, f"{prefix}c:", "default", [now - 1] * 4)
    async with serve(text) as (client, _):
        metrics = await (await client.get("/metrics")).text()
    depth = [line for line in metrics.splitlines() if line.startswith("jobqueue_depth{")]
    assert depth == ['jobqueue_depth{source="redis",tenant="",queue="default"} 2',  # the first layout's
                     'jobqueue_depth{source="redis",tenant="other-app",queue="default"} 4']
    # depth + 3 library_jobs states + the queue's workers series (3 states, capacity, busy slots): the
    # first layout's kept, so depth and workers of `default` come from the same app
    assert 'jobqueue_series_collisions{source="redis"} 9\n' in metrics
    lines = [line for line in metrics.splitlines() if line.startswith("jobqueue_library_jobs{")]
    assert len(lines) == len(set(lines)) == 6
    workers = [line for line in metrics.splitlines() if line.startswith("jobqueue_workers{")]
    assert len(workers) == len(set(workers)) == 6  # 3 states of tenant "" and 3 of other-app
    # library-wide counts (queue "") of the two namespaces add up instead (none processed yet: 0)
    assert 'jobqueue_jobs_processed_total{source="redis",tenant="",queue=""} 0\n' in metrics
    record = next(r for r in caplog.records if r.getMessage() == "series produced twice, first kept")
    assert record.__dict__["series"][0] == ["jobqueue_depth", "", "default"]


async def test_job_listing_reads_the_layout_that_holds_the_queue(redis_client: redis.Redis, prefix: str) -> None:
    """A Sidekiq layout without `queues` claims every name in the config; `emails` is BullMQ's."""
    now = time.time()
    for i in range(3):
        redis_client.lpush(f"{prefix}bull:emails:wait", f"j{i}")
        redis_client.hset(f"{prefix}bull:emails:j{i}", mapping={
            "name": "send", "data": json.dumps({"n": i}), "timestamp": int((now - 60 + i) * 1000), "attemptsMade": 0})
    seed_sidekiq(redis_client, prefix, "mail", [now - 3])
    text = f"""
sources:
  - name: redis
    type: redis
    url: {REDIS_URL}
    queues:
      - {{layout: sidekiq, prefix: "{prefix}"}}
      - {{layout: bullmq, prefix: "{prefix}bull", queues: [emails]}}
systems:
  - name: app
    sources: [redis]
    queues: [{{source: redis, queue: emails}}, {{source: redis, queue: mail}}]
auth:
  tokens: [{{name: ops, token: ops-secret, roles: [ops]}}]
shims:
  platform: {{system: app}}
"""
    path = "/api/v1/platform/system/queues/{queue_name}/jobs"
    ops = {"Authorization": "Bearer ops-secret"}
    async with serve(text) as (client, _):
        status, body = await get(client, "/api/v1/platform/system/queues/emails/jobs", path, **ops)
        assert (status, [j["id"] for j in body["data"]["jobs"]]) == (200, ["j0", "j1", "j2"])
        status, body = await get(client, "/api/v1/platform/system/queues/mail/jobs", path, **ops)
        assert (status, body["data"]["pagination"]["total"]) == (200, 1)
