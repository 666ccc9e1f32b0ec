"""Bee-Queue (Node.js).

Keys from bee-queue 2.0 (`Queue` constructor `keyPrefix`, `checkHealth` and `_finishJob` in
`lib/queue.js`; `lib/lua/addJob.lua`, `addDelayedJob.lua`, `raiseDelayedJobs.lua`; `Job` in
`lib/job.js`), `<p>` = `<prefix>:<queue>:` with prefix `bq` by default:

- `<p>waiting`: list of job ids (LPUSH; workers BRPOPLPUSH from the tail to `active`).
- `<p>active`: list of the ids being run; `<p>stalling`: set the stall check copies them into.
- `<p>succeeded` / `<p>failed`: sets of finished ids (unless `removeOnSuccess`/`removeOnFailure`).
- `<p>delayed`: zset of delayed jobs and retries with a backoff, scored by the time they run (ms).
- `<p>jobs`: hash id -> job JSON `{"data", "options", "status"}`; `options.timestamp` is the job's
  creation time in ms (`Date.now()`).

These are exactly the counts of Bee-Queue's own `checkHealth()`. Bee-Queue keeps no registry of
queue names, no counters and no worker list.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from exporter.model import Job, QueueStats
from exporter.sources.redis.layouts.base import (
    JobRange,
    Layout,
    Parsed,
    Plan,
    Reads,
    Results,
    as_dict,
    count,
    fill_tenant,
    head_time,
    job_of,
    json_dict,
)
from exporter.sources.redis.ops import HeadHGet, Llen, Scard, Zcard

_STATES = ("active", "succeeded", "failed", "delayed")


class BeeQueueLayout(Layout):
    """Bee-Queue: the `waiting` list (oldest at the tail, time in the `jobs` hash) and the state keys."""

    layout: Literal["beequeue"]
    queues: list[str]
    prefix: str = "bq"

    def templates(self) -> Sequence[str]:
        return (self.prefix,)

    def job_range(self, tenant: str, queue: str, status: str) -> JobRange | None:
        """`waiting` and `active` are id lists with the oldest at the tail (LPUSH, BRPOPLPUSH); each job is
        the field id of the `jobs` hash. `succeeded`/`failed` are sets, with no order to page by: not listed."""
        p = f"{fill_tenant(self.prefix, tenant)}:{queue}:"
        key = {"waiting": "waiting", "active": "active"}.get(status)
        return JobRange("list", p + key, False, body_hash=f"{p}jobs") if key else None

    def job(self, item: str, fields: dict[str, str], queue: str, status: str) -> Job:
        """A Bee-Queue job (`Job#toData`): `data`, `options` (`timestamp` ms, `retries` left,
        `stacktraces` of failed attempts, newest first) and `status`."""
        body = json_dict(fields.get("body"))
        options = as_dict(body.get("options"))
        traces = options.get("stacktraces")
        trace = traces[0] if isinstance(traces, list) and traces else None
        return job_of(item, queue, status, body.get("data"), trace, trace, None, options.get("timestamp"), None)

    def plan(self, tenant: str, found: Results, now: float) -> Plan:
        reads: Reads = {}
        for queue in self.queues:
            p = f"{fill_tenant(self.prefix, tenant)}:{queue}:"
            reads[queue, "waiting"] = Llen(f"{p}waiting")
            reads[queue, "head"] = HeadHGet(f"{p}waiting", from_tail=True, hash=f"{p}jobs", fields="options.timestamp",
                                            scan=self.scan, kind="num")
            reads[queue, "active"] = Llen(f"{p}active")
            reads[queue, "succeeded"] = Scard(f"{p}succeeded")
            reads[queue, "failed"] = Scard(f"{p}failed")
            reads[queue, "delayed"] = Zcard(f"{p}delayed")

        def parse(r: Results, now: float, out: Parsed) -> None:
            for queue in self.queues:
                states = tuple((state, count(r[queue, state])) for state in _STATES)
                out.queues.append(QueueStats(queue, count(r[queue, "waiting"]), tenant,
                                             head_time(r[queue, "head"], "ms", out), states,
                                             failed=count(r[queue, "failed"])))

        return Plan(reads, parse)
