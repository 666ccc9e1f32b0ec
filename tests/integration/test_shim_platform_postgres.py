"""Seed 003's `completed_last_hour` from PostgreSQL finished-at columns: a River schema (the library's
migrations, tests/support/postgres.py) read with the default 3600 s `finished_window`, and a good_job
schema read with no window, in a scratch database of this module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postgres import GOOD_JOB, RIVER, admin, scratch_database
from tests.support.shims import get, serve

ENV = {"OPS_TOKEN": "ops-secret"}
OPS = {"Authorization": "Bearer ops-secret"}


@pytest.fixture(scope="module")
def dsn() -> Iterator[str]:
    with scratch_database() as url:
        yield url


def config(dsn: str) -> str:
    return f"""
sources:
  - name: pg
    type: postgres
    dsn: {dsn}
    timeout: 5s
    queues:
      - {{preset: river, schema: river}}
      - {{preset: good_job, schema: gj, finished_window: null}}
systems:
  - name: jobs
    sources: [pg]
    queues:
      - {{source: pg, queue: mail}}
      - {{source: pg, queue: archive, priority: low}}
      - {{source: pg, queue: reports}}
auth:
  tokens:
    - {{name: ops, token: "${{OPS_TOKEN}}", roles: [ops]}}
shims:
  platform:
    system: jobs
"""


async def test_completed_last_hour_from_finished_at_columns(dsn: str) -> None:
    with admin(dsn) as conn:
        conn.execute("CREATE SCHEMA river;" + RIVER.format(s="river") + """
INSERT INTO river.river_job (kind, queue, state, scheduled_at, finalized_at) VALUES
  ('email', 'mail', 'available', now() - interval '1 minute', NULL),
  ('email', 'mail', 'running', now() - interval '1 minute', NULL),
  ('email', 'mail', 'completed', now(), now() - interval '10 minutes'),
  ('email', 'mail', 'completed', now(), now() - interval '59 minutes'),
  ('email', 'mail', 'completed', now(), now() - interval '61 minutes'),
  ('email', 'mail', 'completed', now(), now() - interval '2 days'),
  ('email', 'mail', 'discarded', now(), now() - interval '5 minutes'),
  ('email', 'mail', 'cancelled', now(), now() - interval '5 minutes'),
  ('zip', 'archive', 'completed', now(), now() - interval '1 minute'),
  ('zip', 'archive', 'completed', now(), now() - interval '30 minutes'),
  ('zip', 'archive', 'completed', now(), now() - interval '3 hours');
INSERT INTO river.river_queue (name) VALUES ('mail');
""")
        conn.execute("CREATE SCHEMA gj;" + GOOD_JOB.format(s="gj") + """
INSERT INTO gj.good_jobs (queue_name, scheduled_at, performed_at, finished_at, error, executions_count) VALUES
  ('reports', timezone('UTC', now()), NULL, NULL, NULL, 0),
  ('reports', timezone('UTC', now()), timezone('UTC', now()), timezone('UTC', now()) - interval '1 minute', NULL, 1);
""")
    async with serve(config(dsn), ENV) as (client, _):
        # mail: 2 of 4 completions within the hour (discarded and cancelled are not completions);
        # archive is seen only by the finished window (no live job, no river_queue row): one row, 2;
        # reports: good_job keeps finished_at, but this preset reads no window: unknown, null, never 0;
        # active_jobs counts each library's own running state (River 'running': mail's one running job)
        assert await get(client, "/api/v1/platform/system/queues", **OPS) == (200, {"success": True, "data": {
            "queues": [
                {"name": "mail", "priority": "normal", "active_jobs": 1, "waiting_jobs": 1,
                 "completed_last_hour": 2, "failed_jobs": None, "status": "healthy"},
                {"name": "archive", "priority": "low", "active_jobs": 0, "waiting_jobs": 0,
                 "completed_last_hour": 2, "failed_jobs": None, "status": "healthy"},
                {"name": "reports", "priority": "normal", "active_jobs": 0, "waiting_jobs": 1,
                 "completed_last_hour": None, "failed_jobs": None, "status": "healthy"},
            ]}})
