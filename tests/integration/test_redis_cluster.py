"""Redis Cluster and Sentinel against real servers: queues spread over the slots of three primaries are
read with one pipeline per node per round trip; a moved slot (MOVED, ASK) is followed; a sentinel
says where the master, or a replica, is."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import ValidationError

from exporter.cli import main
from exporter.config import parse_config
from exporter.doctor import diagnose
from exporter.scheduler import Scheduler
from exporter.sources.base import SourceError
from exporter.sources.redis.cluster import ClusterWire
from exporter.sources.redis.items import MAX_ITEM
from exporter.sources.redis.source import RedisConfig, RedisSource
from tests.conftest import samples
from tests.support.redis_libs import NOW, make_source, samples_of
from tests.support.redis_topology import LocalCluster, SentinelSetup, until

TENANTS = [f"t{i:02d}" for i in range(24)]
QUEUES = [{"layout": "list", "name": "q", "key": "tenant_{tenant}:q", "timestamp_field": "ts"},
          {"layout": "bullmq", "prefix": "{bull}", "queues": ["mail"]}]  # hash-tagged: one slot


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    local = LocalCluster(tmp_path_factory.mktemp("cluster")).start()
    yield local
    local.stop()


def seed(client: redis.RedisCluster) -> dict[str, tuple[int, float | None]]:
    """Tenant i has i % 3 items in its list, the oldest i+1 seconds old; BullMQ `mail` waits 2 jobs."""
    expected: dict[str, tuple[int, float | None]] = {}
    for i, tenant in enumerate(TENANTS):
        key = f"tenant_{tenant}:q"
        client.delete(key)
        for j in range(i % 3):
            client.rpush(key, json.dumps({"ts": NOW - (i + 1) + j}))
        expected[tenant] = (i % 3, NOW - (i + 1) if i % 3 else None)
    for job in ("1", "2"):  # what BullMQ's addJob writes for a waiting job: LPUSH wait id, HSET the job hash
        client.hset(f"{{bull}}:mail:{job}", mapping={"name": "send", "data": "{}", "timestamp": str(int(NOW * 1000))})
    client.delete("{bull}:mail:wait")
    client.lpush("{bull}:mail:wait", "1", "2")
    return expected


def counting(source: RedisSource) -> dict[int, int]:
    """Pipelines (round trips) per node port: wraps each node connection's execute to count calls."""
    assert isinstance(source.wire, ClusterWire)
    calls: dict[int, int] = {}
    original = source.wire._node

    def node(address: tuple[str, int]) -> Any:
        wire = original(address)
        if not getattr(wire, "counted", False):
            inner = wire.execute

            async def execute(*args: Any, **kwargs: Any) -> list[Any]:
                calls[wire.port] = calls.get(wire.port, 0) + 1
                return await inner(*args, **kwargs)

            wire.execute = execute  # type: ignore[method-assign]
            wire.counted = True  # type: ignore[attr-defined]
        return wire

    source.wire._node = node  # type: ignore[method-assign]
    return calls


def depths(reading: Any) -> dict[str, tuple[int, float | None]]:
    return {q.tenant: (q.depth, q.oldest_timestamp) for q in reading.queues if q.queue == "q"}


async def test_queues_over_all_slots_one_pipeline_per_node(cluster: LocalCluster) -> None:
    expected = seed(cluster.client())
    owners = {cluster.owner(f"tenant_{t}:q").port for t in TENANTS}
    assert len(owners) == 3  # the keys really are spread over every node
    source = make_source(cluster.url, QUEUES, cluster=True, tenants={"static": TENANTS})
    try:
        calls = counting(source)
        reading = await source.collect()
        assert depths(reading) == expected
        mail = next(q for q in reading.queues if q.queue == "mail")
        assert (mail.depth, mail.oldest_timestamp) == (2, NOW)
        first = dict(calls)
        calls.clear()
        again = await source.collect()
        assert depths(again) == expected
        # the slot map is read once; then every collection is one pipeline per node for the queue reads,
        # one CLIENT LIST per node (BullMQ's live workers, connected to any node), and for BullMQ's job
        # hashes (HEADHASH follow-up) one more to the node of the {bull} slot
        bull = cluster.owner("{bull}:mail:wait").port
        seed_node = cluster.nodes[0].port  # the first collection also read CLUSTER SLOTS there
        assert first == {p: (3 if p == bull else 2) + (p == seed_node) for p in owners}
        assert calls == {p: 3 if p == bull else 2 for p in owners}, (first, calls)
        page = await source.list_jobs("q", "waiting", 10, 0, tenant="t05")
        assert page is not None and page.total == 2 and len(page.jobs) == 2
    finally:
        await source.close()


async def test_moved_and_ask_are_followed(cluster: LocalCluster) -> None:
    expected = seed(cluster.client())
    source = make_source(cluster.url, QUEUES[:1], cluster=True, tenants={"static": TENANTS})
    try:
        assert depths(await source.collect()) == expected
        key = "tenant_t04:q"
        old = cluster.owner(key)
        target = next(n for n in cluster.nodes if n.port != old.port)
        cluster.move_slot(key, target, finish=False)  # half-moved: the old node answers ASK
        assert depths(await source.collect()) == expected
        for node in cluster.nodes:  # finish: every node now says MOVED for the old owner
            cluster.conn(node).execute_command("CLUSTER", "SETSLOT", cluster.client().keyslot(key), "NODE",
                                               cluster.conn(target).execute_command("CLUSTER", "MYID"))
        assert depths(await source.collect()) == expected
        assert isinstance(source.wire, ClusterWire) and source.wire.owners is not None
        assert source.wire.owners[cluster.client().keyslot(key)] == ("127.0.0.1", target.port)
    finally:
        await source.close()


async def test_a_primary_that_stops_answering_sends_the_next_collection_to_a_new_slot_map(
        tmp_path: Path) -> None:
    """What a failover looks like to the exporter: the node its slot map names for a slot is gone and
    another node serves the slot. No MOVED can come from a dead node, so the map must be read again
    after the connection error, not kept until a restart."""
    local = LocalCluster(tmp_path).start()
    try:
        client = local.client()
        expected = seed(client)
        client.close()
        source = make_source(local.url, QUEUES[:1], cluster=True, tenants={"static": TENANTS})
        try:
            assert depths(await source.collect()) == expected
            gone, heir = local.nodes[2], local.nodes[1]
            ids = {n.port: local.conn(n).execute_command("CLUSTER", "MYID") for n in local.nodes}
            slots = [slot for start, end, primary, *_ in local.conn(gone).execute_command("CLUSTER", "SLOTS")
                     if int(primary[1]) == gone.port for slot in range(int(start), int(end) + 1)]
            dst = local.conn(heir)
            src = local.conn(gone)
            for slot in slots:  # what a promoted replica would hold: every key of the node's slots
                keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
                if keys:
                    dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[gone.port])
                    src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[heir.port])
                    src.execute_command("MIGRATE", "127.0.0.1", heir.port, "", 0, 5000, "KEYS", *keys)
            for node in local.nodes:
                pipe = local.conn(node).pipeline(transaction=False)
                for slot in slots:
                    pipe.execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[heir.port])
                # the node about to die may already have heard by gossip that its last slots moved, and
                # Redis turns an emptied primary into a replica ("use SETSLOT only with masters"): its
                # answers do not matter, it is stopped next
                pipe.execute(raise_on_error=node is not gone)
            gone.stop()
            for node in local.nodes[:2]:
                until(lambda n=node: local.conn(n).cluster("info")["cluster_state"] == "ok", "cluster not ok")
            outcomes = []
            for _ in range(2):  # the collection that meets the dead node may fail; the next one must not
                try:
                    outcomes.append(depths(await source.collect()))
                except SourceError as err:
                    outcomes.append(err.kind)
            assert outcomes[-1] == expected, outcomes
        finally:
            await source.close()
    finally:
        local.stop()


async def test_tenant_scan_covers_every_node(cluster: LocalCluster) -> None:
    expected = seed(cluster.client())
    tenants = {"scan": {"match": "tenant_*:q", "regex": "^tenant_(?P<tenant>[^:]+):q$"}}
    source = make_source(cluster.url, QUEUES[:1], cluster=True, tenants=tenants)
    try:
        reading = await source.collect()
    finally:
        await source.close()
    present = {t: v for t, v in expected.items() if v[0]}  # SCAN finds only keys that exist
    assert depths(reading) == present and samples_of(reading, "jobqueue_tenants") == {(): len(present)}


def scan_source_yaml(topology: str) -> str:
    return ("sources:\n  - name: r\n    type: redis\n    interval: 1h\n    timeout: 5s\n" + topology
            + "    tenants: {scan: {match: 'tenant_*:q', regex: '^tenant_(?P<tenant>[^:]+):q$'}, refresh: 0.001}\n"
            "    queues:\n      - {layout: list, name: q, key: 'tenant_{tenant}:q', timestamp_field: ts}\n")


def skip_warnings(caplog: pytest.LogCaptureFixture) -> list[tuple[str, int]]:
    return [(r.getMessage(), r.__dict__["skipped"]) for r in caplog.records if r.getMessage().startswith("SCAN keys")]


async def collect_thrice(scheduler: Scheduler) -> list[dict[str, float]]:
    """Three collections, each a new tenant discovery (`refresh` is a millisecond)."""
    seen = []
    for _ in range(3):
        await asyncio.sleep(0.01)
        await scheduler.collect_once()
        seen.append(samples(scheduler))
    return seen


async def test_a_key_not_utf8_or_over_1_mib_is_skipped_on_a_cluster(
        cluster: LocalCluster, make_scheduler: Callable[[str], Scheduler], caplog: pytest.LogCaptureFixture) -> None:
    """redis-py decodes every reply (decode_responses): a SCAN key that is not UTF-8 raised
    UnicodeDecodeError and failed the whole collection (`up 0`, kind error) while every other queue was
    fine. SCAN replies are read undecoded now and such keys are skipped and counted as on one server
    (one warning per kind and 5 minutes), as is a key name over 1 MiB (redis-py reads it whole)."""
    client = cluster.client()
    expected = seed(client)
    bad, huge = b"tenant_\xff:q", f"tenant_{'x' * (MAX_ITEM + 1)}:q"
    client.rpush(bad, json.dumps({"ts": NOW - 1}))
    client.rpush(huge, json.dumps({"ts": NOW - 1}))
    scheduler = make_scheduler(scan_source_yaml(f"    url: {cluster.url}\n    cluster: true\n"))
    try:
        with caplog.at_level(logging.WARNING, logger="jobqueue.redis"):
            seen = await collect_thrice(scheduler)
    finally:
        client.delete(bad, huge)
        client.close()
    present = {t: n for t, (n, _) in expected.items() if n}  # SCAN finds only keys that exist
    for got in seen:
        assert got['jobqueue_source_up{source="r",backend="redis"}'] == 1
        assert {t: got[f'jobqueue_depth{{source="r",tenant="{t}",queue="q"}}'] for t in present} == present
        assert got['jobqueue_tenants{source="r"}'] == len(present)
    assert sorted(skip_warnings(caplog)) == [("SCAN keys not UTF-8 skipped", 1),
                                             ("SCAN keys over 1 MiB skipped", 1)]
    (line,) = [r for r in caplog.records if r.getMessage() == "SCAN keys not UTF-8 skipped"]
    assert line.__dict__["example"] == repr(bad)


async def test_queue_scan_of_a_cluster_covers_every_node_and_skips_a_key_not_utf8(
        cluster: LocalCluster, caplog: pytest.LogCaptureFixture) -> None:
    """A layout that finds its queues by SCAN (BullMQ without `queues`: its `meta` hashes) on a cluster:
    each primary is asked in turn (without a node, redis-py sent SCAN to every primary and answered a
    cursor per node, not one cursor), and a name that is not UTF-8 is skipped, not a failure."""
    client = cluster.client()
    seed(client)
    names = ["audit", "billing", "email", "images", "mail", "search", "sms", "video"]  # on every node
    assert len({cluster.owner(f"bq:{n}:meta").port for n in names}) == 3
    for name in names:
        client.hset(f"bq:{name}:meta", mapping={"opts.maxLenEvents": "10000"})
    client.hset(b"bq:\xfe:meta", mapping={"opts.maxLenEvents": "10000"})
    source = make_source(cluster.url, [{"layout": "bullmq", "prefix": "bq"}], cluster=True)
    try:
        with caplog.at_level(logging.WARNING, logger="jobqueue.redis"):
            reading = await source.collect()
    finally:
        await source.close()
        client.delete(b"bq:\xfe:meta", *[f"bq:{n}:meta" for n in names])
        client.close()
    assert sorted(q.queue for q in reading.queues) == sorted(names)
    assert skip_warnings(caplog) == [("SCAN keys not UTF-8 skipped", 1)]


def test_topology_config_errors() -> None:
    base = {"name": "r", "type": "redis", "queues": QUEUES[:1]}
    sentinel = {"master_name": "m", "urls": ["redis://127.0.0.1:26379"]}
    for extra, message in [({"cluster": True, "url": "redis://h:7000/2"}, "only database 0"),
                           ({"cluster": True, "sentinel": sentinel}, "not both"),
                           ({"sentinel": {"master_name": "m", "urls": []}}, "at least 1"),
                           ({"sentinel": {"master_name": "m", "urls": ["http://x"]}}, "redis://")]:
        with pytest.raises(ValidationError, match=message):
            RedisConfig.model_validate({**base, **extra})


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[SentinelSetup]:
    setup = SentinelSetup(tmp_path).start()
    yield setup
    setup.stop()


async def test_sentinel_finds_the_master_or_a_replica(sentinel: SentinelSetup) -> None:
    master = redis.Redis(port=sentinel.master.port)
    master.rpush("s:q", json.dumps({"ts": NOW - 5}), json.dumps({"ts": NOW - 1}))
    assert master.wait(1, 5000) == 1  # the replica has it too
    queues = [{"layout": "list", "name": "q", "key": "s:q", "timestamp_field": "ts"}]
    for replica, port in ((False, sentinel.master.port), (True, sentinel.replica.port)):
        spec = {"master_name": "jobs", "urls": [sentinel.sentinel.url], "replica": replica}
        source = make_source("redis://ignored:1/0", queues, sentinel=spec)
        try:
            (queue,) = (await source.collect()).queues
            assert (queue.depth, queue.oldest_timestamp) == (2, NOW - 5)
            assert source.wire.port == port  # type: ignore[union-attr]
            info = await source.client.info("replication")
            assert info["role"] == ("slave" if replica else "master")
            page = await source.list_jobs("q", "waiting", 10, 0)
            assert page is not None and page.total == 2
            assert [job.payload["ts"] for job in page.jobs] == [NOW - 5, NOW - 1]
        finally:
            await source.close()
    master.close()


async def test_sentinel_failover_moves_the_reads_to_the_new_master(sentinel: SentinelSetup) -> None:
    master = redis.Redis(port=sentinel.master.port)
    master.rpush("s:q", json.dumps({"ts": NOW - 5}), json.dumps({"ts": NOW - 1}))
    assert master.wait(1, 5000) == 1
    queues = [{"layout": "list", "name": "q", "key": "s:q", "timestamp_field": "ts"}]
    source = make_source("redis://ignored:1/0", queues,
                         sentinel={"master_name": "jobs", "urls": [sentinel.sentinel.url]})
    watcher = redis.Redis(port=sentinel.sentinel.port, decode_responses=True)
    promoted = redis.Redis(port=sentinel.replica.port, decode_responses=True)
    try:
        assert [q.depth for q in (await source.collect()).queues] == [2]
        assert source.wire.port == sentinel.master.port  # type: ignore[union-attr]
        # a just-started sentinel may not yet rate the replica as promotable (NOGOODSLAVE): ask until it does
        until(lambda: watcher.execute_command("SENTINEL", "FAILOVER", "jobs"), "sentinel refused the failover")
        # done when SENTINEL MASTERS (what clients ask) names the new master; GET-MASTER-ADDR-BY-NAME
        # switches earlier, while the failover still reconfigures the replicas
        until(lambda: int(watcher.sentinel_master("jobs")["port"]) == sentinel.replica.port
              and promoted.info("replication")["role"] == "master", "no failover")
        # the sentinel announced it (+switch-master), heard by the source's watch when its loop runs
        for _ in range(100):
            if source.sentinel.moved:  # type: ignore[union-attr]
                break
            await asyncio.sleep(0.1)
        # the old connection still works (the old master now replicates the new one), yet the reads move
        assert [q.depth for q in (await source.collect()).queues] == [2]
        assert source.wire.port == sentinel.replica.port  # type: ignore[union-attr]
    finally:
        await source.close()
        for conn in (master, watcher, promoted):
            conn.close()


async def test_a_key_not_utf8_is_skipped_through_sentinel(
        sentinel: SentinelSetup, make_scheduler: Callable[[str], Scheduler], caplog: pytest.LogCaptureFixture) -> None:
    """Through Sentinel, SCAN goes through redis-py (decode_responses) too: a key that is not UTF-8
    failed the whole collection. Now it is skipped and counted, and the good tenant reads right."""
    master = redis.Redis(port=sentinel.master.port)
    master.rpush("tenant_a:q", json.dumps({"ts": NOW - 5}), json.dumps({"ts": NOW - 1}))
    master.rpush(b"tenant_\xff:q", json.dumps({"ts": NOW - 9}))
    master.rpush(b"tenant_\xfe\xfe:q", json.dumps({"ts": NOW - 9}))
    scheduler = make_scheduler(scan_source_yaml(
        f"    url: redis://ignored:1/0\n    sentinel: {{master_name: jobs, urls: ['{sentinel.sentinel.url}']}}\n"))
    try:
        with caplog.at_level(logging.WARNING, logger="jobqueue.redis"):
            seen = await collect_thrice(scheduler)
    finally:
        master.close()
    for got in seen:
        assert got['jobqueue_source_up{source="r",backend="redis"}'] == 1
        assert got['jobqueue_depth{source="r",tenant="a",queue="q"}'] == 2
        assert got['jobqueue_tenants{source="r"}'] == 1
    assert skip_warnings(caplog) == [("SCAN keys not UTF-8 skipped", 2)]


async def test_doctor_on_a_cluster(cluster: LocalCluster) -> None:
    seed(cluster.client())
    text = (f"sources:\n  - name: c\n    type: redis\n    url: {cluster.url}\n    cluster: true\n"
            "    tenants: {static: [t01, t02, t04]}\n    queues:\n"
            "      - {layout: list, name: q, key: 'tenant_{tenant}:q', timestamp_field: ts}\n")
    (report,) = await diagnose(parse_config(text, "<test>", {}))
    assert report.ok, report.findings
    assert {f.check for f in report.findings} >= {"may run CLUSTER SLOTS", "may run LLEN tenant_t01:q"}
    assert report.reads["tenants"] == 3 and report.reads["items_waiting"] == 1 + 2 + 1


def test_check_config_names_the_topology_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # main() sets the root logger up with a handler on sys.stderr, here capsys's stream, closed after
    # this test: later tests' log records would go to a closed file. Their own handlers come back after.
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    config = tmp_path / "c.yaml"
    config.write_text("sources:\n  - name: c\n    type: redis\n    url: redis://h:7000/2\n    cluster: true\n"
                      "    queues:\n      - {layout: list, name: q, key: q}\n")
    assert main(["--check-config", "--config", str(config)]) == 2
    assert capsys.readouterr().err == (f"config error: {config}:2: sources[0]: a Redis Cluster has only database 0: "
                                       "drop the database from the url\n")


async def test_follow_up_reads_are_routed_too(cluster: LocalCluster) -> None:
    """A list whose oldest item is not usable needs a second round trip (LRANGE): routed by key as well."""
    client = cluster.client()
    tenants = ["f1", "f2", "f3", "f4", "f5", "f6"]
    for tenant in tenants:
        key = f"tenant_{tenant}:q"
        client.delete(key)
        client.rpush(key, "not json", json.dumps({"ts": NOW - 9}))
    assert len({cluster.owner(f"tenant_{t}:q").port for t in tenants}) > 1
    source = make_source(cluster.url, QUEUES[:1], cluster=True, tenants={"static": tenants})
    try:
        reading = await source.collect()
    finally:
        await source.close()
    assert depths(reading) == {t: (2, NOW - 9) for t in tenants}
    assert reading.malformed == len(tenants)


async def test_client_list_over_the_item_bound_is_read_whole_on_a_cluster(cluster: LocalCluster) -> None:
    """CLIENT LIST grows with the clients, not with what a queue holds: like the single connection
    (runner.py `_client_names`, `limit=None`), a cluster node's reply over 1 MiB is read whole. Cut to
    TOO_BIG it held no `name=` field, and BullMQ's live workers on that node read as 0 (a false page)."""
    node = cluster.owner("{bull}:mail:wait")
    base = "{bull}:" + base64.b64encode(b"mail").decode()  # BullMQ's blocking connection name
    held: list[redis.Redis] = []
    try:
        for i in range(3):
            worker = cluster.conn(node)
            worker.client_setname(base if i == 0 else f"{base}:w:worker-{i}")
            held.append(worker)
        for i in range(20):  # 20 clients named 60,000 bytes each: CLIENT LIST over MAX_ITEM
            other = cluster.conn(node)
            other.client_setname(f"app-{i}-" + "x" * 60_000)
            held.append(other)
        assert sum(len(c["name"]) for c in held[0].client_list()) > MAX_ITEM
        source = make_source(cluster.url, [{"layout": "bullmq", "prefix": "{bull}", "queues": ["mail"]}],
                             cluster=True)
        try:
            reading = await source.collect()
        finally:
            await source.close()
        assert samples_of(reading, "jobqueue_workers")[("", "mail", "unknown")] == 3
    finally:
        for conn in held:
            conn.close()
