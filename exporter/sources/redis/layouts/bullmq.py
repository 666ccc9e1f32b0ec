"""BullMQ (and classic Bull, which keeps the same keys)."""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import model_validator

from exporter.model import Job, QueueStats
from exporter.sources.redis.layouts.base import (
    JobRange,
    Parsed,
    Plan,
    RegistryLayout,
    Workers,
    count,
    decoded,
    fill_tenant,
    flat_dict,
    flow,
    head_time,
    job_of,
    stored_count,
)
from exporter.sources.redis.script import WRONGTYPE, Op

_JOB_FIELDS = ("data", "timestamp", "attemptsMade", "failedReason", "stacktrace", "processedOn", "finishedOn")
_BULL_STATES = ("active", "delayed", "prioritized", "waiting-children", "completed", "failed")


class BullMQLayout(RegistryLayout):
    """BullMQ: `wait` list of ids (oldest at the tail, time in the job hash), state sets, `meta.paused`.

    Covers v5 (pause renames `wait` to `paused`) and v6 (jobs stay in `wait`; only `meta.paused`).
    """

    layout: Literal["bullmq"]
    queues: list[str] | None = None  # None: every queue with a `meta` hash (BullMQ writes one per queue)
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

    @model_validator(mode="after")
    def _named_per_tenant(self) -> BullMQLayout:
        if self.queues is None and self.per_tenant:
            raise ValueError("a bullmq layout with {tenant} in its prefix needs `queues` (found by SCAN only "
                             "without tenants)")
        return self

    def scan_match(self) -> str | None:
        return None if self.per_tenant else f"{self.prefix}:*:meta"

    def scanned_queue(self, key: str) -> str | None:
        name = key.removeprefix(f"{self.prefix}:").removesuffix(":meta")
        return name if name and name != key and ":" not in name else None

    def plan(self, tenant: str, found: list[Any], now: float, known: Sequence[str] = ()) -> Plan:
        ops: list[Op] = []
        stamp = self.stamp_kind("ms", now)
        queues = self.queues if self.queues is not None else sorted(known)
        for queue in queues:
            base = f"{fill_tenant(self.prefix, tenant)}:{queue}"
            ops += [
                ("LLEN", f"{base}:wait"),
                ("LLEN", f"{base}:paused"),
                ("HEADHASH", f"{base}:wait", "-1", f"{base}:", "timestamp", str(self.scan), stamp),
                ("HEADHASH", f"{base}:paused", "-1", f"{base}:", "timestamp", str(self.scan), stamp),
                ("LLEN", f"{base}:active"),
                *(("ZCARD", f"{base}:{state}") for state in _BULL_STATES[1:]),
                ("HGET", f"{base}:meta", "paused"),
                ("ZCOUNT", f"{base}:completed", repr((now - 3600) * 1000), "+inf"),
                # collectMetrics.lua (called by moveToFinished when the worker has `metrics` set):
                # HINCRBY <base>:metrics:completed|failed count 1, once per finished job; the
                # completed hash also holds prevTS/prevCount for completed_last_hour
                ("HGETALL", f"{base}:metrics:completed"),
                ("LFIRST", f"{base}:metrics:completed:data", "60"),
                ("HGET", f"{base}:metrics:failed", "count"),
            ]
        ops.append(("CLIENTNAMES", ""))
        width = 9 + len(_BULL_STATES)

        def parse(r: list[Any], now: float, out: Parsed) -> None:
            latest = self.latest(now)
            for i, queue in enumerate(queues):
                part = r[i * width : (i + 1) * width]
                heads = (head_time(part[2], "ms", out, latest), head_time(part[3], "ms", out, latest))
                times = [t for t in heads if t is not None]
                counts = dict(zip(_BULL_STATES, map(count, part[4:-5]), strict=True))
                # v5 paused queues keep their jobs in the `paused` list: still waiting, so in the depth
                depth = count(part[0]) + count(part[1]) + counts["prioritized"]
                states = tuple(counts.items())
                out.queues.append(QueueStats(
                    queue, depth, tenant, min(times) if times else None, states,
                    failed=counts["failed"], paused=part[-5] in ("1", "true"),
                    completed_last_hour=completed_last_hour(now, counts["completed"], count(part[-4]), part[-3],
                                                            part[-2]),
                ))
                done = WRONGTYPE if part[-3] == WRONGTYPE else flat_dict(part[-3]).get("count")
                if done is not None or part[-1] is not None:  # both absent: the app keeps no metrics
                    completed, failed = (0 if v is None else stored_count(v, out) for v in (done, part[-1]))
                    if completed is not None and failed is not None:
                        flow(out, tenant, queue, completed + failed, failed)
            names = r[-1]
            if names is None:
                return  # no client|list in the ACL: the workers series are absent (docs/sources/redis.md)
            workers = Workers(tenant, states=("unknown",))
            for queue in queues:
                # a Worker's blocking connection is named "<prefix>:<base64 queue>" or, with a worker
                # name, "...:w:<name>" (utils/create-backend.ts `createBlockingConnection`); Queue.getWorkers
                # matches exactly these (queue-getters.ts). Bull 3/4 names its bclient the same way
                # (lib/worker.js `setWorkerName`: clientName = keyPrefix + ":" + base64Name;
                # lib/commands/includes/collectMetrics.lua is the same counter).
                name = f"{fill_tenant(self.prefix, tenant)}:{base64.b64encode(queue.encode()).decode()}"
                n = sum(1 for c in names if c == name or c.startswith(f"{name}:w:"))
                if n:
                    workers.add([queue], "unknown", n=n)
            workers.emit(out, queues, capacity=False, busy=False)

        return Plan(ops, parse)


def completed_last_hour(now: float, kept: int, in_window: int, meta: Any, points: Any) -> int | None:
    """Jobs BullMQ finished in the last 3600 s.

    With worker metrics on (`metrics: {maxDataPoints}`), from BullMQ's own per-minute counts
    (`collectMetrics.lua`): `count - prevCount` jobs finished in the minute of `prevTS` (a later one
    would have pushed a point), and data point i counts minute `prevTS` - 1 - i; so the hour holds the
    first 59 - m points, m = minutes since `prevTS`. Without metrics, the completed set's scores are
    finish times (`moveToFinished`): exact unless `removeOnComplete` dropped jobs, which an empty set
    cannot tell from none finished, so empty is unknown (None), not 0.
    """
    fields = (meta if isinstance(meta, dict) else
              dict(zip(meta[::2], meta[1::2], strict=False)) if isinstance(meta, list) else {})
    if "prevTS" in fields:
        try:
            since = math.floor(now / 60) - math.floor(float(fields["prevTS"]) / 60000)
            current = int(fields.get("count", 0)) - int(fields.get("prevCount", 0)) if since <= 59 else 0
            rows = points if isinstance(points, list) else []
            return current + sum(int(p) for p in rows[: max(0, 59 - since)])
        except ValueError:
            return None
    return in_window if kept else None
