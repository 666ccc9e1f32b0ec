"""A backend whose certificate fails verification is its own failure kind, `tls`, not `unreachable`:
real Redis, NATS and PostgreSQL servers speaking TLS with the test's CA, and an HTTPS endpoint, read
with a CA that did not sign them. A server that is not there at all stays `unreachable`."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from exporter.config import parse_config
from exporter.model import Snapshot
from exporter.sources.base import SourceContext, SourceError, SourceTLSFailed, SourceUnreachable
from exporter.sources.http import HttpSource
from exporter.sources.nats.source import NatsSource
from tests.support.nats import NatsServer
from tests.support.postgres import PgCluster
from tests.support.postgres import collect as pg_collect
from tests.support.redis_libs import collect as redis_collect
from tests.support.servers import TlsRedisServer, free_port
from tests.support.tls import Pki, make_pki

QUEUES = [{"layout": "list", "name": "q", "key": "tls-kind:q"}]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_tls_is_a_kind_of_its_own_and_still_a_lost_backend() -> None:
    assert SourceTLSFailed.kind == "tls" and issubclass(SourceTLSFailed, SourceUnreachable)


async def test_redis(tmp_path: Path, pki: Pki) -> None:
    server = TlsRedisServer(tmp_path, pki.server_cert, pki.server_key, pki.ca).start()
    try:
        with pytest.raises(SourceTLSFailed, match="certificate verification failed") as err:
            await redis_collect(server.url, QUEUES, tls={"ca_file": str(pki.other_ca)})
        assert err.value.kind == "tls"
        reading = await redis_collect(server.url, QUEUES, tls={"ca_file": str(pki.ca)})
        assert reading.queues[0].depth == 0
    finally:
        server.stop()
    with pytest.raises(SourceUnreachable) as gone:
        await redis_collect(f"rediss://127.0.0.1:{free_port()}/0", QUEUES, tls={"ca_file": str(pki.ca)})
    assert gone.value.kind == "unreachable"


async def _nats(port: int, ca: Path) -> None:
    text = (f"sources:\n  - name: n\n    type: nats\n    url: tls://127.0.0.1:{port}\n    timeout: 2s\n"
            f"    dead_letters: {{mode: 'off'}}\n    tls:\n      ca_file: {ca}\n")
    source = NatsSource(parse_config(text, "<test>", {}).sources[0], None)  # type: ignore[arg-type]  # no context needed
    try:
        await source.collect()
    finally:
        await source.close()


async def test_nats(tmp_path: Path, pki: Pki) -> None:
    server = NatsServer(tmp_path, extra_config=f'tls {{ cert_file: "{pki.server_cert}", '
                                                 f'key_file: "{pki.server_key}", timeout: 2 }}').start()
    try:
        with pytest.raises(SourceError) as err:
            await _nats(server.port, pki.other_ca)
        assert err.value.kind == "tls", err.value
        await _nats(server.port, pki.ca)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pg_tls(pki: Pki) -> Iterator[PgCluster]:
    cluster = PgCluster().init()
    cert, key = cluster.own(pki.server_cert), cluster.own(pki.server_key)
    (cluster.data / "pg_hba.conf").write_text("local all all trust\nhostssl all all 127.0.0.1/32 trust\n")
    cluster.options = f"-c ssl=on -c ssl_cert_file={cert} -c ssl_key_file={key}"
    cluster.start()
    yield cluster
    cluster.destroy()


async def test_postgres(pg_tls: PgCluster, pki: Pki) -> None:
    body = "    connections: false\n    tls:\n      ca_file: {}\n"
    with pytest.raises(SourceTLSFailed, match="certificate verification failed") as err:
        await pg_collect(pg_tls.dsn(), body.format(pki.other_ca))
    assert err.value.kind == "tls"
    await pg_collect(pg_tls.dsn(), body.format(pki.ca))


@pytest.fixture
async def https(pki: Pki) -> AsyncIterator[int]:
    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    yield port
    await runner.cleanup()


async def test_http(https: int, pki: Pki) -> None:
    for ca, kind in ((pki.other_ca, "tls"), (pki.ca, None)):
        text = f"sources:\n  - name: h\n    type: http\n    url: https://127.0.0.1:{https}/\n    ca_file: {ca}\n"
        source = HttpSource(parse_config(text, "<test>", {}).sources[0],  # type: ignore[arg-type]  # the union
                            SourceContext(snapshot=Snapshot))
        try:
            if kind is None:
                await source.collect()
                continue
            with pytest.raises(SourceError) as err:
                await source.collect()
            assert err.value.kind == kind
        finally:
            await source.close()
