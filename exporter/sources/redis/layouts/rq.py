"""RQ (Python)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import Field

from exporter.model import QueueStats
from exporter.sources.redis.layouts.base import Layout, Parsed, Plan, count, fill_tenant, head_time, members
from exporter.sources.redis.script import Op

_RQ_REGISTRIES = (("started", "wip"), ("failed", "failed"), ("finished", "finished"),
                  ("scheduled", "scheduled"), ("deferred", "deferred"), ("canceled", "canceled"),
                  ("ready", "ready"))


class RQLayout(Layout):
    """RQ: `rq:queue:NAME` list of ids (oldest at the head; ISO `enqueued_at` in the job hash), registries."""

    layout: Literal["rq"]
    queues: list[str] | None = None  # None: the members of `rq:queues`
    prefix: str = "rq:"
    cap: Annotated[int, Field(ge=1, le=100000)] = 1000

    def templates(self) -> Sequence[str]:
        return (self.prefix,)

    def discovery(self, tenant: str) -> list[Op]:
        return [("SMEMBERS", f"{fill_tenant(self.prefix, tenant)}queues", str(self.cap))]

    @property
    def registry(self) -> bool:
        return self.queues is None

    def plan_known(self, tenant: str, found: list[Any], now: float, known: Sequence[str]) -> Plan:
        return self.plan(tenant, found, now, known)

    def plan(self, tenant: str, found: list[Any], now: float, known: Sequence[str] = ()) -> Plan:
        p = fill_tenant(self.prefix, tenant)
        queues = self.queues or sorted({*(m.removeprefix(f"{p}queue:") for m in members(found[0])), *known})
        ops: list[Op] = []
        for queue in queues:
            key = f"{p}queue:{queue}"
            ops += [("LLEN", key), ("HEADHASH", key, "0", f"{p}job:", "enqueued_at", str(self.scan), "iso")]
            ops += [("ZCARD", f"{p}{suffix}:{queue}") for _, suffix in _RQ_REGISTRIES]
        width = 2 + len(_RQ_REGISTRIES)

        def parse(r: list[Any], now: float, out: Parsed) -> None:
            for i, queue in enumerate(queues):
                part = r[i * width : (i + 1) * width]
                states = tuple((state, count(v)) for (state, _), v in zip(_RQ_REGISTRIES, part[2:], strict=True))
                oldest = head_time(part[1], "iso", out, self.latest(now))
                out.queues.append(QueueStats(queue, count(part[0]), tenant, oldest, states, failed=states[1][1]))

        return Plan(ops, parse)
