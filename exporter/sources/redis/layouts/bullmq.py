"""BullMQ (and classic Bull, which keeps the same keys)."""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import model_validator

from exporter.model import Job, QueueStats
from exporter.sources.redis.items import WRONGTYPE
from exporter.sources.redis.layouts.base import (
    JobRange,
    Parsed,
    Plan,
    Reads,
    RegistryLayout,
    Results,
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
from exporter.sources.redis.ops import ClientNames, HeadHash, HGet, HGetAll, LFirst, Llen, Zcard, ZCount

_JOB_FIELDS = ("data", "timestamp", "attemptsMade", "failedReason", "stacktrace", "processedOn", "finishedOn")
_BULL_SETS = ("delayed", "prioritized", "waiting-children", "completed", "failed")  # zsets, after `active`


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

    def plan(self, tenant: str, found: Results, now: float, known: Sequence[str] = ()) -> Plan:
        stamp = self.stamp_kind("ms", now)
        queues = self.queues if self.queues is not None else sorted(known)
        reads: Reads = {"clients": ClientNames("")}
        for queue in queues:
            base = f"{fill_tenant(self.prefix, tenant)}:{queue}"
            for waiting in ("wait", "paused"):  # v5 paused queues keep their jobs in `paused`
                reads[queue, waiting] = Llen(f"{base}:{waiting}")
                reads[queue, waiting, "head"] = HeadHash(f"{base}:{waiting}", from_tail=True, hash_prefix=f"{base}:",
                                                         fields="timestamp", scan=self.scan, kind=stamp)
            reads[queue, "active"] = Llen(f"{base}:active")
            for state in _BULL_SETS:
                reads[queue, state] = Zcard(f"{base}:{state}")
            reads[queue, "meta.paused"] = HGet(f"{base}:meta", field="paused")
            reads[queue, "completed_hour"] = ZCount(f"{base}:completed", low=repr((now - 3600) * 1000))
            # collectMetrics.lua (called by moveToFinished when the worker has `metrics` set):
            # HINCRBY <base>:metrics:completed|failed count 1, once per finished job; the
            # completed hash also holds prevTS/prevCount for completed_last_hour
            reads[queue, "metrics"] = HGetAll(f"{base}:metrics:completed")
            reads[queue, "metrics_points"] = LFirst(f"{base}:metrics:completed:data", n=60)
            reads[queue, "metrics_failed"] = HGet(f"{base}:metrics:failed", field="count")

        def parse(r: Results, now: float, out: Parsed) -> None:
            latest = self.latest(now)
            for queue in queues:
                heads = (head_time(r[queue, "wait", "head"], "ms", out, latest),
                         head_time(r[queue, "paused", "head"], "ms", out, latest))
                times = [t for t in heads if t is not None]
                counts = {"active": count(r[queue, "active"]), **{s: count(r[queue, s]) for s in _BULL_SETS}}
                depth = count(r[queue, "wait"]) + count(r[queue, "paused"]) + counts["prioritized"]
                meta = r[queue, "metrics"]
                out.queues.append(QueueStats(
                    queue, depth, tenant, min(times) if times else None, tuple(counts.items()),
                    failed=counts["failed"], paused=r[queue, "meta.paused"] in ("1", "true"),
                    completed_last_hour=completed_last_hour(now, counts["completed"], count(r[queue, "completed_hour"]),
                                                            meta, r[queue, "metrics_points"]),
                ))
                done = WRONGTYPE if meta == WRONGTYPE else flat_dict(meta).get("count")
                failed_raw = r[queue, "metrics_failed"]
                if done is not None or failed_raw is not None:  # both absent: the app keeps no metrics
                    completed, failed = (0 if v is None else stored_count(v, out) for v in (done, failed_raw))
                    if completed is not None and failed is not None:
                        flow(out, tenant, queue, completed + failed, failed)
            names = r["clients"]
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

        return Plan(reads, parse)


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
