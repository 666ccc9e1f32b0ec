"""The lean connection for a Redis Cluster: one pipeline per node per round trip.

Queues of many tenants spread over the 16384 slots of a cluster. A collection still sends each
command once and waits for one round trip: the commands are grouped by the node that serves their
key's slot (the map comes from CLUSTER SLOTS), each node gets its group as one pipeline on its own
lean connection, all nodes at the same time, and the replies are put back in the callers' order.
A MOVED or ASK reply (a slot moved since the map was read) refreshes the map and sends just those
commands again, at most a few times. A node that does not answer sends no MOVED: the map is read again
at the next collection, which finds the replica a failover promoted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from redis.crc import key_slot

from exporter.sources.redis.connect import Endpoint
from exporter.sources.redis.errors import WireConnectionError, WireResponseError
from exporter.sources.redis.wire import ReplyError, Wire, pack

SLOTS = 16384
Address = tuple[str, int]
MAX_REDIRECTS = 3


def slot_map(reply: list[Any], default_host: str) -> list[Address | None]:
    """CLUSTER SLOTS -> the primary serving each slot (an empty host means the node we asked)."""
    owners: list[Address | None] = [None] * SLOTS
    for row in reply:
        start, end, primary = int(row[0]), int(row[1]), row[2]
        host = primary[0] if isinstance(primary[0], str) and primary[0] not in ("", "?") else default_host
        for slot in range(start, end + 1):
            owners[slot] = (host, int(primary[1]))
    return owners


class ClusterWire:
    """A `Wire` per primary node behind the same `execute` as a single server's `Wire`."""

    routed = True

    def __init__(self, seed: Endpoint, timeout: float, encoding: str = "utf-8") -> None:
        self.seed = replace(seed, db=0)
        self.timeout = timeout
        self.encoding = encoding
        self.nodes: dict[Address, Wire] = {}
        self.owners: list[Address | None] | None = None

    def _node(self, address: Address) -> Wire:
        if address not in self.nodes:
            self.nodes[address] = Wire(replace(self.seed, host=address[0], port=address[1]), self.timeout,
                                       encoding=self.encoding)
        return self.nodes[address]

    async def refresh(self) -> None:
        """Read the slot map from a node we know (the seed first), dropping nodes no longer in it."""
        candidates = [(self.seed.host, self.seed.port), *self.nodes]
        error: Exception | None = None
        for address in dict.fromkeys(candidates):
            try:
                reply = (await self._node(address).execute([pack("CLUSTER", "SLOTS")]))[0]
            except OSError as err:
                error = err
                continue
            if isinstance(reply, ReplyError):
                raise WireResponseError(f"CLUSTER SLOTS on {address[0]}:{address[1]}: {reply}")
            self.owners = slot_map(reply, address[0])
            live = {a for a in self.owners if a is not None}
            for gone in [a for a in self.nodes if a not in live and a != (self.seed.host, self.seed.port)]:
                await self.nodes.pop(gone).close()
            return
        raise WireConnectionError(f"no cluster node answered CLUSTER SLOTS: {error}")

    def primaries(self) -> list[Address]:
        assert self.owners is not None
        return sorted({a for a in self.owners if a is not None})

    async def everywhere(self, command: bytes) -> list[Any]:
        """A keyless command (CLIENT LIST) on every primary, at the same time: one reply per node, read
        whole (it grows with the clients, not with what a queue holds; see runner.py `_client_names`)."""
        if self.owners is None:
            await self.refresh()
        replies = await asyncio.gather(*(self._node(a).execute([command], limit=None) for a in self.primaries()))
        return [reply[0] for reply in replies]

    async def execute(self, commands: Sequence[bytes], count: int | None = None,
                      keys: Sequence[str] | None = None) -> list[Any]:
        """One reply per command; `commands[i]` must be one command on `keys[i]`."""
        if not commands:
            return []
        if keys is None or len(keys) != len(commands) or (count is not None and count != len(commands)):
            raise ValueError("a cluster needs one key per command to route it")
        if self.owners is None:
            await self.refresh()
        replies: list[Any] = [None] * len(commands)
        todo = list(range(len(commands)))
        asking: dict[int, Address] = {}  # command index -> node named by its ASK redirect
        for attempt in range(MAX_REDIRECTS + 1):
            groups = self._group(todo, keys, asking)
            addresses = list(groups)
            # every node's pipeline ends before a failure is raised: none is left reading a connection
            # the next collection writes to
            results = await asyncio.gather(*(self._send(a, [commands[i] for i in groups[a]],
                                                        [i in asking for i in groups[a]]) for a in addresses),
                                           return_exceptions=True)
            failed = next((r for r in results if isinstance(r, BaseException)), None)
            if failed is not None:
                if isinstance(failed, OSError):
                    # a dead node sends no MOVED: after a failover only a new map finds the new primary
                    self.owners = None
                raise failed
            got_all = [r for r in results if not isinstance(r, BaseException)]
            redirected: list[int] = []
            for address, got in zip(addresses, got_all, strict=True):
                for i, reply in zip(groups[address], got, strict=True):
                    target = _redirect(reply)
                    if target is None or attempt == MAX_REDIRECTS:
                        replies[i] = reply
                        continue
                    redirected.append(i)
                    if str(reply).startswith("ASK"):
                        asking[i] = target
                    else:
                        asking.pop(i, None)
            if not redirected:
                break
            if any(i not in asking for i in redirected):
                await self.refresh()
            todo = redirected
        return replies

    def _group(self, todo: list[int], keys: Sequence[str], asking: dict[int, Address]) -> dict[Address, list[int]]:
        """Command indexes by the node that serves their key (or that an ASK redirect named)."""
        owners = self.owners
        assert owners is not None
        groups: dict[Address, list[int]] = {}
        for i in todo:
            owner = asking.get(i) if asking else None
            if owner is None:
                owner = owners[key_slot(keys[i].encode())]
                if owner is None:
                    raise WireConnectionError(f"no cluster node serves the slot of {keys[i]!r} "
                                              "(CLUSTER SLOTS has a gap)")
            group = groups.get(owner)
            if group is None:
                group = groups[owner] = []
            group.append(i)
        return groups

    async def _send(self, address: Address, commands: list[bytes], asking: list[bool]) -> list[Any]:
        """One pipeline to one node; an ASK redirect is sent after ASKING, whose own reply is dropped."""
        if not any(asking):
            return await self._node(address).execute(commands)
        sent: list[bytes] = []
        for command, ask in zip(commands, asking, strict=True):
            sent.extend([pack("ASKING"), command] if ask else [command])
        raw = await self._node(address).execute(sent)
        out, pos = [], 0
        for ask in asking:
            pos += 1 if ask else 0
            out.append(raw[pos])
            pos += 1
        return out

    async def close(self) -> None:
        nodes, self.nodes = self.nodes, {}
        for wire in nodes.values():
            await wire.close()


def _redirect(reply: Any) -> Address | None:
    """The node of a `MOVED slot host:port` or `ASK slot host:port` error reply, else None."""
    if not isinstance(reply, ReplyError):
        return None
    parts = str(reply).split()
    if len(parts) != 3 or parts[0] not in ("MOVED", "ASK"):
        return None
    host, _, port = parts[2].rpartition(":")
    return host, int(port)
