"""Runs the ops of a collection (ops.py) in one round trip on the lean connection of `wire.py`, plus
one for the follow-up reads the first replies point at.

Between collections (tenants and queues rarely change) it keeps the packed commands of each Each op
and what each Each op remembered of its replies (an unchanged head item is not parsed again); both
are rebuilt every run from the ops of that run, so they never outgrow them.

A list whose head item was over the size bound (items.MAX_ITEM) is "heavy": from the next run on its
head is read alone after the others, and the connection is dropped as soon as the reply is known to
be too big, so a 50 MB item crosses the network once, not every collection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from exporter.sources.redis.items import TOO_BIG
from exporter.sources.redis.ops import AnyOp, ClientNames, Each, Head, Then, settle
from exporter.sources.redis.wire import Wire, pack

if TYPE_CHECKING:  # a cluster's wire (cluster.py imports redis-py's slot hash): only a cluster loads it
    from exporter.sources.redis.cluster import ClusterWire

Span = tuple[AnyOp, Sequence[str] | None]  # an op and the keys of its replies in the first round trip


class OpRunner:
    """Runs op lists on one lean connection (or a cluster's, which routes each key to its node)."""

    def __init__(self, wire: Wire | ClusterWire) -> None:
        self.wire = wire
        self.routed = not isinstance(wire, Wire)
        self._packed: dict[tuple[Any, ...], tuple[Sequence[str], bytes]] = {}
        self._memo: dict[tuple[Any, ...], Any] = {}
        self._heavy: set[str] = set()

    async def run(self, ops: Sequence[AnyOp]) -> list[Any]:
        """One result per op, in order (an Each's result is the list of its per-tenant results)."""
        if not ops:
            return []
        asked = [i for i, op in enumerate(ops) if isinstance(op, ClientNames)]
        names = await self._client_names() if asked else None
        commands, routing, spans = self._pack(ops)
        heavy = [(i, op) for i, (op, span) in enumerate(spans) if span == () and isinstance(op, Head)]
        try:
            raw = await self._wire(commands, sum(1 if keys is None else len(keys) for _, keys in spans),
                                   routing if self.routed else None)
        finally:  # also when cut short by the timeout: the next run reads those heads alone
            self._heavy = {op.key for _, op in heavy} | self._big_heads(spans)
        results: list[Any] = [None] * len(ops)
        follow = self._settle(spans, raw, results)
        for index in asked:
            results[index] = names
        for index, op in heavy:
            assert isinstance(self.wire, Wire)  # only the single connection tells which replies were big
            (reply,) = await self.wire.execute([pack(*op.command())], cut=True)
            if reply != TOO_BIG:
                self._heavy.discard(op.key)
            result = settle(op, reply)
            if isinstance(result, Then):
                follow.append((results, index, result))
            else:
                results[index] = result
        if follow:
            await self._follow_up(follow)
        return results

    def _pack(self, ops: Sequence[AnyOp]) -> tuple[list[bytes], list[str], list[Span]]:
        """The first round trip: each op's command (an Each's, packed once and kept between runs), the
        routing keys (a cluster), and per op the keys of its replies (None: one reply; (): none here,
        CLIENT LIST and heavy heads are read on their own)."""
        commands: list[bytes] = []
        routing: list[str] = []
        spans: list[Span] = []
        packed, self._packed = self._packed, {}
        for op in ops:
            if isinstance(op, ClientNames) or (isinstance(op, Head) and op.key in self._heavy):
                spans.append((op, ()))
            elif isinstance(op, Each) and self.routed:  # a cluster routes each key to its node
                keys = list(op.keys())
                commands.extend(op.op.pack_each(keys))
                routing.extend(keys)
                spans.append((op, keys))
            elif isinstance(op, Each):
                identity = op.identity()
                known = packed.get(identity)
                if known is None:
                    known = (op.keys(), op.op.pack_many(list(op.keys())))
                self._packed[identity] = known
                commands.append(known[1])
                spans.append((op, known[0]))
            else:
                commands.append(pack(*op.command()))
                routing.append(op.key)
                spans.append((op, None))
        return commands, routing, spans

    def _settle(self, spans: list[Span], raw: list[Any], results: list[Any]) -> list[tuple[list[Any], int, Then]]:
        """Fill `results` from the first round trip's replies; returns the follow-ups they ask for."""
        memo, self._memo = self._memo, {}
        follow: list[tuple[list[Any], int, Then]] = []
        pos = 0
        for index, (op, span) in enumerate(spans):
            if span == ():
                continue
            if isinstance(op, Each):
                assert span is not None
                identity = op.identity()
                rows, then, self._memo[identity] = op.op.results(span, raw[pos : pos + len(span)], memo.get(identity))
                pos += len(span)
                results[index] = rows
                follow.extend((rows, i, t) for i, t in then)
                continue
            result = settle(op, raw[pos])
            pos += 1
            if isinstance(result, Then):
                follow.append((results, index, result))
            else:
                results[index] = result
        return follow

    def _big_heads(self, spans: list[Span]) -> set[str]:
        """The Head ops whose first reply in the last round trip held a value over the size bound."""
        big = set(getattr(self.wire, "big", ()))  # a cluster's wire does not tell: its heads are not cut
        found: set[str] = set()
        pos = 0
        for op, span in spans:
            if span is None:
                if pos in big and isinstance(op, Head):
                    found.add(op.key)
                pos += 1
            else:
                pos += len(span)
        return found

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
        if not isinstance(self.wire, Wire):  # a cluster: the clients of every primary
            return ClientNames("").names(await self.wire.everywhere(command))
        try:  # the one reply with no size bound: it grows with the clients, not with what queues hold
            return ClientNames("").names(await self.wire.execute([command], limit=None))
        except ConnectionError:
            return ClientNames("").names(await self.wire.execute([command], limit=None))

    async def _wire(self, commands: list[bytes], count: int | None = None, keys: list[str] | None = None
                    ) -> list[Any]:
        """Reads are idempotent: after a dropped connection (a Redis restart since the last collection
        leaves a dead socket) try once more on a new one, so recovery costs no failed collection."""
        try:
            return await self.wire.execute(commands, count, keys)
        except ConnectionError:
            return await self.wire.execute(commands, count, keys)

