"""Runs the ops of a collection (ops.py) in one round trip on the lean connection of `wire.py`, plus
one for the follow-up reads the first replies point at.

Between collections (tenants and queues rarely change) it keeps the packed commands of each Each op
and what each Each op remembered of its replies (an unchanged head item is not parsed again); both
are rebuilt every run from the ops of that run, so they never outgrow them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

from exporter.sources.redis.cluster import ClusterWire
from exporter.sources.redis.ops import AnyOp, ClientNames, Each, Then, settle
from exporter.sources.redis.wire import Wire, pack


class OpRunner:
    """Runs op lists on one lean connection (or a cluster's, which routes each key to its node)."""

    def __init__(self, wire: Wire | ClusterWire) -> None:
        self.wire = wire
        self.routed = isinstance(wire, ClusterWire)
        self._packed: dict[tuple[Any, ...], tuple[Sequence[str], bytes]] = {}
        self._memo: dict[tuple[Any, ...], Any] = {}

    async def run(self, ops: Sequence[AnyOp]) -> list[Any]:
        """One result per op, in order (an Each's result is the list of its per-tenant results)."""
        if not ops:
            return []
        names = await self._client_names() if any(isinstance(op, ClientNames) for op in ops) else None
        commands: list[bytes] = []
        routing: list[str] = []
        spans: list[tuple[AnyOp, Sequence[str] | None]] = []
        packed, self._packed = self._packed, {}
        for op in ops:
            if isinstance(op, ClientNames):
                spans.append((op, ()))
            elif isinstance(op, Each):
                if self.routed:  # a cluster routes each key to its node: one buffer per key
                    keys: Sequence[str] = list(op.keys())
                    commands.extend(op.op.pack_each(keys))
                    routing.extend(keys)
                    spans.append((op, keys))
                    continue
                identity = op.identity()
                known = packed.get(identity)
                if known is None:
                    keys = op.keys()
                    known = (keys, op.op.pack_many(list(keys)))
                self._packed[identity] = known
                commands.append(known[1])
                spans.append((op, known[0]))
            else:
                commands.append(pack(*op.command()))
                routing.append(op.key)
                spans.append((op, None))
        raw = await self._wire(commands, sum(1 if keys is None else len(keys) for _, keys in spans),
                               routing if self.routed else None)
        memo, self._memo = self._memo, {}
        results: list[Any] = [None] * len(ops)
        follow: list[tuple[list[Any], int, Then]] = []
        pos = 0
        for index, (op, span) in enumerate(spans):
            if isinstance(op, ClientNames):
                results[index] = names
            elif isinstance(op, Each):
                assert span is not None
                identity = op.identity()
                rows, then, self._memo[identity] = op.op.results(span, raw[pos : pos + len(span)], memo.get(identity))
                pos += len(span)
                results[index] = rows
                follow.extend((rows, i, t) for i, t in then)
            else:
                result = settle(op, raw[pos])
                pos += 1
                if isinstance(result, Then):
                    follow.append((results, index, result))
                else:
                    results[index] = result
        if follow:
            await self._follow_up(follow)
        return results

    async def _follow_up(self, follow: list[tuple[list[Any], int, Then]]) -> None:
        """The second round trip: every op's follow-up commands at once."""
        commands = [command for _, _, then in follow for command in then.commands]
        replies = await self._wire([pack(*c) for c in commands], None,
                                   [c[1] for c in commands] if self.routed else None)
        pos = 0
        for target, index, then in follow:
            n = len(then.commands)
            target[index] = then.finish(replies[pos : pos + n])
            pos += n

    async def _client_names(self) -> list[str] | None:
        command = pack(*ClientNames("").command())
        if isinstance(self.wire, ClusterWire):  # a cluster: the clients of every primary
            return ClientNames("").names(await self.wire.everywhere(command))
        try:  # the one reply with no size bound: it grows with the clients, not with what queues hold
            return ClientNames("").names(await self.wire.execute([command], limit=None))
        except (RedisConnectionError, ConnectionError):
            return ClientNames("").names(await self.wire.execute([command], limit=None))

    async def _wire(self, commands: list[bytes], count: int | None = None, keys: list[str] | None = None
                    ) -> list[Any]:
        """Reads are idempotent: after a dropped connection (a Redis restart since the last collection
        leaves a dead socket) try once more on a new one, so recovery costs no failed collection."""
        try:
            return await self.wire.execute(commands, count, keys)
        except (RedisConnectionError, ConnectionError):
            return await self.wire.execute(commands, count, keys)

