"""huey (Python) on its Redis storage.

Keys from huey 3.5 (`RedisStorage.__init__`, `enqueue`, `add_to_schedule`, `put_data` and
`RedisPriorityQueue.enqueue` in `huey/storage.py`), `name` = the Huey instance's name with every
character outside `[A-Za-z0-9_]` removed (`clean_name`):

- `huey.redis.<name>`: list of pickled messages (LPUSH, BRPOP), or with `PriorityRedisStorage` a
  zset of the same pickles prefixed with 8 bytes of enqueue time.
- `huey.schedule.<name>`: zset of pickled messages scored by their `eta` (Unix seconds).
- `huey.results.<name>`: hash of result-store entries (task results not yet read, revocation and
  lock flags), each a pickle.

Every item is a pickle: the exporter never unpickles, so it reads only the sizes of these keys and
the scores of the schedule. A huey message (`huey/registry.py` `Message`) holds no enqueue time, so
a huey queue has no oldest age; nor does huey keep failures, counters of work done, or workers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from exporter.model import QueueStats
from exporter.sources.redis.items import WRONGTYPE
from exporter.sources.redis.layouts.base import Layout, Parsed, Plan, Reads, Results, count, fill_tenant
from exporter.sources.redis.ops import Hlen, Llen, Zcard


class HueyLayout(Layout):
    """huey: the queue (list, or zset for the priority storage), the schedule and the result store."""

    layout: Literal["huey"]
    queues: list[str] = ["huey"]  # Huey instance names

    def templates(self) -> Sequence[str]:
        return self.queues

    def plan(self, tenant: str, found: Results, now: float) -> Plan:
        names = [fill_tenant(q, tenant) for q in self.queues]
        reads: Reads = {}
        for name in names:
            clean = re.sub("[^A-Za-z0-9_]", "", name)  # RedisStorage.clean_name
            reads[name, "list"] = Llen(f"huey.redis.{clean}")
            reads[name, "zset"] = Zcard(f"huey.redis.{clean}")
            reads[name, "scheduled"] = Zcard(f"huey.schedule.{clean}")
            reads[name, "results"] = Hlen(f"huey.results.{clean}")

        def parse(r: Results, now: float, out: Parsed) -> None:
            for name in names:
                as_list, as_zset, scheduled, results = (r[name, what] for what in ("list", "zset", "scheduled",
                                                                                  "results"))
                if as_list == WRONGTYPE and as_zset == WRONGTYPE:  # neither huey storage: a foreign key
                    out.malformed += 1
                out.malformed += (scheduled == WRONGTYPE) + (results == WRONGTYPE)
                depth = count(as_list) + count(as_zset)
                states = (("queued", depth), ("scheduled", count(scheduled)), ("results", count(results)))
                out.queues.append(QueueStats(name, depth, tenant, None, states))

        return Plan(reads, parse)
