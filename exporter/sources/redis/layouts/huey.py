"""huey (Python) on its Redis storage.

Keys from huey 3.5 (`RedisStorage.__init__`, `enqueue`, `add_to_schedule`, `put_data` and
`RedisPriorityQueue.enqueue` in `huey/storage.py`), `name` = the Huey instance's name with every
character outside `[A-Za-z0-9_]` removed (`clean_name`):

- `huey.redis.<name>`: list of pickled messages (LPUSH, BRPOP), or with `PriorityRedisStorage` a
  zset of the same pickles prefixed with 8 bytes of enqueue time.
- `huey.schedule.<name>`: zset of pickled messages scored by their `eta` (Unix seconds).
- `huey.results.<name>`: hash of result-store entries (task results not yet read, revocation and
  lock flags), each a pickle. `RedisExpireStorage` (`RedisExpireHuey`, `PriorityRedisExpireHuey`)
  keeps them instead as one key each, `huey.r.<name>.<key>` (results with a TTL of `expire_time`);
  huey itself counts those with a SCAN of the whole keyspace (`result_store_size`). With
  `results: keys` they are not counted: a collection reads the backlog, never the history a backend
  keeps (DESIGN.md, Scale), so the `results` state is left out rather than read as a false 0.

Every item is a pickle: the exporter never unpickles, so it reads only the sizes of these keys and
the scores of the schedule. A huey message (`huey/registry.py` `Message`) holds no enqueue time, so
a huey queue has no oldest age; nor does huey keep failures, counters of work done, or workers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

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
    fill_tenant,
    job_of,
    pickled_values,
)
from exporter.sources.redis.ops import Hlen, Llen, Zcard


class HueyLayout(Layout):
    """huey: the queue (list, or zset for the priority storage), the schedule and the result store."""

    layout: Literal["huey"]
    queues: list[str] = ["huey"]  # Huey instance names
    # Where results live: `hash` (RedisHuey, PriorityRedisHuey: `huey.results.<name>`) or `keys`
    # (RedisExpireHuey, PriorityRedisExpireHuey: one key each, `huey.r.<name>.<id>`, not counted).
    results: Literal["hash", "keys"] = "hash"

    def templates(self) -> Sequence[str]:
        return self.queues

    def job_range(self, tenant: str, queue: str, status: str) -> JobRange | None:
        """The queue, in the order huey dequeues it: a list (LPUSH, BRPOP: the oldest at the tail) or,
        with the priority storage, a zset (BZPOPMIN: the lowest score, the highest priority, first)."""
        if status != "waiting":
            return None
        key = f"huey.redis.{re.sub('[^A-Za-z0-9_]', '', fill_tenant(queue, tenant))}"
        return JobRange("list", key, False, binary=True, other=JobRange("zset", key, True, binary=True))

    def job(self, item: str, fields: dict[str, str], queue: str, status: str) -> Job:
        """The id and task name of a pickled huey `Message`, read without unpickling; a priority storage
        member starts with its enqueue time (8 bytes, microseconds, `RedisPriorityQueue.enqueue`)."""
        data = item.encode("latin-1")
        created = None
        if not data.startswith(b"\x80") and len(data) > 8:  # not a pickle: the priority storage's prefix
            created, data = int.from_bytes(data[:8], "big") / 1e6, data[8:]
        task_id, name = peek_message(data)
        return job_of(task_id, queue, status, {"task": name} if name else None, None, None, None, created, None)

    def plan(self, tenant: str, found: Results, now: float) -> Plan:
        names = [fill_tenant(q, tenant) for q in self.queues]
        reads: Reads = {}
        for name in names:
            clean = re.sub("[^A-Za-z0-9_]", "", name)  # RedisStorage.clean_name
            reads[name, "list"] = Llen(f"huey.redis.{clean}")
            reads[name, "zset"] = Zcard(f"huey.redis.{clean}")
            reads[name, "scheduled"] = Zcard(f"huey.schedule.{clean}")
            if self.results == "hash":
                reads[name, "results"] = Hlen(f"huey.results.{clean}")

        def parse(r: Results, now: float, out: Parsed) -> None:
            for name in names:
                as_list, as_zset, scheduled = (r[name, what] for what in ("list", "zset", "scheduled"))
                if as_list == WRONGTYPE and as_zset == WRONGTYPE:  # neither huey storage: a foreign key
                    out.malformed += 1
                out.malformed += scheduled == WRONGTYPE
                depth = count(as_list) + count(as_zset)
                states: tuple[tuple[str, int], ...] = (("queued", depth), ("scheduled", count(scheduled)))
                if self.results == "hash":
                    results = r[name, "results"]
                    out.malformed += results == WRONGTYPE
                    states += (("results", count(results)),)
                out.queues.append(QueueStats(name, depth, tenant, None, states))

        return Plan(reads, parse)


def peek_message(data: bytes) -> tuple[str | None, str | None]:
    """The first two fields of a pickled `huey.registry.Message` (its id and task name), or Nones;
    read from the pickle's opcodes, never unpickled (see `pickled_values`)."""
    texts = [v for v in pickled_values(data, 64) if isinstance(v, str)]
    if texts[:2] != ["huey.registry", "Message"] or len(texts) < 4:
        return None, None
    return texts[2], texts[3]
