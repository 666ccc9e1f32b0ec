"""One hung Sentinel (issue 20 item 1), on a real Sentinel set of its own: a master, its replica and
three sentinels (own ports, password-protected: the first URL names none, the others carry it, so
each URL's own credentials must be used). `kill -STOP` on the first listed sentinel kept a healthy
source `up 0` for as long as it was stopped (every collection asked the sentinels in list order with
the source's whole timeout). Now the healthy master stays up over many intervals, and a failover
done by the two live sentinels is still followed (the reads move to the new master)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from exporter.cli import build_scheduler
from exporter.config import parse_config
from exporter.model import Snapshot
from exporter.sources.redis import RedisSource
from tests.support.redis_topology import SentinelProcess, until
from tests.support.servers import RedisServer

PASSWORD = "sentinel-pw-4e1b"
NAME = "hostile"


class LockedSentinel(SentinelProcess):
    """A sentinel that wants a password from clients and gives it to the other sentinels."""

    def command(self) -> list[str]:
        command = super().command()
        conf = self.workdir / "sentinel.conf"
        conf.write_text(conf.read_text() + f"requirepass {PASSWORD}\nsentinel sentinel-pass {PASSWORD}\n"
                        f"sentinel failover-timeout {self.name} 10000\n")
        return command


class Topology:
    def __init__(self, workdir: Path) -> None:
        for sub in ("master", "replica", "s0", "s1", "s2"):
            (workdir / sub).mkdir(parents=True)
        self.master = RedisServer(workdir / "master")
        self.replica = RedisServer(workdir / "replica")
        self.replica.extra = ["--replicaof", "127.0.0.1", str(self.master.port)]
        self.sentinels = [LockedSentinel(workdir / f"s{i}", self.master.port, name=NAME) for i in range(3)]

    def start(self) -> Topology:
        self.master.start()
        self.replica.start()
        replica = redis.Redis(port=self.replica.port, decode_responses=True)
        until(lambda: replica.info("replication")["master_link_status"] == "up", "replica not in sync")
        for sentinel in self.sentinels:
            sentinel.start()
        for sentinel in self.sentinels:  # each knows the replica and both other sentinels: a failover can be voted
            conn = self.conn(sentinel)
            until(lambda c=conn: int(c.sentinel_master(NAME)["num-other-sentinels"]) == 2
                  and any(int(r["port"]) == self.replica.port for r in c.sentinel_slaves(NAME)),
                  "sentinels do not know each other", timeout=60)
        return self

    def conn(self, sentinel: SentinelProcess) -> redis.Redis:
        return redis.Redis(port=sentinel.port, password=PASSWORD, decode_responses=True, socket_timeout=5)

    def urls(self) -> list[str]:
        first, *rest = self.sentinels
        return [f"redis://127.0.0.1:{first.port}", *(f"redis://:{PASSWORD}@127.0.0.1:{s.port}" for s in rest)]

    def stop(self) -> None:
        for server in (*self.sentinels, self.replica, self.master):
            if server.proc is not None:
                server.resume()
            server.stop()


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[Topology]:
    setup = Topology(tmp_path).start()
    try:
        yield setup
    finally:
        setup.stop()


async def test_a_stopped_sentinel_never_takes_a_healthy_master_down(topology: Topology) -> None:
    master = redis.Redis(port=topology.master.port)
    master.rpush("hs:q", json.dumps({"ts": time.time() - 5}), json.dumps({"ts": time.time() - 1}))
    assert master.wait(1, 5000) == 1
    config = parse_config(f"""
sources:
  - name: ha
    type: redis
    url: redis://ignored:1/0
    interval: 0.5s
    timeout: 0.5s
    sentinel: {{master_name: {NAME}, urls: {json.dumps(topology.urls())}}}
    queues: [{{layout: list, name: q, key: "hs:q", timestamp_field: ts}}]
""", "<test>", {})
    scheduler = build_scheduler(config)
    seen: list[tuple[bool, int, str | None]] = []

    def listener(snapshot: Snapshot) -> None:
        state = snapshot.sources["ha"]
        if state.status.collections:
            seen.append((state.status.up, state.status.collections, state.status.error))

    scheduler.listeners.append(listener)
    (source,) = scheduler.sources
    assert isinstance(source, RedisSource)
    scheduler.start(threaded=True)
    try:
        async with asyncio.timeout(30):
            while not seen:  # noqa: ASYNC110 - the collector thread appends
                await asyncio.sleep(0.1)
        topology.sentinels[0].pause()  # kill -STOP the first listed sentinel
        stopped_at = len(seen)
        await asyncio.sleep(4)  # eight intervals
        during = seen[stopped_at:]
        assert len(during) >= 4
        assert [up for up, _, _ in during] == [True] * len(during), during[:3]
        # a failover, voted by the two live sentinels, is still followed
        live = topology.conn(topology.sentinels[1])
        await asyncio.to_thread(until, lambda: live.execute_command("SENTINEL", "FAILOVER", NAME),
                                "sentinel refused the failover")
        promoted = redis.Redis(port=topology.replica.port, decode_responses=True)
        await asyncio.to_thread(until, lambda: int(live.sentinel_master(NAME)["port"]) == topology.replica.port
                                and promoted.info("replication")["role"] == "master", "no failover", 60.0)
        async with asyncio.timeout(30):
            while getattr(source.wire, "port", None) != topology.replica.port:  # noqa: ASYNC110 - set by the collector
                await asyncio.sleep(0.1)
        mark = len(seen)
        await asyncio.sleep(2)
        after = seen[mark:]
        assert after and all(up for up, _, _ in after), after[:3]
        assert scheduler.snapshot.sources["ha"].reading is not None
        assert [q.depth for q in scheduler.snapshot.sources["ha"].reading.queues] == [2]
    finally:
        await scheduler.stop()
        master.close()
