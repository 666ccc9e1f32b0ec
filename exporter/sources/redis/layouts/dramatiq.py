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
  as dead after `heartbeat_timeout` (60 000 ms by default). Ids are per process, not per queue.

dramatiq keeps no registry of queue names in Redis, so `queues` names them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import Field

from exporter.model import QueueStats
from exporter.sources.redis.layouts.base import (
    Layout,
    Parsed,
    Plan,
    Reads,
    Results,
    Workers,
    count,
    fill_tenant,
    head_time,
)
from exporter.sources.redis.ops import HeadHGet, Hlen, Llen, Zcard, ZCount


class DramatiqLayout(Layout):
    """dramatiq: id lists with a `.msgs` hash, the delay (`.DQ`) and dead-letter (`.XQ`) queues."""

    layout: Literal["dramatiq"]
    queues: list[str] = ["default"]
    namespace: str = "dramatiq"
    heartbeat_timeout: Annotated[int, Field(ge=1)] = 60000  # ms, as RedisBroker(heartbeat_timeout=...)

    def templates(self) -> Sequence[str]:
        return (self.namespace,)

    def plan(self, tenant: str, found: Results, now: float) -> Plan:
        ns = fill_tenant(self.namespace, tenant)
        live_since = str(int(now * 1000) - self.heartbeat_timeout)
        reads: Reads = {"brokers": ZCount(f"{ns}:__heartbeats__", low=live_since)}
        for queue in self.queues:
            key = f"{ns}:{queue}"
            reads[queue, "depth"] = Llen(key)
            reads[queue, "head"] = HeadHGet(key, hash=f"{key}.msgs", fields="message_timestamp", scan=self.scan,
                                            kind="num")
            reads[queue, "held"] = Hlen(f"{key}.msgs")
            reads[queue, "delayed"] = Hlen(f"{key}.DQ.msgs")
            reads[queue, "dead"] = Zcard(f"{key}.XQ")

        def parse(r: Results, now: float, out: Parsed) -> None:
            # broker processes, per process and not per queue, busy or not unknown: state `unknown`, queue ""
            tally = Workers(tenant, states=("unknown",))
            tally.add([""], "unknown", n=count(r["brokers"]))
            tally.emit(out, [""], capacity=False, busy=False)
            for queue in self.queues:
                depth, head, held, delayed, dead = (r[queue, what] for what in ("depth", "head", "held", "delayed",
                                                                               "dead"))
                depth = count(depth)
                states = (("queued", depth), ("unacked", max(count(held) - depth, 0)),
                          ("delayed", count(delayed)), ("dead", count(dead)))
                oldest = head_time(head, "ms", out)
                out.queues.append(QueueStats(queue, depth, tenant, oldest, states, failed=count(dead)))

        return Plan(reads, parse)
