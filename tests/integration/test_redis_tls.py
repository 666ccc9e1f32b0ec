"""Redis over TLS with a private CA: the op runner and the job listing (redis-py) both verify the server
with the CA given in the URL or under `tls:`, and present a client certificate."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import ValidationError

from exporter.sources.base import SourceUnreachable
from exporter.sources.redis.source import RedisConfig
from tests.support.redis_libs import NOW, make_source
from tests.support.redis_topology import LocalCluster, SentinelSetup
from tests.support.servers import TlsRedisServer
from tests.support.tls import Pki, make_pki

QUEUES = [{"layout": "list", "name": "q", "key": "tls:q", "timestamp_field": "ts"}]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _seed(server: TlsRedisServer, pki: Pki) -> None:
    admin = redis.Redis(host="127.0.0.1", port=server.port, ssl=True, ssl_ca_certs=str(pki.ca),
                        ssl_certfile=str(pki.client_cert), ssl_keyfile=str(pki.client_key))
    admin.rpush("tls:q", json.dumps({"ts": NOW - 30}), json.dumps({"ts": NOW - 10}))
    admin.close()


@pytest.fixture
def tls_redis(tmp_path: Path, pki: Pki) -> Iterator[TlsRedisServer]:
    server = TlsRedisServer(tmp_path, pki.server_cert, pki.server_key, pki.ca).start()
    _seed(server, pki)
    yield server
    server.stop()


@pytest.fixture
def mtls_redis(tmp_path: Path, pki: Pki) -> Iterator[TlsRedisServer]:
    server = TlsRedisServer(tmp_path, pki.server_cert, pki.server_key, pki.ca, client_auth=True).start()
    _seed(server, pki)
    yield server
    server.stop()


async def _read(url: str, **extra: Any) -> tuple[int, float | None, int]:
    """(depth, oldest, jobs listed) through the op runner and through redis-py's job listing."""
    source = make_source(url, QUEUES, **extra)
    try:
        reading = await source.collect()
        (queue,) = reading.queues
        page = await source.list_jobs("q", "waiting", 10, 0)
        assert page is not None and page.total == len(page.jobs)
        return queue.depth, queue.oldest_timestamp, page.total
    finally:
        await source.close()


async def test_ca_from_url_parameters_on_every_read_path(tls_redis: TlsRedisServer, pki: Pki) -> None:
    url = f"{tls_redis.url}?ssl_ca_certs={pki.ca}"
    assert await _read(url) == (2, NOW - 30, 2)


async def test_ca_from_the_tls_block(tls_redis: TlsRedisServer, pki: Pki) -> None:
    assert await _read(tls_redis.url, tls={"ca_file": str(pki.ca)}) == (2, NOW - 30, 2)


async def test_unknown_ca_is_refused_with_the_reason(tls_redis: TlsRedisServer, pki: Pki) -> None:
    """The bug of issue 13: without the CA the lean path failed; now it fails only when it should."""
    for extra in ({}, {"tls": {"ca_file": str(pki.other_ca)}}):
        source = make_source(tls_redis.url, QUEUES, **extra)
        try:
            with pytest.raises(SourceUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
                await source.collect()
        finally:
            await source.close()


async def test_insecure_skips_verification_explicitly(tls_redis: TlsRedisServer) -> None:
    assert await _read(f"{tls_redis.url}?ssl_cert_reqs=none") == (2, NOW - 30, 2)
    assert await _read(tls_redis.url, tls={"insecure": True}) == (2, NOW - 30, 2)


async def test_client_certificate(mtls_redis: TlsRedisServer, pki: Pki) -> None:
    source = make_source(mtls_redis.url, QUEUES, tls={"ca_file": str(pki.ca)})
    try:
        with pytest.raises(SourceUnreachable):
            await source.collect()
    finally:
        await source.close()
    tls = {"ca_file": str(pki.ca), "cert_file": str(pki.client_cert), "key_file": str(pki.client_key)}
    assert await _read(mtls_redis.url, tls=tls) == (2, NOW - 30, 2)
    url = f"{mtls_redis.url}?ssl_ca_certs={pki.ca}&ssl_certfile={pki.client_cert}&ssl_keyfile={pki.client_key}"
    assert await _read(url) == (2, NOW - 30, 2)


def _config(**extra: Any) -> RedisConfig:
    return RedisConfig.model_validate({"name": "r", "type": "redis", "queues": QUEUES, **extra})


def test_tls_config_errors(pki: Pki) -> None:
    cases = [
        ({"url": "redis://h/0", "tls": {"ca_file": str(pki.ca)}}, "use rediss://"),
        ({"url": "redis://h/0?ssl_ca_certs=x"}, "use rediss://"),
        ({"url": f"rediss://h/0?ssl_ca_certs={pki.ca}", "tls": {"ca_file": str(pki.other_ca)}}, "disagree"),
        ({"url": "rediss://h/0", "tls": {"ca_file": "/nonexistent/ca.crt"}}, "not a readable file"),
        ({"url": "rediss://h/0?ssl_ca_certs=/nonexistent/ca.crt"}, "not a readable file"),
        ({"url": "rediss://h/0", "tls": {"cert_file": str(pki.client_cert)}}, "together"),
        ({"url": "rediss://h/0?ssl_cert_reqs=maybe"}, "none, optional or required"),
        ({"url": "rediss://h/0?socket_timeout=3"}, "not supported"),
        ({"url": "rediss://h/0", "tls": {"insecure": True, "ca_file": str(pki.ca)}}, "one of them"),
    ]
    for extra, message in cases:
        with pytest.raises(ValidationError, match=message):
            _config(**extra)
    same = _config(url=f"rediss://h/0?ssl_ca_certs={pki.ca}", tls={"ca_file": str(pki.ca)})
    assert same.tls is not None and same.tls.ca_file == pki.ca


async def test_cluster_over_tls(tmp_path: Path, pki: Pki) -> None:
    """Every node TLS-only: the slot map, the per-node pipelines and redis-py's cluster client all verify."""
    cluster = LocalCluster(tmp_path, tls=pki).start()
    try:
        client = cluster.client()
        tenants = [f"t{i}" for i in range(12)]
        for i, tenant in enumerate(tenants):
            client.rpush(f"tls:{tenant}:q", *[json.dumps({"ts": NOW - 60 + j}) for j in range(i % 3 + 1)])
        assert len({cluster.owner(f"tls:{t}:q").port for t in tenants}) == 3
        queues = [{"layout": "list", "name": "q", "key": "tls:{tenant}:q", "timestamp_field": "ts"}]
        source = make_source(cluster.url, queues, cluster=True, tls={"ca_file": str(pki.ca)},
                             tenants={"static": tenants})
        try:
            reading = await source.collect()
            assert {q.tenant: q.depth for q in reading.queues} == {t: i % 3 + 1 for i, t in enumerate(tenants)}
            page = await source.list_jobs("q", "waiting", 10, 0, tenant="t2")
            assert page is not None and page.total == 3
        finally:
            await source.close()
        wrong = make_source(cluster.url, queues, cluster=True, tls={"ca_file": str(pki.other_ca)},
                            tenants={"static": tenants})
        try:
            with pytest.raises(SourceUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
                await wrong.collect()
        finally:
            await wrong.close()
    finally:
        cluster.stop()


async def test_sentinel_over_tls(tmp_path: Path, pki: Pki) -> None:
    """Sentinel, master and replica all TLS-only: the sentinels are asked over TLS, the data read over TLS."""
    setup = SentinelSetup(tmp_path, tls=pki).start()
    try:
        master = setup.conn(setup.master)
        master.rpush("tls:q", json.dumps({"ts": NOW - 30}), json.dumps({"ts": NOW - 10}))
        assert master.wait(1, 5000) == 1
        for replica in (False, True):
            spec = {"master_name": "jobs", "urls": [setup.sentinel.url], "replica": replica}
            assert await _read("rediss://unused/0", sentinel=spec, tls={"ca_file": str(pki.ca)}) == (2, NOW - 30, 2)
        master.close()
    finally:
        setup.stop()


async def test_restart_over_tls_is_read_on_the_next_collection(tls_redis: TlsRedisServer, pki: Pki) -> None:
    """A restart leaves the lean connection a dead TLS socket, whose write fails with a plain
    ConnectionResetError: the wire reports it as a connection error, so PING reconnects once and the
    first collection after the restart reads (it failed as unreachable before the wire wrapped it)."""
    source = make_source(tls_redis.url, QUEUES, tls={"ca_file": str(pki.ca)})
    try:
        assert (await source.collect()).queues[0].depth == 2
        tls_redis.stop()
        await asyncio.sleep(0.3)  # the loop sees the peer's close: the TLS transport is lost, not merely at EOF
        tls_redis.start()
        _seed(tls_redis, pki)  # nothing is saved: the restarted server starts empty
        (queue,) = (await source.collect()).queues
        assert (queue.depth, queue.oldest_timestamp) == (2, NOW - 30)
    finally:
        await source.close()
