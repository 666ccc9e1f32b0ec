"""arq (Python): one sorted set per queue, scored by the time a job may run.

Keys from arq 0.28 (`arq/constants.py`; `ArqRedis.enqueue_job` in `arq/connections.py`;
`Worker.record_health`, `finish_job` and `finish_failed_job` in `arq/worker.py`):

- `<queue>` (default `arq:queue`): zset of job ids; score = enqueue time in ms, or the deferred run
  time (`_defer_by`/`_defer_until`, and a retry's new time via ZINCRBY). A job stays in it while it
  runs and is removed when it finishes (ZREM in `finish_job`/`finish_failed_job`).
- `arq:job:<id>`: the job, a pickle (or a custom serializer) holding `et`, the enqueue time; not
  read by a collection; the job listing reads its function name, tries and `et` from the pickle's
  opcodes, without unpickling it.
- `arq:in-progress:<id>`: set by `Worker.start_jobs` while a job runs (`Job.status` calls such a job
  `in_progress`); read with EXISTS for the oldest `cap` ready ids, in one batched op, which also
  gives the oldest ready id that is not running.
- `arq:retry:<id>`, `arq:result:<id>`: one key per job with no index, so they are not read.
- `<queue>:health-check`: a string `"<date> j_complete=N j_failed=N j_retried=N j_ongoing=N queued=N"`
  that a worker rewrites every `health_check_interval` (default 3600 s) with a TTL of that interval
  plus 1 s: the latest worker's counters since it started, and its liveness. Only the liveness is
  used: the counters are one worker's, not the queue's; a worker with every `max_jobs` slot busy
  writes none, and its jobs' in-progress keys count it instead (see `_health`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import pairwise
from typing import Annotated, Any, Literal

from pydantic import Field

from exporter.model import Job, QueueStats
from exporter.sources.redis.items import WRONGTYPE
from exporter.sources.redis.layouts.base import (
    JobRange,
    Layout,
    Parsed,
    Plan,
    Reads,
    Results,
    Workers,
    count,
    fill_tenant,
    job_of,
    pickled_values,
)
from exporter.sources.redis.ops import Get, Zcard, ZCount, ZExists

_HEALTH = re.compile(r"j_complete=(\d+) j_failed=(\d+) j_retried=(\d+) j_ongoing=(\d+)")


class ArqLayout(Layout):
    """arq as its `Job.status` sees it: in progress (in-progress key), queued (score <= now) or deferred."""

    layout: Literal["arq"]
    queues: list[str] = ["arq:queue"]  # queue names are whole keys (arq's `default_queue_name`)
    cap: Annotated[int, Field(ge=1, le=100000)] = 1000  # oldest ready ids checked for an in-progress key

    def templates(self) -> Sequence[str]:
        return self.queues

    def job_range(self, tenant: str, queue: str, status: str) -> JobRange | None:
        """The queue's zset, lowest score first: every job not finished (waiting, deferred and running:
        arq keeps them in one set); each job's pickle `arq:job:<id>` is read undecoded for its fields."""
        if status != "waiting":
            return None
        return JobRange("zset", fill_tenant(queue, tenant), True, body_prefix="arq:job:", scores=True, binary=True)

    def job(self, item: str, fields: dict[str, str], queue: str, status: str) -> Job:
        """arq's job (`serialize_job` in arq/jobs.py: a pickled dict `t` tries, `f` function, `a`, `k`,
        `et` enqueue time in ms), read from its opcodes, never unpickled: the function name, the tries
        so far and the enqueue time; `updated_at` is the score (the enqueue time, or the time a deferred
        or retried job may run)."""
        pairs = list(pairwise(pickled_values(fields.get("body", "").encode("latin-1"))))
        # `t` and `f` are the dict's first keys, `et` its last: the args and kwargs between them may hold any
        tries = next((v for k, v in pairs if k == "t" and isinstance(v, int)), None)
        function = next((v for k, v in pairs if k == "f" and isinstance(v, str)), None)
        enqueued = next((v for k, v in reversed(pairs) if k == "et" and isinstance(v, int)), None)
        return job_of(item, queue, status, {"function": function} if function else None, None, None, tries,
                      enqueued, fields.get("score"))

    def plan(self, tenant: str, found: Results, now: float) -> Plan:
        queues = [fill_tenant(q, tenant) for q in self.queues]
        now_ms = str(int(now * 1000))
        reads: Reads = {}
        for key in queues:
            reads[key, "ready"] = ZCount(key, low="-inf", high=now_ms)
            reads[key, "total"] = Zcard(key)
            reads[key, "running"] = ZExists(key, high=now_ms, key_prefix="arq:in-progress:", cap=self.cap)
            reads[key, "health"] = Get(f"{key}:health-check")

        def parse(r: Results, now: float, out: Parsed) -> None:
            for queue in queues:
                ready, total, seen, health = (r[queue, what] for what in ("ready", "total", "running", "health"))
                ready, total = count(ready), count(total)
                running, oldest = 0, None
                if seen == WRONGTYPE:  # a key of another type
                    out.malformed += 1
                else:  # the lowest score of a ready job not running: its enqueue time (ms)
                    running = int(seen[0])
                    oldest = None if seen[1] is None else float(seen[1]) / 1000
                queued = max(ready - running, 0)  # pipelined reads are not one snapshot: never below 0
                states = (("queued", queued), ("in_progress", running), ("deferred", max(total - ready, 0)))
                out.queues.append(QueueStats(queue, queued, tenant, oldest, states))
                self._health(tenant, queue, health, running, out)

        return Plan(reads, parse)

    @staticmethod
    def _health(tenant: str, queue: str, raw: Any, running: int, out: Parsed) -> None:
        """A live worker: the latest writer of the health-check string, or, while it is absent, one that
        runs jobs. arq writes the key only between polls, and a worker whose every `max_jobs` slot is
        busy does not poll (`_poll_iteration` waits on `self.sem` before `heart_beat`), so the key
        expires under a busy worker; the in-progress keys its jobs hold (`start_jobs`, kept until
        `finish_job`, or `in_progress_timeout_s` = job timeout + 10 s after a crash) say it runs.
        Busy slots are those in-progress jobs, read now (`j_ongoing` is as old as the key)."""
        match = _HEALTH.search(raw) if isinstance(raw, str) and raw != WRONGTYPE else None
        if raw is not None and match is None:
            out.malformed += 1
        tally = Workers(tenant)
        if match or running:  # one worker: arq keeps no list of workers
            tally.add([queue], "busy" if running else "idle", busy=running)
        # j_complete/j_failed are NOT exported as jobqueue_jobs_*_total: they are the counts of whichever
        # worker wrote the key last, so with two workers they jump between two series of numbers and
        # Prometheus would read every step down as a reset (a false rate). arq keeps no queue total.
        tally.emit(out, [queue], capacity=False)
