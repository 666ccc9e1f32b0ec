"""BullMQ (and classic Bull, which keeps the same keys)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, Literal

from exporter.model import Job, QueueStats
from exporter.sources.redis.layouts.base import (
    JobRange,
    Layout,
    Parsed,
    Plan,
    Workers,
    count,
    decoded,
    fill_tenant,
    flow,
    head_time,
    job_of,
    stored_count,
)
from exporter.sources.redis.script import Op

_JOB_FIELDS = ("data", "timestamp", "attemptsMade", "failedReason", "stacktrace", "processedOn", "finishedOn")
_BULL_STATES = ("active", "delayed", "prioritized", "waiting-children", "completed", "failed")


class BullMQLayout(Layout):
    """BullMQ: `wait` list of ids (oldest at the tail, time in the job hash), state sets, `meta.paused`.

    Covers v5 (pause renames `wait` to `paused`) and v6 (jobs stay in `wait`; only `meta.paused`).
    """

    layout: Literal["bullmq"]
    queues: list[str]
    prefix: str = "bull"

    def templates(self) -> Sequence[str]:
        return (self.prefix,)

    def job_range(self, tenant: str, queue: str, status: str) -> JobRange | None:
        """Ids in `wait`/`active` (newest pushed at the head) and the `failed`/`completed` sets; the job
        itself is the hash `<prefix>:<queue>:<id>`."""
        base = f"{fill_tenant(self.prefix, tenant)}:{queue}"
        kind: Literal["list", "zset"] = "list" if status in ("waiting", "active") else "zset"
        key = {"waiting": "wait", "active": "active", "failed": "failed", "completed": "completed"}.get(status)
        return JobRange(kind, f"{base}:{key}", False, f"{base}:", _JOB_FIELDS) if key else None

    def job(self, item: str, fields: dict[str, str], queue: str, status: str) -> Job:
        get = fields.get
        return job_of(item, queue, status, decoded(get("data")), get("failedReason"), decoded(get("stacktrace")),
                      get("attemptsMade"), get("timestamp"), get("finishedOn") or get("processedOn"))

    def plan(self, tenant: str, found: list[Any], now: float) -> Plan:
        ops: list[Op] = []
        for queue in self.queues:
            base = f"{fill_tenant(self.prefix, tenant)}:{queue}"
            ops += [
                ("LLEN", f"{base}:wait"),
                ("LLEN", f"{base}:paused"),
                ("HEADHASH", f"{base}:wait", "-1", f"{base}:", "timestamp", str(self.scan), "num"),
                ("HEADHASH", f"{base}:paused", "-1", f"{base}:", "timestamp", str(self.scan), "num"),
                ("LLEN", f"{base}:active"),
                *(("ZCARD", f"{base}:{state}") for state in _BULL_STATES[1:]),
                ("HGET", f"{base}:meta", "paused"),
                # collectMetrics.lua (called by moveToFinished when the worker has `metrics` set):
                # HINCRBY <base>:metrics:completed|failed count 1, once per finished job
                ("HGET", f"{base}:metrics:completed", "count"),
                ("HGET", f"{base}:metrics:failed", "count"),
            ]
        ops.append(("CLIENTNAMES", ""))
        width = 7 + len(_BULL_STATES)

        def parse(r: list[Any], now: float, out: Parsed) -> None:
            for i, queue in enumerate(self.queues):
                part = r[i * width : (i + 1) * width]
                times = [t for t in (head_time(part[2], "ms", out), head_time(part[3], "ms", out)) if t is not None]
                counts = dict(zip(_BULL_STATES, map(count, part[4:-3]), strict=True))
                # v5 paused queues keep their jobs in the `paused` list: still waiting, so in the depth
                depth = count(part[0]) + count(part[1]) + counts["prioritized"]
                states = tuple(counts.items())
                out.queues.append(QueueStats(
                    queue, depth, tenant, min(times) if times else None, states,
                    failed=counts["failed"], paused=part[-3] in ("1", "true"),
                ))
                if part[-2] is not None or part[-1] is not None:  # both absent: the app keeps no metrics
                    completed, failed = (0 if v is None else stored_count(v, out) for v in part[-2:])
                    if completed is not None and failed is not None:
                        flow(out, tenant, queue, completed + failed, failed)
            names = r[-1]
            if names is None:
                return  # no client|list in the ACL: the workers series are absent (docs/sources/redis.md)
            workers = Workers(tenant, states=("unknown",))
            for queue in self.queues:
                # a Worker's blocking connection is named "<prefix>:<base64 queue>" or, with a worker
                # name, "...:w:<name>" (utils/create-backend.ts `createBlockingConnection`); Queue.getWorkers
                # matches exactly these (queue-getters.ts). Bull 3/4 names its bclient the same way
                # (lib/worker.js `setWorkerName`: clientName = keyPrefix + ":" + base64Name;
                # lib/commands/includes/collectMetrics.lua is the same counter).
                name = f"{fill_tenant(self.prefix, tenant)}:{base64.b64encode(queue.encode()).decode()}"
                n = sum(1 for c in names if c == name or c.startswith(f"{name}:w:"))
                if n:
                    workers.add([queue], "unknown", n=n)
            workers.emit(out, self.queues, capacity=False, busy=False)

        return Plan(ops, parse)
