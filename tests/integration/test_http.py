"""HTTP source against local aiohttp servers: plain, TLS with a private CA, slow, and gone."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web

from exporter.scheduler import Scheduler
from tests.conftest import samples
from tests.support.servers import free_port

UP = 'jobqueue_source_up{source="api",backend="http"}'
SEEN = web.AppKey("seen", list)


def app() -> web.Application:
    seen: list[str] = []

    async def health(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response({"status": "ok", "db": {"state": "up"}, "auth": request.headers.get("Authorization")})

    async def down(_: web.Request) -> web.Response:
        return web.json_response({"status": "down"}, status=503)

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({"status": "ok"})

    application = web.Application()
    application[SEEN] = seen
    application.router.add_get("/health", health)
    application.router.add_get("/down", down)
    application.router.add_get("/slow", slow)
    return application


class Server:
    def __init__(self, runner: web.AppRunner, port: int, scheme: str) -> None:
        self.runner, self.port, self.scheme = runner, port, scheme

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"


async def serve(ssl_context: ssl.SSLContext | None = None) -> Server:
    runner = web.AppRunner(app())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context).start()
    return Server(runner, port, "https" if ssl_context else "http")


@pytest.fixture
async def http_server() -> AsyncIterator[Server]:
    server = await serve()
    yield server
    await server.runner.cleanup()


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(crt), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost"], check=True, capture_output=True)
    return crt, key


def config(url: str, extra: str = "") -> str:
    return f"""
sources:
  - name: api
    type: http
    url: "{url}"
    timeout: 1s
{extra}"""


async def test_probe_ok_with_json_field_and_token(http_server: Server,
                                                  make_scheduler: Callable[[str], Scheduler]) -> None:
    scheduler = make_scheduler(config(http_server.url("/health"), """    bearer_token: ${API_TOKEN}
    expect_json: {field: db.state, values: [up]}
"""), {"API_TOKEN": "t0ken"})
    await scheduler.collect_once()
    values = samples(scheduler)
    assert values[UP] == 1
    assert values['jobqueue_http_probe_success{source="api"}'] == 1
    assert values['jobqueue_http_status_code{source="api"}'] == 200
    assert 'jobqueue_source_latency_seconds{source="api"}' in values
    details = scheduler.snapshot.reading("api").details  # type: ignore[union-attr]
    assert details["status"] == "ok" and details["status_code"] == 200 and details["json_value"] == "up"
    assert details["latency_ms"] >= 0
    assert http_server.runner.app[SEEN] == ["Bearer t0ken"]


async def test_unexpected_answer_is_up_but_failed(http_server: Server,
                                                  make_scheduler: Callable[[str], Scheduler]) -> None:
    scheduler = make_scheduler(config(http_server.url("/down")))
    await scheduler.collect_once()
    values = samples(scheduler)
    assert values[UP] == 1
    assert values['jobqueue_http_probe_success{source="api"}'] == 0
    assert values['jobqueue_http_status_code{source="api"}'] == 503
    details = scheduler.snapshot.reading("api").details  # type: ignore[union-attr]
    assert (details["status"], details["reason"]) == ("error", "status 503")


async def test_slow_and_gone_servers_are_down_without_stale_series(
        http_server: Server, make_scheduler: Callable[[str], Scheduler]) -> None:
    slow = make_scheduler(config(http_server.url("/slow"), "    interval: 2s\n"))
    await slow.collect_once()
    assert slow.snapshot.sources["api"].status.error_kind == "timeout"
    assert samples(slow)[UP] == 0 and 'jobqueue_http_status_code{source="api"}' not in samples(slow)

    scheduler = make_scheduler(config(http_server.url("/health")))
    await scheduler.collect_once()
    assert samples(scheduler)['jobqueue_http_status_code{source="api"}'] == 200
    await http_server.runner.cleanup()
    await scheduler.collect_once()
    values = samples(scheduler)
    assert values[UP] == 0
    assert scheduler.snapshot.sources["api"].status.error_kind == "unreachable"
    assert not any(k.startswith(("jobqueue_http_", "jobqueue_source_latency")) for k in values)


async def test_tls_verified_by_default(cert: tuple[Path, Path], make_scheduler: Callable[[str], Scheduler]) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*cert)
    server = await serve(context)
    try:
        strict = make_scheduler(config(server.url("/health")))
        await strict.collect_once()
        status = strict.snapshot.sources["api"].status
        assert (status.up, status.error_kind) == (False, "tls")  # its own kind: a certificate to fix, not a network
        assert "TLS verification failed" in (status.error or "")

        private_ca = make_scheduler(config(server.url("/health"), f"    ca_file: {cert[0]}\n"))
        await private_ca.collect_once()
        assert samples(private_ca)['jobqueue_http_probe_success{source="api"}'] == 1

        insecure = make_scheduler(config(server.url("/health"), "    tls_verify: false\n"))
        await insecure.collect_once()
        assert samples(insecure)['jobqueue_http_status_code{source="api"}'] == 200
    finally:
        await server.runner.cleanup()
