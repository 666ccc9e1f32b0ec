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
from typing import Any, Literal

from exporter.model import QueueStats
from exporter.sources.redis.layouts.base import Layout, Parsed, Plan, count, fill_tenant
from exporter.sources.redis.script import WRONGTYPE, Op


class HueyLayout(Layout):
    """huey: the queue (list, or zset for the priority storage), the schedule and the result store."""

    layout: Literal["huey"]
    queues: list[str] = ["huey"]  # Huey instance names
    # Where results live: `hash` (RedisHuey, PriorityRedisHuey: `huey.results.<name>`) or `keys`
    # (RedisExpireHuey, PriorityRedisExpireHuey: one key each, `huey.r.<name>.<id>`, not counted).
    results: Literal["hash", "keys"] = "hash"

    def templates(self) -> Sequence[str]:
        return self.queues

    def plan(self, tenant: str, found: list[Any], now: float) -> Plan:
        names = [fill_tenant(q, tenant) for q in self.queues]
        in_hash = self.results == "hash"
        width = 4 if in_hash else 3
        ops: list[Op] = []
        for name in names:
            clean = re.sub("[^A-Za-z0-9_]", "", name)  # RedisStorage.clean_name
            ops += [("LLEN", f"huey.redis.{clean}"), ("ZCARD", f"huey.redis.{clean}"),
                    ("ZCARD", f"huey.schedule.{clean}")]
            ops += [("HLEN", f"huey.results.{clean}")] if in_hash else []

        def parse(r: list[Any], now: float, out: Parsed) -> None:
            for i, name in enumerate(names):
                as_list, as_zset, scheduled, *results = r[width * i : width * (i + 1)]
                if as_list == WRONGTYPE and as_zset == WRONGTYPE:  # neither huey storage: a foreign key
                    out.malformed += 1
                out.malformed += (scheduled == WRONGTYPE) + sum(v == WRONGTYPE for v in results)
                depth = count(as_list) + count(as_zset)
                states = (("queued", depth), ("scheduled", count(scheduled)),
                          *(("results", count(v)) for v in results))
                out.queues.append(QueueStats(name, depth, tenant, None, states))

        return Plan(ops, parse)
