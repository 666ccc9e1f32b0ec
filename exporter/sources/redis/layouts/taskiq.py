"""taskiq (Python) with taskiq-redis brokers.

Keys from taskiq-redis 1.2 (`ListQueueBroker.kick`/`listen`, `RedisStreamBroker.kick`,
`_declare_consumer_group` and `listen` in `taskiq_redis/redis_broker.py`):

- list broker: `<queue_name>` (default `taskiq`) is a list of messages (LPUSH, BRPOP).
- stream broker: `<queue_name>` is a stream of `{data: message}` entries read by the consumer
  group `consumer_group_name` (default `taskiq`) with XREADGROUP and acknowledged with XACK; acked
  entries stay in the stream (trimmed only with `maxlen`), so the waiting jobs are the group's lag
  and the running ones its pending entries.
- `PubSubBroker` stores nothing; results (`RedisAsyncResultBackend`) are one key per task id with
  no index, so neither is read.

A taskiq message (`TaskiqMessage` in `taskiq/message.py`) carries no enqueue time; a stream entry's id
(XADD's `*`) is its enqueue time in ms, so streams have an oldest age: the first entry after the
group's last-delivered-id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from exporter.model import Job, QueueStats
from exporter.sources.redis.items import WRONGTYPE
from exporter.sources.redis.layouts.base import (
    JobRange,
    Layout,
    Parsed,
    Plan,
    Reads,
    Results,
    count,
    decoded,
    entry_time,
    fill_tenant,
    job_of,
)
from exporter.sources.redis.ops import Llen, XGroups, Xlen, XNext


class TaskiqLayout(Layout):
    """taskiq: a list broker's list, or a stream broker's stream read by its consumer group."""

    layout: Literal["taskiq"]
    queues: list[str] = ["taskiq"]
    broker: Literal["list", "stream"] = "list"
    consumer_group: str = "taskiq"

    def templates(self) -> Sequence[str]:
        return self.queues

    def job_range(self, tenant: str, queue: str, status: str) -> JobRange | None:
        """Waiting: the list broker's list (LPUSH, BRPOP: the oldest at the tail), which holds the messages
        themselves, or the stream's entries the consumer group has not been delivered, oldest first."""
        if status != "waiting":
            return None
        key = fill_tenant(queue, tenant)
        return JobRange("stream", key, group=self.consumer_group) if self.broker == "stream" else JobRange(
            "list", key, False)

    def job(self, item: str, fields: dict[str, str], queue: str, status: str) -> Job:
        """A `TaskiqMessage` (JSON): task id, name, labels, args and kwargs; it holds no time, but a stream
        entry's id is the time it was added (XADD `*`, ms)."""
        body = decoded(item)
        body = body if isinstance(body, dict) else {"raw": item}
        payload = {k: body[k] for k in ("task_name", "args", "kwargs", "labels") if k in body} or body
        added = int(fields["id"].split("-", 1)[0]) if fields.get("id", "").split("-", 1)[0].isdigit() else None
        return job_of(body.get("task_id"), queue, status, payload, None, None, None, added, None)

    def plan(self, tenant: str, found: Results, now: float) -> Plan:
        queues = [fill_tenant(q, tenant) for q in self.queues]
        stream = self.broker == "stream"
        reads: Reads = {}
        for q in queues:
            if stream:
                reads[q, "length"] = Xlen(q)
                reads[q, "groups"] = XGroups(q)
                reads[q, "next"] = XNext(q, group=self.consumer_group)
            else:
                reads[q, "length"] = Llen(q)

        def parse(r: Results, now: float, out: Parsed) -> None:
            for queue in queues:
                if not stream:
                    depth = count(r[queue, "length"])
                    out.malformed += r[queue, "length"] == WRONGTYPE
                    out.queues.append(QueueStats(queue, depth, tenant, None, (("queued", depth),)))
                    continue
                length, groups, first = r[queue, "length"], r[queue, "groups"], r[queue, "next"]
                if length == WRONGTYPE or groups == WRONGTYPE:
                    out.malformed += 1
                    groups, first = [], None
                info = next((g for g in map(_flat, groups) if g.get("name") == self.consumer_group), None)
                # no group yet (no worker started): every entry waits; lag NULL (an entry deleted after
                # last-delivered-id: Redis cannot tell): XLEN, an upper bound, as the stream layout does
                lag = None if info is None else info.get("lag")
                waiting = count(length) if lag is None else int(lag)
                pending = 0 if info is None else int(info.get("pending") or 0)
                # the oldest task not yet delivered: its entry id is the XADD time (ms)
                oldest = entry_time(first, out, self.latest(now)) if first and waiting else None
                states = (("queued", waiting), ("pending", pending))
                out.queues.append(QueueStats(queue, waiting, tenant, oldest, states))

        return Plan(reads, parse)


def _flat(group: Any) -> dict[str, Any]:
    return group if isinstance(group, dict) else dict(zip(group[::2], group[1::2], strict=False))
