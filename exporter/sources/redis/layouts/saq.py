"""saq (Python) on Redis.

Keys from saq 0.26 (`RedisQueue.__init__`, `namespace`, `job_id`, `_enqueue`, `dequeue`, `_retry`,
`_finish`, `count`, `info` and `write_worker_info` in `saq/queue/redis.py`; `Queue.worker_info` and
`Queue.serialize` in `saq/queue/base.py`; `Job` in `saq/job.py`):

- `saq:<queue>:queued`: list of job ids (RPUSH; the worker BLMOVEs from the head to `active`).
- `saq:<queue>:active`: list of the ids being run.
- `saq:<queue>:incomplete`: zset of every job not finished (queued, active and scheduled), scored
  by `scheduled` (Unix s, 0 for now); saq's own `info()` counts scheduled = incomplete - queued - active.
- `saq:job:<queue>:<key>` (the job id): the job as JSON (`Job.to_dict`, saq's default `json.dumps`);
  `queued` is the enqueue time in ms (`utils.now`). Finished jobs stay (status `complete`/`failed`)
  until their `ttl` runs out, with no index of them.
- `saq:<queue>:stats`: zset of worker-info keys scored by their expiry (ms); `saq:<queue>:worker_info:<id>`
  holds the worker's JSON `{"stats": {"complete", "failed", "retried", "aborted", "uptime"}, ...}`,
  its counters since it started, rewritten every 10 s by default. A worker counts as live while its
  expiry is in the future (saq's own `info()` does the same).

saq keeps no registry of queue names in Redis, so `queues` names them (default `default`).
"""

from __future__ import annotations

from collections.abc import Sequence
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
    Retained,
    Workers,
    count,
    fill_tenant,
    flow,
    head_time,
    job_of,
    json_dict,
    to_int,
)
from exporter.sources.redis.ops import HeadGet, Llen, Zcard, ZGets


class SaqLayout(Layout):
    """saq: queued/active lists, the incomplete zset, job JSON with `queued` (ms), live workers."""

    layout: Literal["saq"]
    queues: list[str] = ["default"]
    cap: Annotated[int, Field(ge=1, le=10000)] = 1000  # live workers read per queue

    def templates(self) -> Sequence[str]:
        return self.queues

    def job_range(self, tenant: str, queue: str, status: str) -> JobRange | None:
        """`queued` and `active` lists (oldest at the head) of job ids, each the key of the job's JSON.
        Finished jobs have no index (each expires with its own `ttl`): not listed."""
        base = f"saq:{fill_tenant(queue, tenant)}"
        key = {"waiting": "queued", "active": "active"}.get(status)
        return JobRange("list", f"{base}:{key}", True, body_prefix="") if key else None

    def job(self, item: str, fields: dict[str, str], queue: str, status: str) -> Job:
        """A saq `Job.to_dict` (JSON): times in ms; `error` is the formatted traceback of the last failure."""
        body = json_dict(fields.get("body"))
        error = body.get("error")
        last = str(error).strip().splitlines()[-1] if error and str(error).strip() else None
        payload = {k: body[k] for k in ("function", "kwargs") if k in body} or None
        return job_of(body.get("key", item), queue, status, payload, last, error if last else None,
                      body.get("attempts"), body.get("queued"), body.get("touched") or body.get("started"))

    def plan(self, tenant: str, found: Results, now: float) -> Plan:
        queues = [fill_tenant(q, tenant) for q in self.queues]
        now_ms = str(int(now * 1000))
        reads: Reads = {}
        for queue in queues:
            base = f"saq:{queue}"
            reads[queue, "queued"] = Llen(f"{base}:queued")
            reads[queue, "head"] = HeadGet(f"{base}:queued", key_prefix="", fields="queued", scan=self.scan, kind="num")
            reads[queue, "active"] = Llen(f"{base}:active")
            reads[queue, "incomplete"] = Zcard(f"{base}:incomplete")
            reads[queue, "workers"] = ZGets(f"{base}:stats", low=now_ms, cap=self.cap)

        def parse(r: Results, now: float, out: Parsed) -> None:
            for queue in queues:
                queued, head, active, incomplete, workers = (
                    r[queue, what] for what in ("queued", "head", "active", "incomplete", "workers"))
                queued, active = count(queued), count(active)
                scheduled = max(count(incomplete) - queued - active, 0)
                states = (("queued", queued), ("active", active), ("scheduled", scheduled))
                out.queues.append(QueueStats(queue, queued, tenant, head_time(head, "ms", out), states))
                _workers(tenant, queue, workers, out)

        return Plan(reads, parse)


def _workers(tenant: str, queue: str, reply: Any, out: Parsed) -> None:
    """Live workers (stats entries not yet expired) and their counters, kept monotonic: saq counts per
    worker, in a key that expires with it, so the counts of a worker that is gone are retained."""
    rows = reply if isinstance(reply, list) else []
    out.malformed += reply == WRONGTYPE
    tally = Workers(tenant, states=("unknown",))  # saq's worker info does not say busy or idle
    counts: dict[str, tuple[float, ...]] = {}
    for key, _expiry, raw in rows:
        stats = json_dict(raw).get("stats")
        if not isinstance(stats, dict):  # the key expired between the two reads, or is not saq's
            out.malformed += raw is not None
            continue
        tally.add([queue], "unknown")
        counts[str(key)] = (to_int(stats.get("complete")), to_int(stats.get("failed")))
    complete, failed = out.memory.setdefault(("saq", tenant, queue), Retained()).total(counts, 2)
    flow(out, tenant, queue, complete + failed, failed)
    tally.emit(out, [queue], capacity=False, busy=False)
