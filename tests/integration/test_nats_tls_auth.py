"""NATS over TLS with the test's CA and client certificates, and every way to log in: token, nkey seed,
and a `.creds` file of an operator-mode server. Each server is the test's own, on a free port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import nats
import pytest

from exporter.config import ConfigError, parse_config
from exporter.sources.base import SourceDenied, SourceError
from exporter.sources.nats import NatsSource
from exporter.sources.nats.config import NatsConfig
from tests.support.nats import NatsServer
from tests.support.nats_auth import operator_mode, user_seed_file
from tests.support.tls import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Callable[[str], NatsServer]]:
    started: list[NatsServer] = []

    def start(extra: str) -> NatsServer:
        started.append(NatsServer(tmp_path, extra_config=extra).start())
        return started[-1]

    yield start
    for s in started:
        s.stop()


async def _collect(server: NatsServer, body: str, env: dict[str, str] | None = None,
                   scheme: str = "nats") -> dict[str, object]:
    text = (f"sources:\n  - name: n\n    type: nats\n    url: {scheme}://127.0.0.1:{server.port}\n"
            f"    timeout: 2s\n    dead_letters: {{mode: 'off'}}\n{body}")
    config = parse_config(text, "<test>", env or {})
    source = NatsSource(config.sources[0], None)  # type: ignore[arg-type]
    try:
        reading = await source.collect()
    finally:
        await source.close()
    return dict(reading.details["nats"])


def _tls_block(pki: Pki, ca: Path | None = None, client: bool = True) -> str:
    out = f"    tls:\n      ca_file: {ca or pki.ca}\n"
    if client:
        out += f"      cert_file: {pki.client_cert}\n      key_file: {pki.client_key}\n"
    return out


def _tls_server_config(pki: Pki) -> str:
    return (f'tls {{ cert_file: "{pki.server_cert}", key_file: "{pki.server_key}", ca_file: "{pki.ca}", '
            "verify: true, timeout: 2 }")


async def test_tls_with_ca_and_client_certificate(server: Callable[[str], NatsServer], pki: Pki) -> None:
    s = server(_tls_server_config(pki))
    for scheme in ("tls", "nats"):  # a tls:// url, or a nats:// url whose server demands TLS
        info = await _collect(s, _tls_block(pki), scheme=scheme)
        assert info["connected"] is True and str(info["url"]).endswith(f"127.0.0.1:{s.port}")
    with pytest.raises(SourceError, match="CERTIFICATE_VERIFY_FAILED"):
        await _collect(s, _tls_block(pki, ca=pki.other_ca))
    with pytest.raises(SourceError):  # the server requires a client certificate
        await _collect(s, _tls_block(pki, client=False))
    insecure = f"    tls:\n      insecure: true\n      cert_file: {pki.client_cert}\n      key_file: {pki.client_key}\n"
    assert (await _collect(s, insecure))["connected"] is True


async def test_token(server: Callable[[str], NatsServer]) -> None:
    s = server('authorization { token: "s3cret-token" }')
    info = await _collect(s, "    token: ${NATS_TOKEN}\n", {"NATS_TOKEN": "s3cret-token"})
    assert info["connected"] is True
    with pytest.raises(SourceDenied, match=r"(?i)authorization"):
        await _collect(s, "    token: ${NATS_TOKEN}\n", {"NATS_TOKEN": "wrong"})


async def test_nkey_seed(server: Callable[[str], NatsServer], tmp_path: Path) -> None:
    seed, public = user_seed_file(tmp_path)
    s = server(f'authorization {{ users = [ {{ nkey: "{public}" }} ] }}')
    assert (await _collect(s, f"    nkeys_seed_file: {seed}\n"))["connected"] is True
    (tmp_path / "other").mkdir()
    other, _ = user_seed_file(tmp_path / "other")  # a valid seed the server does not know
    with pytest.raises(SourceDenied):
        await _collect(s, f"    nkeys_seed_file: {other}\n")


async def test_creds_file_of_an_operator_mode_server(server: Callable[[str], NatsServer], tmp_path: Path) -> None:
    config, creds = operator_mode(tmp_path)
    s = server(config)
    info = await _collect(s, f"    creds_file: {creds}\n")
    assert info["connected"] is True
    nc = await nats.connect(s.url, user_credentials=str(creds))  # the account has JetStream
    await nc.jetstream().add_stream(name="CREDS", subjects=["creds.>"])
    await nc.close()
    source_config = parse_config(f"sources:\n  - name: n\n    type: nats\n    url: {s.url}\n    creds_file: {creds}\n"
                                 "    dead_letters: {mode: \"off\"}\n", "<t>", {})
    source = NatsSource(source_config.sources[0], None)  # type: ignore[arg-type]
    try:
        reading = await source.collect()
    finally:
        await source.close()
    assert [q.queue for q in reading.queues] == ["CREDS"]


def test_config_errors(tmp_path: Path) -> None:
    seed, _ = user_seed_file(tmp_path)
    base = {"name": "n", "type": "nats"}
    for extra, message in [({"creds_file": str(tmp_path / "none.creds")}, "not a readable file"),
                           ({"nkeys_seed_file": str(seed), "token": "t"}, "one way to log in"),
                           ({"tls": {"ca_file": str(tmp_path / "none.crt")}}, "not a readable file")]:
        with pytest.raises(ValueError, match=message):
            NatsConfig.model_validate({**base, **extra})
    with pytest.raises(ConfigError, match="creds_file"):
        parse_config(f"sources:\n  - name: n\n    type: nats\n    creds_file: {tmp_path}/x.creds\n", "<t>", {})
