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
from typing import Any, Literal

from exporter.model import QueueStats
from exporter.sources.redis.layouts.base import Layout, Parsed, Plan, count, fill_tenant, head_time
from exporter.sources.redis.script import Op

_STATES = ("active", "succeeded", "failed", "delayed")


class BeeQueueLayout(Layout):
    """Bee-Queue: the `waiting` list (oldest at the tail, time in the `jobs` hash) and the state keys."""

    layout: Literal["beequeue"]
    queues: list[str]
    prefix: str = "bq"

    def templates(self) -> Sequence[str]:
        return (self.prefix,)

    def plan(self, tenant: str, found: list[Any], now: float) -> Plan:
        ops: list[Op] = []
        for queue in self.queues:
            p = f"{fill_tenant(self.prefix, tenant)}:{queue}:"
            ops += [
                ("LLEN", f"{p}waiting"),
                ("HEADHGET", f"{p}waiting", "-1", f"{p}jobs", "options.timestamp", str(self.scan), "num"),
                ("LLEN", f"{p}active"), ("SCARD", f"{p}succeeded"), ("SCARD", f"{p}failed"), ("ZCARD", f"{p}delayed"),
            ]

        def parse(r: list[Any], now: float, out: Parsed) -> None:
            for i, queue in enumerate(self.queues):
                part = r[6 * i : 6 * i + 6]
                states = tuple(zip(_STATES, map(count, part[2:]), strict=True))
                out.queues.append(QueueStats(queue, count(part[0]), tenant, head_time(part[1], "ms", out), states,
                                             failed=states[2][1]))

        return Plan(ops, parse)
