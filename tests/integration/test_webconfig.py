"""`--web.config.file` on a real daemon: TLS with the test's own CA, client certificates, bcrypt basic
auth with 401 + WWW-Authenticate, open probes, configured headers, and the file, the certificate and
the users re-read when they change, while a broken new version leaves the old one in force."""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from tests.support.pki import CA
from tests.support.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
CONFIG = "sources:\n  - {name: host, type: system, interval: 1s, timeout: 900ms}\n"
PASSWORD = "s3cret pass"


def hashed(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


@contextlib.contextmanager
def daemon(tmp: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[tuple[int, Path]]:
    """The exporter as a process on a free port; yields (port, log path); always stopped."""
    (tmp / "config.yaml").write_text(CONFIG)
    port, log = free_port(), tmp / "exporter.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "exporter", "--config", str(tmp / "config.yaml"),
                                 "--listen", f"127.0.0.1:{port}", *args], stdout=out, stderr=subprocess.STDOUT,
                                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
        try:
            wait_for_port(port, timeout=20)
            yield port, log
        finally:
            proc.terminate()
            proc.wait(timeout=15)


def get(port: str | int, path: str, context: ssl.SSLContext | None, user: str | None = None,
        password: str = PASSWORD, method: str = "GET") -> tuple[int, dict[str, str], bytes, Any]:
    """(status, headers, body, server certificate) of one request."""
    conn: http.client.HTTPConnection
    if context is None:
        conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", int(port), timeout=10, context=context)
    headers = {}
    if user is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    try:
        conn.request(method, path, headers=headers)
        resp = conn.getresponse()
        peer = conn.sock.getpeercert() if context is not None else None  # type: ignore[union-attr]
        return resp.status, dict(resp.getheaders()), resp.read(), peer
    finally:
        conn.close()


def client_context(ca: CA, cert: Any = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.path))
    if cert is not None:
        context.load_cert_chain(cert.cert, cert.key)
    return context


def eventually(what: str, probe: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def serial(peer: Any) -> int:
    return int(peer["serialNumber"], 16)


def test_tls_basic_auth_headers_and_open_probes(tmp_path: Path) -> None:
    ca = CA(tmp_path)
    server = ca.issue("server")
    web = tmp_path / "web.yml"
    # relative paths are relative to the web config file, as in the exporter-toolkit
    web.write_text(f"""
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  min_version: TLS12
http_server_config:
  headers:
    X-Content-Type-Options: nosniff
    X-Frame-Options: deny
basic_auth_users:
  prometheus: {hashed(PASSWORD)}
""")
    with daemon(tmp_path, "--web.config.file", str(web)) as (port, _):
        tls = client_context(ca)
        status, headers, body, peer = get(port, "/metrics", tls)
        assert (status, body) == (401, b"Unauthorized\n")
        assert headers["WWW-Authenticate"] == 'Basic realm="jobqueue-exporter"'
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "deny"
        assert serial(peer) == server.serial
        assert get(port, "/metrics", tls, "prometheus", "wrong")[0] == 401
        assert get(port, "/metrics", tls, "nobody")[0] == 401
        status, headers, body, _ = get(port, "/metrics", tls, "prometheus")
        assert status == 200 and b"jobqueue_exporter_build_info{" in body
        assert headers["X-Frame-Options"] == "deny"
        assert get(port, "/", tls)[0] == 401
        assert get(port, "/-/reload", tls, method="POST")[0] == 401
        assert get(port, "/no-such-page", tls)[0] == 401  # unknown paths are not revealed either
        # the health APIs keep their own documented auth (here: not configured, so 404 for everyone)
        assert get(port, "/health", tls)[0] == 404
        # the probes stay open: the kubelet and Docker's HEALTHCHECK carry no credentials
        status, headers, body, _ = get(port, "/healthz", tls)
        assert (status, body, headers["X-Content-Type-Options"]) == (200, b'{"status": "ok"}', "nosniff")
        assert get(port, "/readyz", tls)[0] in (200, 503)
        # plain HTTP on the TLS port gets no answer of the exporter's
        with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError, http.client.BadStatusLine)):
            get(port, "/healthz", None)


def test_certificate_users_and_policy_are_re_read_when_they_change(tmp_path: Path) -> None:
    ca = CA(tmp_path)
    first = ca.issue("server")
    client = ca.issue("client", client=True)
    web = tmp_path / "web.yml"
    web.write_text(f"""
tls_server_config: {{cert_file: server.crt, key_file: server.key}}
basic_auth_users: {{alice: {hashed(PASSWORD)}}}
""")
    with daemon(tmp_path, "--web.config.file", str(web)) as (port, log):
        tls = client_context(ca)
        assert get(port, "/metrics", tls, "alice")[0] == 200
        # a rotated certificate (same paths, new files) reaches the next handshake
        second = ca.issue("server")
        eventually("the new certificate", lambda: serial(get(port, "/healthz", tls)[3]) == second.serial)
        # a new user list: bob in, alice out
        web.write_text(f"""
tls_server_config: {{cert_file: server.crt, key_file: server.key}}
basic_auth_users: {{bob: {hashed("other")}}}
""")
        eventually("bob accepted", lambda: get(port, "/metrics", tls, "bob", "other")[0] == 200)
        assert get(port, "/metrics", tls, "alice")[0] == 401
        # a broken version is refused and logged; bob still gets in
        web.write_text("basic_auth_users: {carol: not-a-hash}\n"
                       "tls_server_config: {cert_file: server.crt, key_file: server.key}\n")
        eventually("the refusal logged",  # a request or handshake is what looks at the file
                   lambda: get(port, "/healthz", tls)[0] == 200 and b"web config not reloaded" in log.read_bytes())
        assert b"basic_auth_users.carol: not a bcrypt hash" in log.read_bytes()
        assert get(port, "/metrics", tls, "bob", "other")[0] == 200
        # require client certificates signed by the CA: without one the handshake fails
        web.write_text(f"""
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_ca_file: {ca.path.name}
  client_auth_type: RequireAndVerifyClientCert
""")

        def refused() -> bool:
            try:
                get(port, "/healthz", tls)
            except (OSError, http.client.HTTPException):  # TLS alert, reset or close, by TLS version
                return True
            return False

        eventually("client certificates required", refused)
        assert get(port, "/metrics", client_context(ca, client))[0] == 200
    assert first.serial != second.serial


def test_web_config_errors_are_one_line_and_exit_non_zero(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(CONFIG)
    cases = {
        "tls_server_config: {cert_file: missing.crt, key_file: missing.key}\n":
            "cannot load cert_file {d}/missing.crt with key_file {d}/missing.key: No such file or directory",
        "tls_server_config: {cert_file: a, key_file: b, client_auth_type: Sometimes}\n":
            "{w}: tls_server_config.client_auth_type: 'Sometimes' is not one of",
        "http_server_config: {headers: {Server: me}}\n":
            "{w}: http_server_config.headers.Server: this header can not be configured",
        "tls_server_config: {cert_file: a, key_file: b, cipher_suites: [X]}\n":
            "{w}: tls_server_config.cipher_suites: unknown name 'X' (Go's names: TLS_RSA_WITH_AES_128_CBC_SHA,",
        "tls_server_config: {cert_file: a, key_file: b, min_version: TLS13, max_version: TLS12}\n":
            "{w}: tls_server_config: min_version TLS13 is above max_version TLS12: no connection could be made",
        "basic_auth_user: {}\n": "{w}: basic_auth_user: unknown key (misspelled?)",
    }
    web = tmp_path / "web.yml"
    for text, expected in cases.items():
        web.write_text(text)
        for check in ((), ("--check-config",)):
            result = subprocess.run(
                [sys.executable, "-m", "exporter", "--config", str(tmp_path / "config.yaml"), "--listen",
                 f"127.0.0.1:{free_port()}", *check], capture_output=True, text=True, timeout=60, cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT), "JOBQUEUE_EXPORTER_WEB_CONFIG_FILE": str(web)})
            assert result.returncode == (2 if check else 1), result.stderr
            assert result.stderr.startswith("web config error: " + expected.format(d=tmp_path, w=web)), result.stderr
            assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


def healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The container's HEALTHCHECK command, with only the environment (it cannot see the daemon's flags)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("JOBQUEUE_EXPORTER_")}
    return subprocess.run([sys.executable, "-m", "exporter.healthcheck"], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env={**clean, "PYTHONPATH": str(ROOT), **env})


@pytest.mark.parametrize("mode", ["tls-from-env", "tls-from-flag", "mtls-from-flag", "mtls-from-env"])
def test_probes_answer_in_every_web_config_mode(tmp_path: Path, mode: str) -> None:
    """The kubelet (plain httpGet, no certificate) and the HEALTHCHECK reach /healthz and /readyz on the
    probe listener whether the main port wants TLS or a verified client certificate, and whether the
    web config came as a flag (which the HEALTHCHECK cannot see) or from the environment."""
    ca = CA(tmp_path)
    ca.issue("server")
    client = ca.issue("client", client=True)
    web = tmp_path / "web.yml"
    mtls = f"  client_ca_file: {ca.path.name}\n  client_auth_type: RequireAndVerifyClientCert\n"
    web.write_text("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                   + (mtls if mode.startswith("mtls") else "")
                   + f"basic_auth_users: {{prometheus: {hashed(PASSWORD)}}}\n")
    probes = free_port()
    from_env = mode.endswith("env")
    env = {"JOBQUEUE_EXPORTER_HEALTH_LISTEN": f"0.0.0.0:{probes}",
           **({"JOBQUEUE_EXPORTER_WEB_CONFIG_FILE": str(web)} if from_env else {})}
    flags = () if from_env else ("--web.config.file", str(web))
    with daemon(tmp_path, *flags, env=env) as (port, _):
        wait_for_port(probes, timeout=20)
        result = healthcheck(env)
        assert (result.returncode, result.stderr) == (0, "")
        # what the kubelet's httpGet does: plain HTTP to the pod's probe port, no credentials
        status, _, body, _ = get(probes, "/healthz", None)
        assert (status, body) == (200, b'{"status": "ok"}')
        eventually("ready", lambda: get(probes, "/readyz", None)[0] == 200)
        # the probe port serves nothing else: no metric or health API bypasses TLS, certificates or auth
        assert get(probes, "/metrics", None)[0] == 404
        assert get(probes, "/", None)[0] == 404
        # the main port still demands what the web config says
        cert = client if mode.startswith("mtls") else None
        assert get(port, "/metrics", client_context(ca, cert))[0] == 401
        assert get(port, "/metrics", client_context(ca, cert), "prometheus")[0] == 200
        if mode.startswith("mtls"):
            with pytest.raises((OSError, http.client.HTTPException)):
                get(port, "/healthz", client_context(ca))
        # without the probe listener the HEALTHCHECK cannot pass these modes: say so rather than pretend
        without = healthcheck({**env, "JOBQUEUE_EXPORTER_HEALTH_LISTEN": "",
                               "JOBQUEUE_EXPORTER_LISTEN": f"127.0.0.1:{port}"})
        assert without.returncode == (0 if mode == "tls-from-env" else 1)


def test_a_probe_port_in_use_stops_start_up(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(CONFIG)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "exporter", "--config", str(tmp_path / "config.yaml"), "--listen",
             f"127.0.0.1:{free_port()}", "--health-listen", f"127.0.0.1:{busy}"],
            capture_output=True, text=True, timeout=60, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 1
    assert f"--health-listen: cannot listen on 127.0.0.1:{busy}: Address already in use" in result.stderr


def tls_client(ca: CA, cert: Any = None, ciphers: str | None = None, curve: str | None = None,
               version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = client_context(ca, cert)
    if ciphers:
        context.set_ciphers(ciphers)
    if curve:
        context.set_ecdh_curve(curve)
    if version:
        context.minimum_version = context.maximum_version = version
    return context


def handshake(port: int, context: ssl.SSLContext) -> tuple[str, str] | None:
    """(cipher, version) of a completed handshake followed by a request, or None when refused."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if not tls.recv(64).startswith(b"HTTP/1.1 200"):
                return None
            cipher = tls.cipher()
            assert cipher is not None
            return cipher[0], cipher[1]
    except (OSError, ssl.SSLError):
        return None


def group_handshake(port: int, ca: CA, group: str) -> str | None:
    """The key exchange group of a TLS 1.3 handshake offering only `group` (None when refused), by
    `openssl s_client`: Python's `set_ecdh_curve` takes only EC curves before 3.13 on some builds
    (Debian's 3.11.2: X25519 is an "unknown group"), so it cannot offer X25519 alone."""
    answer = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
                             "-tls1_3", "-groups", group, "-CAfile", str(ca.path), "-verify_return_error",
                             "-brief"], input=b"", capture_output=True, timeout=30)
    out = answer.stdout.decode(errors="replace") + answer.stderr.decode(errors="replace")
    if answer.returncode != 0 or "Protocol version: TLSv1.3" not in out:
        return None
    found = next((line.split(":", 1)[1].strip() for line in out.splitlines()
                  if line.startswith(("Server Temp Key", "Peer Temp Key", "Negotiated TLS1.3 group"))), "")
    return found.split(",")[0].strip() or None


def test_cipher_suites_and_curves_with_go_names_and_refusals_logged(tmp_path: Path) -> None:
    ca = CA(tmp_path)
    ca.issue("server")  # an ECDSA P-256 key: the ECDHE_ECDSA suites
    web = tmp_path / "web.yml"
    web.write_text("""
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, TLS_AES_128_GCM_SHA256]
  curve_preferences: [CurveP384, X25519]
""")
    with daemon(tmp_path, "--web.config.file", str(web)) as (port, log):
        tls12 = ssl.TLSVersion.TLSv1_2
        assert handshake(port, tls_client(ca, version=tls12)) == ("ECDHE-ECDSA-AES256-GCM-SHA384", "TLSv1.2")
        # a TLS 1.2 suite not on the list: no shared cipher
        assert handshake(port, tls_client(ca, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256", version=tls12)) is None
        # TLS 1.3 suites are not configurable (Go's rule): TLS 1.3 still negotiates its own
        assert handshake(port, tls_client(ca))[1] == "TLSv1.3"  # type: ignore[index]
        # the curves are the only key exchange groups, several of them (seen under TLS 1.3, where the
        # groups are independent of the certificate's curve; under TLS 1.2 a client offering one group
        # could not accept this P-256 certificate whatever the server allowed)
        tls13 = ssl.TLSVersion.TLSv1_3
        assert handshake(port, tls_client(ca, curve="prime256v1", version=tls13)) is None
        assert handshake(port, tls_client(ca, curve="secp384r1", version=tls13)) is not None
        assert group_handshake(port, ca, "X25519") == "X25519"
        assert group_handshake(port, ca, "P-256") is None
        eventually("the refusal logged", lambda: b"TLS handshake refused" in log.read_bytes())
        line = next(x for x in log.read_text().splitlines() if "TLS handshake refused" in x)
        assert "peer=127.0.0.1:" in line and "NO_SHARED_CIPHER" in line, line
        # rate-limited: a burst of refusals is one line (the next carries the count since this one)
        for _ in range(10):
            assert handshake(port, tls_client(ca, curve="prime256v1")) is None
        assert log.read_text().count("TLS handshake refused") <= 2


def test_client_certificates_request_verify_and_allowed_sans(tmp_path: Path) -> None:
    ca, other = CA(tmp_path), CA(tmp_path, "other CA")
    ca.issue("server")
    client = ca.issue("client", client=True)  # SANs: DNS localhost, IP 127.0.0.1
    stranger = other.issue("stranger", client=True)
    web = tmp_path / "web.yml"

    def policy(auth: str, allowed: str = "") -> None:
        web.write_text(f"tls_server_config: {{cert_file: server.crt, key_file: server.key, "
                       f"client_ca_file: {ca.path.name}, client_auth_type: {auth}{allowed}}}\n")

    policy("RequestClientCert")
    with daemon(tmp_path, "--web.config.file", str(web)) as (port, log):
        # Go accepts any certificate under RequestClientCert, verified or not, and none at all
        assert handshake(port, tls_client(ca, stranger)) is not None
        assert handshake(port, tls_client(ca)) is not None
        policy("RequireAndVerifyClientCert", ", client_allowed_sans: [exporter.example, 10.0.0.1]")
        eventually("the SAN policy", lambda: handshake(port, tls_client(ca, client)) is None)
        assert handshake(port, tls_client(ca, stranger)) is None
        policy("RequireAndVerifyClientCert", ", client_allowed_sans: [exporter.example, 127.0.0.1]")
        eventually("127.0.0.1 allowed", lambda: handshake(port, tls_client(ca, client)) is not None)
        assert handshake(port, tls_client(ca)) is None  # no certificate at all
        text = log.read_text()
        assert "the client certificate carries none of client_allowed_sans" in text
        assert "TLS handshake refused" in text and "peer=127.0.0.1:" in text
