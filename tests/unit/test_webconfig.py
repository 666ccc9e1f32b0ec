"""The web config file read the way the exporter-toolkit reads it: keys, defaults, relative paths,
the header allow-list, bcrypt users; and the basic-auth check with its per-credential cache."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import bcrypt
import pytest

from exporter.web.webconfig import LiveWebConfig, WebConfigError, parse_web_config, protected

WHERE = Path("/etc/exporter/web.yml")


def test_full_file_and_relative_paths() -> None:
    config = parse_web_config("""
tls_server_config:
  cert_file: tls/server.crt
  key_file: /abs/server.key
  client_ca_file: ca.crt
  client_auth_type: RequireAndVerifyClientCert
  min_version: TLS13
http_server_config:
  http2: true
  headers: {Strict-Transport-Security: max-age=31536000, X-Frame-Options: sameorigin}
basic_auth_users:
  prometheus: $2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG
""", WHERE)
    assert config.tls is not None
    assert (config.tls.cert_file, config.tls.key_file, config.tls.client_ca_file) == (
        Path("/etc/exporter/tls/server.crt"), Path("/abs/server.key"), Path("/etc/exporter/ca.crt"))
    assert (config.tls.min_version, config.tls.max_version) == ("TLS13", "TLS13")
    assert config.headers == {"Strict-Transport-Security": "max-age=31536000", "X-Frame-Options": "sameorigin"}
    assert list(config.users) == ["prometheus"]


def test_empty_file_means_no_tls_no_auth() -> None:
    config = parse_web_config("", WHERE)
    assert (config.tls, config.users, config.headers) == (None, {}, {})


@pytest.mark.parametrize(("text", "message"), [
    ("tls_server_config: {cert_file: a}", "tls_server_config: cert_file and key_file are both required"),
    ("tls_server_config: {cert_file: a, key_file: b, min_version: TLS14}",
     "tls_server_config.min_version: 'TLS14' is not one of TLS10, TLS11, TLS12, TLS13"),
    ("tls_server_config: {cert_file: a, key_file: b, client_ca_file: c}",
     "tls_server_config: client_ca_file is set but client_auth_type asks for no client certificate"),
    ("tls_server_config: {cert_file: a, key_file: b, client_auth_type: RequireAndVerifyClientCert}",
     "tls_server_config: client_auth_type RequireAndVerifyClientCert needs client_ca_file"),
    ("http_server_config: {headers: {X-Frame-Options: allow}}",
     "http_server_config.headers.X-Frame-Options: expected one of deny, sameorigin, got 'allow'"),
    ("basic_auth_users: {bob: hunter2}", "basic_auth_users.bob: not a bcrypt hash"),
    ("rate_limit: {burst: 1}", "rate_limit: not supported by jobqueue-exporter (limit at the proxy or network)"),
    ("basic_auth_user: {}", "basic_auth_user: unknown key (misspelled?)"),
    ("[1, 2]", "the file must be a mapping of keys"),
])
def test_errors_name_the_file_and_key(text: str, message: str) -> None:
    with pytest.raises(WebConfigError) as err:
        parse_web_config(text, WHERE)
    assert str(err.value).startswith(f"{WHERE}: {message}")


@pytest.mark.parametrize(("text", "message"), [
    ("basic_auth_users: [bob]", "basic_auth_users: must be a mapping"),
    ("basic_auth_users: bob", "basic_auth_users: must be a mapping"),
    ("http_server_config: {headers: [X-Frame-Options]}", "http_server_config.headers: must be a mapping"),
])
def test_a_list_where_a_mapping_belongs_is_an_error_not_a_traceback(text: str, message: str) -> None:
    with pytest.raises(WebConfigError) as err:
        parse_web_config(text, WHERE)
    assert str(err.value) == f"{WHERE}: {message}"


def test_require_any_client_cert_without_a_ca_is_refused_not_downgraded_to_no_certificate() -> None:
    # Python's ssl cannot require a certificate without verifying it: without client_ca_file the
    # server would accept clients that send none, the opposite of what the setting promises.
    with pytest.raises(WebConfigError) as err:
        parse_web_config("tls_server_config: {cert_file: a, key_file: b, client_auth_type: RequireAnyClientCert}",
                         WHERE)
    assert str(err.value).startswith(f"{WHERE}: tls_server_config: client_auth_type RequireAnyClientCert needs "
                                     "client_ca_file")
    config = parse_web_config("tls_server_config: {cert_file: a, key_file: b, client_ca_file: c, "
                              "client_auth_type: RequireAnyClientCert}", WHERE)
    assert config.tls is not None and config.tls.client_auth_type == "RequireAnyClientCert"


def test_which_paths_need_the_web_auth() -> None:
    assert [protected(p) for p in ("/", "/metrics", "/openapi.json", "/-/reload", "/nope")] == [True] * 5
    assert [protected(p) for p in ("/healthz", "/readyz", "/health", "/api/v1/health",
                                   "/api/v1/platform/system/queues/{queue_name}/jobs")] == [False] * 5


async def test_basic_auth_check_and_cache(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users: {{alice: {bcrypt.hashpw(b'pw:with colon', bcrypt.gensalt(4)).decode()}}}\n")
    live = LiveWebConfig(web)
    assert live.context is None

    def basic(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    assert await live.allowed(basic("alice", "pw:with colon")) is True
    assert await live.allowed(basic("alice", "pw")) is False
    assert await live.allowed(basic("mallory", "pw:with colon")) is False
    assert await live.allowed("Bearer abc") is False
    assert await live.allowed("Basic !!!") is False
    assert await live.allowed(None) is False
    assert len(live._cache) == 3  # one entry per credential checked with bcrypt
    assert await live.allowed(basic("alice", "pw:with colon")) is True
    assert len(live._cache) == 3


def test_tls_context_follows_the_settings(tmp_path: Path) -> None:
    from tests.support.pki import CA

    ca = CA(tmp_path)
    ca.issue("server")
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config: {{cert_file: server.crt, key_file: server.key, client_ca_file: {ca.path.name},"
                   " client_auth_type: VerifyClientCertIfGiven, min_version: TLS13}\n")
    live = LiveWebConfig(web)
    assert live.context is not None
    current = live.context.current
    assert (current.verify_mode, current.minimum_version) == (ssl.CERT_OPTIONAL, ssl.TLSVersion.TLSv1_3)


def test_a_file_that_is_not_text_is_an_error_at_start_and_keeps_the_old_config_on_reload(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_bytes(b"\xff\xfe binary")
    with pytest.raises(WebConfigError) as err:
        LiveWebConfig(web)
    assert str(err.value).startswith(f"{web}: cannot read the web config file: not UTF-8 text")
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
    web.write_text(f"basic_auth_users: {{alice: '{hashed}'}}\n")
    live = LiveWebConfig(web)
    web.write_bytes(b"\xff\xfe binary")
    error = live.reload()
    assert error is not None and error.startswith(f"{web}: cannot read the web config file: not UTF-8 text")
    assert list(live.config.users) == ["alice"]
