"""PostgreSQL over TLS: a throwaway cluster with ssl=on that accepts only TLS connections with a
client certificate signed by the test's CA; libpq-style DSN parameters and the `tls:` block both work."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.config import ConfigError
from exporter.sources.base import SourceError
from tests.support.postgres import PgCluster, collect, make_source
from tests.support.tls import Pki, make_pki

BODY = "    connections: false\n"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def ssl_cluster(pki: Pki) -> Iterator[PgCluster]:
    cluster = PgCluster().init()
    cert, key, ca = cluster.own(pki.server_cert), cluster.own(pki.server_key), cluster.own(pki.ca)
    # TCP only over TLS and only with a client certificate of our CA; the Unix socket stays trusted
    (cluster.data / "pg_hba.conf").write_text(
        "local all all trust\n"
        "hostnossl all all 127.0.0.1/32 reject\n"
        "hostssl all all 127.0.0.1/32 trust clientcert=verify-ca\n")
    cluster.options = f"-c ssl=on -c ssl_cert_file={cert} -c ssl_key_file={key} -c ssl_ca_file={ca}"
    cluster.start()
    yield cluster
    cluster.destroy()


def _client(pki: Pki) -> str:
    return f"      cert_file: {pki.client_cert}\n      key_file: {pki.client_key}\n"


async def test_dsn_parameters_verify_full_with_client_certificate(ssl_cluster: PgCluster, pki: Pki) -> None:
    dsn = (f"{ssl_cluster.dsn()}?sslmode=verify-full&sslrootcert={pki.ca}&sslcert={pki.client_cert}"
           f"&sslkey={pki.client_key}")
    reading = await collect(dsn, BODY)
    # shown without its query string and with its whole userinfo hidden
    assert reading.details["postgres"]["dsn"] == ssl_cluster.dsn().replace("//postgres@", "//***@")
    assert reading.details["postgres"]["server_version"].split(".")[0] == ssl_cluster.bindir.parent.name


async def test_tls_block(ssl_cluster: PgCluster, pki: Pki) -> None:
    reading = await collect(ssl_cluster.dsn(), f"{BODY}    tls:\n      ca_file: {pki.ca}\n{_client(pki)}")
    assert reading.details["latency_ms"] > 0


async def test_refusals_name_the_reason(ssl_cluster: PgCluster, pki: Pki) -> None:
    cases = [
        (f"{BODY}    tls:\n      ca_file: {pki.ca}\n", "certificate"),  # no client certificate
        (f"{BODY}    tls:\n      ca_file: {pki.other_ca}\n{_client(pki)}", "CERTIFICATE_VERIFY_FAILED"),
    ]
    for body, reason in cases:
        with pytest.raises(SourceError, match=reason):
            await collect(ssl_cluster.dsn(), body)
    with pytest.raises(SourceError, match=r"reject|no pg_hba.conf entry|SSL off"):
        await collect(f"{ssl_cluster.dsn()}?sslmode=disable", BODY)


async def test_insecure_encrypts_without_checking_the_server(ssl_cluster: PgCluster, pki: Pki) -> None:
    reading = await collect(ssl_cluster.dsn(), f"{BODY}    tls:\n      insecure: true\n{_client(pki)}")
    assert reading.details["postgres"]["server_version"].split(".")[0] == ssl_cluster.bindir.parent.name


def test_config_errors(pki: Pki, tmp_path: Path) -> None:
    cases = [
        (f"postgresql://h/db?sslmode=verify-full&sslrootcert={pki.ca}", f"    tls:\n      ca_file: {pki.ca}\n",
         "either in the dsn"),
        ("postgresql://h/db?sslmode=sometimes", "", "sslmode must be one of"),
        (f"postgresql://h/db?sslrootcert={tmp_path}/missing.crt", "", "is not a readable file"),
    ]
    for dsn, body, message in cases:
        with pytest.raises(ConfigError, match=message):
            make_source(dsn, body)
