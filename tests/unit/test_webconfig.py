"""The web config file read the way the exporter-toolkit reads it: keys, defaults, relative paths,
the header allow-list, bcrypt users; and the basic-auth check with its per-credential cache."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import bcrypt
import pytest

from exporter.web.tls import Refusals, sans
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


def test_go_names_for_suites_curves_and_sans() -> None:
    config = parse_web_config("""
tls_server_config:
  cert_file: a
  key_file: b
  client_ca_file: ca.crt
  client_auth_type: RequireAndVerifyClientCert
  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384]
  curve_preferences: [X25519, CurveP256]
  client_allowed_sans: [prometheus.monitoring.svc, 10.0.0.7]
  prefer_server_cipher_suites: true
""", WHERE)
    assert config.tls is not None
    assert config.tls.cipher_suites == ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384")
    assert config.tls.curve_preferences == ("X25519", "CurveP256")
    assert config.tls.client_allowed_sans == ("prometheus.monitoring.svc", "10.0.0.7")


@pytest.mark.parametrize(("tls", "message"), [
    ("min_version: TLS13, max_version: TLS12",
     "tls_server_config: min_version TLS13 is above max_version TLS12: no connection could be made"),
    ("cipher_suites: [ECDHE-RSA-AES128-GCM-SHA256]",
     "tls_server_config.cipher_suites: unknown name 'ECDHE-RSA-AES128-GCM-SHA256' (Go's names: "),
    ("cipher_suites: [TLS_AES_128_GCM_SHA256]",
     "tls_server_config.cipher_suites: only TLS 1.3 suites, which are not configurable (as in Go)"),
    ("curve_preferences: [P-256]", "tls_server_config.curve_preferences: unknown name 'P-256' (Go's names: "
     "CurveP256, CurveP384, CurveP521, X25519)"),
    ("curve_preferences: CurveP256", "tls_server_config.curve_preferences: must be a list of names"),
    ("client_allowed_sans: [a], client_ca_file: c, client_auth_type: RequestClientCert",
     "tls_server_config: client_allowed_sans needs a client_auth_type that verifies certificates"),
])
def test_tls_setting_errors(tls: str, message: str) -> None:
    with pytest.raises(WebConfigError) as err:
        parse_web_config(f"tls_server_config: {{cert_file: a, key_file: b, {tls}}}", WHERE)
    assert str(err.value).startswith(f"{WHERE}: {message}")


def test_request_client_cert_verifies_nothing(tmp_path: Path) -> None:
    # Go: tls.RequestClientCert accepts any certificate, unverified; with the CA loaded and
    # CERT_OPTIONAL, OpenSSL refused every certificate the CA had not signed
    from tests.support.pki import CA

    ca = CA(tmp_path)
    ca.issue("server")
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config: {{cert_file: server.crt, key_file: server.key, client_ca_file: {ca.path.name},"
                   " client_auth_type: RequestClientCert}\n")
    live = LiveWebConfig(web)
    assert live.context is not None and live.context.current.verify_mode == ssl.CERT_NONE


def test_refused_handshakes_are_logged_at_most_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    refusals = Refusals(every=10.0)
    with caplog.at_level("WARNING", logger="jobqueue.web.tls"):
        for i in range(50):
            refusals.refused(f"10.0.0.{i}:443", "PEER_DID_NOT_RETURN_A_CERTIFICATE", now=100.0 + i * 0.1)
        refusals.refused("10.0.0.99:443", "NO_SHARED_CIPHER", now=111.0)
    lines = [(r.getMessage(), r.peer, r.reason, r.refused_since_last_line) for r in caplog.records]  # type: ignore[attr-defined]
    assert lines == [("TLS handshake refused", "10.0.0.0:443", "PEER_DID_NOT_RETURN_A_CERTIFICATE", 1),
                     ("TLS handshake refused", "10.0.0.99:443", "NO_SHARED_CIPHER", 50)]


def test_client_sans_as_go_prints_them() -> None:
    cert = {"subjectAltName": (("DNS", "prometheus"), ("IP Address", "2001:DB8:0:0:0:0:0:1\n"),
                               ("IP Address", "10.0.0.7"), ("email", "ops@example.com"), ("URI", "spiffe://x/y"))}
    assert sans(cert) == {"prometheus", "2001:db8::1", "10.0.0.7", "ops@example.com", "spiffe://x/y"}
    assert sans({}) == frozenset()
