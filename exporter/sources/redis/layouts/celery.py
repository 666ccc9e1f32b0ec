"""Celery on kombu's Redis transport."""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from exporter.model import QueueStats, Sample
from exporter.sources.redis.events import CeleryEvents, Heard
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
    flow,
    runtime,
)
from exporter.sources.redis.ops import Hlen, Llen


class CeleryLayout(Layout):
    """Celery on kombu: one list per queue and priority step; `unacked` holds prefetched messages.

    Protocol v2 stores no enqueue time, so Celery queues have depth but no oldest age.
    """

    layout: Literal["celery"]
    queues: list[str] = ["celery"]
    global_keyprefix: str = ""
    priority_steps: list[int] = [0, 3, 6, 9]
    separator: str = "\x06\x16"
    # Opt-in: hear the workers' events (SUBSCRIBE only) for workers, task outcomes and runtime.
    events: bool = False
    events_exchange: str = "celeryev"  # Celery's event_exchange setting
    fanout_prefix: str = "/{db}."  # kombu's fanout_prefix transport option (True = "/{db}.")
    task_cap: Annotated[int, Field(ge=1, le=10000)] = 100
    # Which queues a worker pool consumes, by worker hostname (a `fnmatch` pattern such as "mail@*",
    # first match wins): a worker's events never name its queues, and nothing a read-only observer
    # sees in Redis does (see docs/sources/redis.md). Workers that match no pattern count under "".
    worker_queues: dict[str, list[str]] = {}

    @model_validator(mode="after")
    def _events_need_one_prefix(self) -> CeleryLayout:
        if self.events and "{tenant}" in self.global_keyprefix:
            raise ValueError("events: true needs a global_keyprefix without {tenant} (one topic to subscribe)")
        if self.worker_queues and not self.events:
            raise ValueError("worker_queues needs events: true (workers are known from their events only)")
        return self

    @field_validator("separator")
    @classmethod
    def _unescape(cls, value: str) -> str:
        return value.encode().decode("unicode_escape")

    def templates(self) -> Sequence[str]:
        return (self.global_keyprefix,)

    def listener(self, db: int) -> CeleryEvents | None:
        """The background listener of this layout, if it hears events (the source runs it and puts
        its frozen state in Parsed.memory under ("events", id(layout)) before each parse)."""
        if not self.events:
            return None
        prefix = f"{self.global_keyprefix}{self.fanout_prefix.replace('{db}', str(db))}{self.events_exchange}/"
        return CeleryEvents(prefix, self.task_cap)
    def job_range(self, tenant: str, queue: str, status: str) -> JobRange | None:
        key = f"{fill_tenant(self.global_keyprefix, tenant)}{queue}"
        return JobRange("list", key, False) if status == "waiting" else None

    def plan(self, tenant: str, found: Results, now: float) -> Plan:
        p = fill_tenant(self.global_keyprefix, tenant)
        reads: Reads = {"unacked": Hlen(f"{p}unacked")}
        for queue in self.queues:
            for step in self.priority_steps:
                reads[queue, step] = Llen(f"{p}{queue}" if step == 0 else f"{p}{queue}{self.separator}{step}")

        def parse(r: Results, now: float, out: Parsed) -> None:
            out.samples.append(Sample("jobqueue_library_jobs", (tenant, "unacked"), count(r["unacked"])))
            for queue in self.queues:
                depth = sum(count(r[queue, step]) for step in self.priority_steps)
                out.queues.append(QueueStats(queue, depth, tenant))
            heard = out.memory.get(("events", id(self))) if self.events else None
            if isinstance(heard, Heard):
                emit_events(heard, tenant, now, out, self.worker_queues, self.queues)

        return Plan(reads, parse)


def emit_events(heard: Heard, tenant: str, now: float, out: Parsed, pools: dict[str, list[str]],
                queues: Sequence[str]) -> None:
    """What the events said: totals (queue "": events do not name the queue), per task outcomes under
    the cap, the mean runtime since the last collection, and the live workers: under the queues
    `pools` gives their hostname (every configured queue reported, so one no live worker serves reads
    0), else under "" (a heartbeat does not list the worker's queues); busy slots = its `active`
    tasks, under each of its queues; no concurrency."""
    out.malformed += heard.malformed
    flow(out, tenant, "", heard.succeeded + heard.failed, heard.failed)
    for name, ok, failed, seconds in heard.tasks:
        out.samples.append(Sample("jobqueue_celery_tasks", (tenant, name, "succeeded"), ok))
        out.samples.append(Sample("jobqueue_celery_tasks", (tenant, name, "failed"), failed))
        out.samples.append(Sample("jobqueue_celery_task_runtime_seconds", (tenant, name), seconds))
    runtime(out, tenant, "", heard.runtime)
    workers = Workers(tenant, states=("busy", "idle"))
    for host, expires, active in heard.workers:
        if expires >= now:
            served = next((qs for pattern, qs in pools.items() if fnmatchcase(host, pattern)), [""])
            workers.add(served, "busy" if active else "idle", busy=active)
    workers.emit(out, queues if pools else [""], capacity=False)
