"""dramatiq (Python) on its Redis broker.

Keys from dramatiq 2.2 (`dramatiq/brokers/redis/dispatch.lua`, `RedisBroker.enqueue` in
`dramatiq/brokers/redis.py`, `dq_name`/`xq_name` in `dramatiq/common.py`), `ns` = `namespace`:

- `ns:<queue>`: list of message ids (RPUSH by `enqueue`, LPOP by `fetch`: the oldest at the head).
- `ns:<queue>.msgs`: hash id -> message JSON (`Message.encode`); a message stays in it from enqueue
  until `ack`/`nack`, so fetched-but-unacked messages = HLEN `.msgs` - LLEN of the list.
  `message_timestamp` (ms) is the time the message was created.
- `ns:<queue>.DQ` / `ns:<queue>.DQ.msgs`: the delay queue; delayed messages (and retries) sit in
  `.DQ.msgs` until their `eta`, fetched or not, so HLEN `.DQ.msgs` counts them.
- `ns:<queue>.XQ` / `.XQ.msgs`: the dead-letter zset (scored by when) and its messages.
- `ns:__heartbeats__`: zset of broker ids scored by the last dispatch (ms); dramatiq treats an id
  as dead after `heartbeat_timeout` (60 000 ms by default). Ids are per process, not per queue, and
  every command ZADDs its caller, `enqueue` included: a process that only sends is there too.
- `ns:__acks__.<broker id>.<queue>` (and `.<queue>.DQ`): set of the messages a consumer fetched and
  has not acked yet; only `fetch` adds to it. A live id holding one of the queue consumes it.

dramatiq keeps no registry of queue names in Redis, so `queues` names them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import Field

from exporter.model import Job, QueueStats
from exporter.sources.redis.layouts.base import (
    JobRange,
    Layout,
    Parsed,
    Plan,
    Reads,
    Results,
    Workers,
    as_dict,
    count,
    fill_tenant,
    head_time,
    job_of,
    json_dict,
)
from exporter.sources.redis.ops import ExistsCount, HeadHGet, Hlen, Llen, Zcard, ZRecent


class DramatiqLayout(Layout):
    """dramatiq: id lists with a `.msgs` hash, the delay (`.DQ`) and dead-letter (`.XQ`) queues."""

    layout: Literal["dramatiq"]
    queues: list[str] = ["default"]
    namespace: str = "dramatiq"
    heartbeat_timeout: Annotated[int, Field(ge=1)] = 60000  # ms, as RedisBroker(heartbeat_timeout=...)
    cap: Annotated[int, Field(ge=1, le=10000)] = 1000  # broker ids read from `__heartbeats__`, freshest first

    def templates(self) -> Sequence[str]:
        return (self.namespace,)

    def job_range(self, tenant: str, queue: str, status: str) -> JobRange | None:
        """Waiting: the queue's id list (oldest at the head); failed: the dead-letter zset `.XQ`, newest
        first. Each message is the field id of the `.msgs` hash beside its key. Fetched messages sit in
        per-worker ack sets with no order, so `active` is not listed."""
        key = f"{fill_tenant(self.namespace, tenant)}:{queue}"
        if status == "waiting":
            return JobRange("list", key, True, body_hash=f"{key}.msgs")
        if status == "failed":
            return JobRange("zset", f"{key}.XQ", False, body_hash=f"{key}.XQ.msgs", scores=True)
        return None

    def job(self, item: str, fields: dict[str, str], queue: str, status: str) -> Job:
        """A dramatiq `Message` (JSON): the Retries middleware keeps the attempts and the last traceback
        in `options`; a dead letter's score is when it was dead-lettered (ms)."""
        body = json_dict(fields.get("body"))
        options = as_dict(body.get("options"))
        trace = options.get("traceback")
        last = str(trace).strip().splitlines()[-1] if trace and str(trace).strip() else None
        payload = {k: body[k] for k in ("actor_name", "args", "kwargs") if k in body} or None
        return job_of(body.get("message_id", item), queue, status, payload, last, trace if last else None,
                      options.get("retries"), body.get("message_timestamp"),
                      fields.get("score") or options.get("requeue_timestamp"))

    def discovery(self, tenant: str) -> Reads:
        """The freshest `cap` broker ids of `__heartbeats__` with their last dispatch (ms)."""
        return {"brokers": ZRecent(f"{fill_tenant(self.namespace, tenant)}:__heartbeats__", cap=self.cap)}

    def plan(self, tenant: str, found: Results, now: float) -> Plan:
        ns = fill_tenant(self.namespace, tenant)
        live = live_ids(found.get("brokers"), now * 1000 - self.heartbeat_timeout)
        reads: Reads = {}
        for queue in self.queues:
            key = f"{ns}:{queue}"
            reads[queue, "depth"] = Llen(key)
            reads[queue, "head"] = HeadHGet(key, hash=f"{key}.msgs", fields="message_timestamp", scan=self.scan,
                                            kind="num")
            reads[queue, "held"] = Hlen(f"{key}.msgs")
            reads[queue, "delayed"] = Hlen(f"{key}.DQ.msgs")
            reads[queue, "dead"] = Zcard(f"{key}.XQ")
            # what a consumer holds: `fetch` SADDs each message it takes to its ack set of the queue; a
            # producer's dispatch never does. One EXISTS over every live id's ack set counts them.
            if live:
                acks = [f"{ns}:__acks__.{broker}.{queue}" for broker in live]
                reads[queue, "consumers"] = ExistsCount(acks[0], more=tuple(acks[1:]))

        def parse(r: Results, now: float, out: Parsed) -> None:
            tally = Workers(tenant, states=("busy",))
            for queue in self.queues:
                depth, head, held, delayed, dead = (r[queue, what] for what in ("depth", "head", "held", "delayed",
                                                                               "dead"))
                depth = count(depth)
                states = (("queued", depth), ("unacked", max(count(held) - depth, 0)),
                          ("delayed", count(delayed)), ("dead", count(dead)))
                oldest = head_time(head, "ms", out)
                out.queues.append(QueueStats(queue, depth, tenant, oldest, states, failed=count(dead)))
                # consumers holding messages of the queue (running them, or prefetched for their threads)
                tally.add([queue], "busy", n=count(r[queue, "consumers"]) if live else 0)
            tally.emit(out, self.queues, capacity=False, busy=False)

        return Plan(reads, parse)


def live_ids(reply: Any, since_ms: float) -> list[str]:
    """The broker ids of a ZRecent result (flat id, score, ...) whose last dispatch is `since_ms` or later."""
    if not isinstance(reply, list):
        return []
    return [str(broker) for broker, score in zip(reply[::2], reply[1::2], strict=False) if float(score) >= since_ms]
