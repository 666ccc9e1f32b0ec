"""Laravel Horizon on top of Laravel's lists."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import Field

from exporter.facts import HorizonQueue, HorizonState
from exporter.model import Sample
from exporter.sources.redis.layouts.base import (
    Parsed,
    Plan,
    Workers,
    count,
    fill_tenant,
    flow,
    hashes,
    json_dict,
    members,
    runtime,
    stored_count,
    to_float,
    to_int,
)
from exporter.sources.redis.layouts.laravel import LaravelLayout
from exporter.sources.redis.script import Op


class HorizonLayout(LaravelLayout):
    """Laravel Horizon: the Laravel lists plus Horizon's runtime, failed jobs, masters and supervisors.

    With no `queues`, the queues are those the live supervisors serve on `connection`.
    """

    layout: Literal["horizon"]  # type: ignore[assignment]  # narrows the Laravel tag: its own config kind
    queues: list[str] | None = None  # type: ignore[assignment]  # None: discovered from Horizon's own keys
    timestamp_field: str = "pushedAt|createdAt"
    horizon_prefix: str = "laravel_horizon:"
    connection: str = "redis"
    recent_failed_minutes: Annotated[int, Field(ge=1)] = 10080
    cap: Annotated[int, Field(ge=1, le=10000)] = 1000

    def templates(self) -> Sequence[str]:
        return (self.prefix, self.horizon_prefix, self.pause_key or "")

    def discovery(self, tenant: str) -> list[Op]:
        hp = fill_tenant(self.horizon_prefix, tenant)
        return [
            ("ZHASHES", f"{hp}masters", f"{hp}master:", str(self.cap)),
            ("ZHASHES", f"{hp}supervisors", f"{hp}supervisor:", str(self.cap)),
            ("SMEMBERS", f"{hp}measured_queues", str(self.cap)),
        ]

    @property
    def registry(self) -> bool:
        return self.queues is None

    def plan_known(self, tenant: str, found: list[Any], now: float, known: Sequence[str]) -> Plan:
        return self.plan(tenant, found, now, known)

    def scan_match(self) -> str | None:
        return None if self.per_tenant else f"{self.prefix}queues:*"

    def scanned_queue(self, key: str) -> str | None:
        """`PREFIX queues:NAME` (Laravel's list) -> NAME; its `:delayed`, `:reserved` and `:notify`
        companions name no queue of their own."""
        name = key.removeprefix(f"{self.prefix}queues:")
        if name == key or name.endswith((":delayed", ":reserved", ":notify")):
            return None
        return name[1:-1] if self.cluster and name.startswith("{") and name.endswith("}") else name

    def plan(self, tenant: str, found: list[Any], now: float, known: Sequence[str] = ()) -> Plan:
        hp = fill_tenant(self.horizon_prefix, tenant)
        masters = hashes(found[0])
        supervisors = hashes(found[1])
        # processes per served queue group ("default" or, with balance off, "default,emails")
        prefix = f"{self.connection}:"
        groups: dict[str, int] = {}
        workers = Workers(tenant, states=("unknown", "paused"))
        for sup in supervisors:
            if sup["score"] >= now - 29:  # Horizon's own liveness window for supervisors
                for name, n in json_dict(sup.get("processes")).items():
                    if name.startswith(prefix):
                        groups[name[len(prefix):]] = groups.get(name[len(prefix):], 0) + to_int(n)
                        # a worker process runs one job at a time; Horizon records no busy/idle per
                        # process, only the supervisor's status (SupervisorRepository `update`)
                        paused = sup.get("status") == "paused"
                        workers.add([q for q in name[len(prefix):].split(",") if q], "paused" if paused else "unknown",
                                    0 if paused else to_int(n), n=to_int(n))
        # RedisMetricsRepository `measuredQueues`: full key names, the queue after "queue:"
        measured = [m.split("queue:", 1)[1] for m in members(found[2]) if "queue:" in m]
        # Without `queues`, the live supervisors (and Horizon's measured queues) announce the queues;
        # the inventory keeps them read when Horizon is down, which is when their backlog matters most.
        queues = self.queues or sorted({*(q for g in groups for q in g.split(",") if q), *measured, *known})
        # a queue's wait needs every queue of the groups it is served in
        read = list(dict.fromkeys([*queues, *(q for g in groups for q in g.split(",")
                                              if q and set(g.split(",")) & set(queues))]))
        width = 5 if self.pause_key else 4
        ops: list[Op] = [
            ("ZCOUNT", f"{hp}recent_failed_jobs", "-inf", repr(-(now - self.recent_failed_minutes * 60))),
            ("ZCARD", f"{hp}failed_jobs"),
        ]
        for queue in read:
            ops.extend(self.queue_ops(tenant, queue, now))
            ops += [("HGET", f"{hp}queue:{queue}", "runtime"), ("HGET", f"{hp}queue:{queue}", "throughput"),
                    ("ZMEMBERS", f"{hp}snapshot:queue:{queue}", "24")]

        def parse(r: list[Any], now: float, out: Parsed) -> None:
            recent_failed, total_failed = count(r[0]), count(r[1])
            parts = {q: r[2 + i * (width + 3) : 2 + (i + 1) * (width + 3)] for i, q in enumerate(read)}
            ms = {q: count(part[0]) * to_float(part[width]) for q, part in parts.items()}
            waits: dict[str, dict[str, int | float]] = {}
            for queue in queues:
                part = parts[queue]
                served = [g for g in groups if queue in g.split(",")]
                # Horizon's time to clear of each group that serves the queue; the longest counts
                wait = max((horizon_wait(1, sum(ms[q] for q in g.split(",") if q), groups[g]) for g in served),
                           default=horizon_wait(1, ms[queue], 0))
                out.queues.append(self.queue_stats(
                    tenant, queue, part[:width], now, out, wait_seconds=wait,
                    completed_last_hour=horizon_completed(now, part[width + 1], part[width + 2])))
                waits[queue] = {"pending": count(part[0]), "wait_seconds": wait}
                # LuaScripts::updateMetrics: HINCRBY-like `throughput` + running-average `runtime` (ms)
                # per job that did not fail (Listeners/UpdateJobMetrics returns early on failed jobs);
                # `horizon:snapshot` reads and DELetes the hash (RedisMetricsRepository
                # `baseSnapshotData`), so the counter resets to 0 at each snapshot; the queue stays in
                # measured_queues and Horizon reads its throughput as 0 (`throughputFor`), as here
                raw = part[width + 1]
                done = 0 if raw is None and queue in measured else stored_count(raw, out)
                if done is not None:
                    flow(out, tenant, queue, done)
                    if part[width] is not None:  # no job since the snapshot: no runtime, not a runtime of 0
                        runtime(out, tenant, queue, to_float(part[width]) / 1000)
            workers.emit(out, queues, busy=False)
            alive = [m for m in masters if m["score"] >= now - 14]
            for status in ("running", "paused"):
                n = sum(1 for m in alive if m.get("status") == status)
                out.samples.append(Sample("jobqueue_horizon_masters", (tenant, status), n))
            out.samples.append(Sample("jobqueue_library_jobs", (tenant, "failed_recent"), recent_failed))
            out.samples.append(Sample("jobqueue_library_jobs", (tenant, "failed"), total_failed))
            out.facts.append(HorizonState(tenant, {q: HorizonQueue(int(w["pending"]), w["wait_seconds"])
                                                   for q, w in waits.items()}, recent_failed))
            out.details.setdefault("horizon", {})[tenant] = {
                "queues": waits,
                "failed_jobs": recent_failed,
                "masters": [
                    {"name": m["member"], "status": m.get("status"), "last_seen": m["score"]} for m in masters
                ],
                "supervisors": [
                    {"name": s["member"], "status": s.get("status"), "last_seen": s["score"]} for s in supervisors
                ],
            }

        return Plan(ops, parse)


def horizon_wait(ready: int, runtime_ms: float, processes: int) -> int:
    """Horizon's WaitTimeCalculator: ready x average runtime, shared by the processes, in seconds."""
    total_ms = ready * runtime_ms
    if processes > 0:
        total_ms /= processes
    return math.floor(total_ms / 1000 + 0.5)  # PHP round(): half away from zero


def horizon_completed(now: float, throughput: Any, snapshots: Any) -> int | None:
    """Jobs Horizon processed on the queue in the last 3600 s, from its metrics: the `throughput` of the
    `snapshot:queue:NAME` entries taken in the hour plus the live counter since the last snapshot
    (`horizon:snapshot` resets it). Without a snapshot in the hour the live counter's window is unknown
    (None). A snapshot covers the interval before it, so the first in the hour may reach a few minutes
    further back (by one snapshot interval at most).
    """
    flat = snapshots if isinstance(snapshots, list) else []
    recent = [json_dict(m) for m, score in zip(flat[::2], flat[1::2], strict=False) if to_float(score) >= now - 3600]
    if not recent:
        return None
    return to_int(throughput) + sum(to_int(s.get("throughput")) for s in recent)
