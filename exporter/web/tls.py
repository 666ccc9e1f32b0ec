"""The server side of `tls_server_config`: the exporter-toolkit's settings with Go's names and meaning.

- `cipher_suites` takes Go's names (crypto/tls `CipherSuites()`) and, as in Go, applies to TLS 1.0-1.2
  only: TLS 1.3 suites are not configurable (Go's rule; Python's `ssl` has no call for them either),
  so naming one is accepted and changes nothing, and TLS 1.3 keeps OpenSSL's three AEAD suites.
- `curve_preferences` takes Go's names (CurveP256, CurveP384, CurveP521, X25519) in order of
  preference; as in Go it limits the key exchange groups of TLS 1.2 and TLS 1.3 alike.
- `client_allowed_sans`: the client certificate must carry one of these values among its DNS names,
  e-mail addresses, IP addresses or URIs (exporter-toolkit web/tls_config.go VerifyPeerCertificate,
  exact string match). Python reads a client certificate only once it verified it, so this needs a
  client_auth_type that verifies (VerifyClientCertIfGiven, RequireAnyClientCert with a CA here,
  RequireAndVerifyClientCert); a connection without an allowed SAN is closed before any request.
- `RequestClientCert` asks for no certificate here: Go asks and accepts any, unverified; Python's
  `ssl` cannot ask without verifying, and nothing here reads the certificate, so every client gets in
  as in Go.

A refused handshake (no or bad client certificate, no shared cipher or version, plain HTTP on the TLS
port, a SAN not allowed) is logged with the peer and OpenSSL's reason, at most one line every 10 s
with the number refused since the previous line: asyncio drops these errors silently.
"""

from __future__ import annotations

import ctypes
import ipaddress
import logging
import ssl
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("jobqueue.web.tls")

CLIENT_AUTH = {
    "": ssl.CERT_NONE, "NoClientCert": ssl.CERT_NONE, "RequestClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED, "RequireClientCert": ssl.CERT_REQUIRED,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
            "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# Go's crypto/tls CipherSuites() (the toolkit accepts no other name) -> OpenSSL's name; None: a
# TLS 1.3 suite, which neither Go nor Python lets a server choose.
CIPHER_SUITES: dict[str, str | None] = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_AES_128_GCM_SHA256": None,
    "TLS_AES_256_GCM_SHA384": None,
    "TLS_CHACHA20_POLY1305_SHA256": None,
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
# The toolkit's `curves` table (web/tls_config.go) -> OpenSSL's group name.
CURVES = {"CurveP256": "P-256", "CurveP384": "P-384", "CurveP521": "P-521", "X25519": "X25519"}
VERIFYING = ("VerifyClientCertIfGiven", "RequireAnyClientCert", "RequireClientCert", "RequireAndVerifyClientCert")


class TLSConfigError(Exception):
    """A certificate, key or setting that OpenSSL will not take; the message names it."""


@dataclass(frozen=True)
class TLSSettings:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    client_auth_type: str = ""
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    cipher_suites: tuple[str, ...] = ()
    curve_preferences: tuple[str, ...] = ()
    client_allowed_sans: tuple[str, ...] = ()

    def files(self) -> tuple[Path, ...]:
        return tuple(p for p in (self.cert_file, self.key_file, self.client_ca_file) if p is not None)


class Refusals:
    """Refused handshakes, logged with peer and reason at most once every `every` seconds."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self.unlogged = 0
        self._logged_at = -float("inf")

    def refused(self, peer: str, reason: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.unlogged += 1
        if now - self._logged_at >= self.every:
            log.warning("TLS handshake refused", extra={"peer": peer, "reason": reason,
                                                        "refused_since_last_line": self.unlogged})
            self._logged_at, self.unlogged = now, 0


REFUSALS = Refusals()


class CheckedSSLObject(ssl.SSLObject):
    """The SSL object of one connection: logs a refused handshake and enforces client_allowed_sans."""

    def do_handshake(self) -> None:
        try:
            super().do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise
        except ssl.SSLError as err:
            REFUSALS.refused(_peer(), getattr(err, "verify_message", None) or err.reason or str(err))
            raise
        allowed: frozenset[str] = getattr(self.context, "allowed_sans", frozenset())
        if allowed and not sans(self.getpeercert()) & allowed:
            REFUSALS.refused(_peer(), "the client certificate carries none of client_allowed_sans")
            raise ssl.SSLError("the client certificate carries none of client_allowed_sans")


class ServerContext(ssl.SSLContext):
    """A server context that knows its allowed client SANs; each of its connections checks them."""

    sslobject_class = CheckedSSLObject
    allowed_sans: frozenset[str] = frozenset()


def _peer() -> str:
    """The peer of the connection being handshaken. asyncio gives the SSL object no link to its
    connection; its caller, SSLProtocol._do_handshake (asyncio/sslproto.py), holds the transport."""
    try:
        protocol: Any = sys._getframe(2).f_locals.get("self")
        address = protocol._transport.get_extra_info("peername")
        return f"[{address[0]}]:{address[1]}" if ":" in address[0] else f"{address[0]}:{address[1]}"
    except (AttributeError, TypeError, IndexError, ValueError):
        return "unknown"


def sans(cert: Any) -> frozenset[str]:
    """The SAN values of a decoded certificate as Go prints them (IPs in canonical form)."""
    out = set()
    for kind, value in (cert or {}).get("subjectAltName", ()):
        if kind == "IP Address":
            try:
                value = str(ipaddress.ip_address(value.strip()))
            except ValueError:
                continue
        out.add(value)
    return frozenset(out)


def build_ssl_context(tls: TLSSettings) -> ServerContext:
    """A server context from the settings; a file or setting OpenSSL refuses is a TLSConfigError."""
    context = ServerContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = VERSIONS[tls.min_version]
    context.maximum_version = VERSIONS[tls.max_version]
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as err:
        raise TLSConfigError(f"cannot load cert_file {tls.cert_file} with key_file {tls.key_file}: "
                             f"{getattr(err, 'strerror', None) or err}") from err
    context.verify_mode = CLIENT_AUTH[tls.client_auth_type]
    if tls.client_ca_file is not None and context.verify_mode != ssl.CERT_NONE:
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except (OSError, ssl.SSLError) as err:
            raise TLSConfigError(f"cannot load client_ca_file {tls.client_ca_file}: "
                                 f"{getattr(err, 'strerror', None) or err}") from err
    suites = [name for suite in tls.cipher_suites if (name := CIPHER_SUITES[suite])]
    if suites:  # TLS 1.0-1.2 only, as in Go; TLS 1.3 keeps OpenSSL's suites
        context.set_ciphers(":".join(suites))
    if tls.curve_preferences:
        set_groups(context, [CURVES[c] for c in tls.curve_preferences])
    context.allowed_sans = frozenset(tls.client_allowed_sans)
    return context


def set_groups(context: ssl.SSLContext, groups: list[str]) -> None:
    """Limit the key exchange groups, in order of preference, as Go's CurvePreferences does.

    One group is `set_ecdh_curve` (OpenSSL 3: SSL_CTX_set1_groups with that one). Python has no
    call for a list, so a list goes to OpenSSL's SSL_CTX_set1_groups_list (a macro over
    SSL_CTX_ctrl) on the context's SSL_CTX, found right after the object header (CPython's
    Modules/_ssl.c PySSLContext) and checked against the context's options before use.
    """
    if len(groups) == 1:
        context.set_ecdh_curve({"P-256": "prime256v1", "P-384": "secp384r1", "P-521": "secp521r1"}.get(
            groups[0], groups[0]))
        return
    import _ssl

    lib = ctypes.CDLL(_ssl.__file__)
    lib.SSL_CTX_get_options.restype = ctypes.c_uint64
    lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_ctrl.restype = ctypes.c_long
    lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_char_p]
    ctx = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    if not ctx or lib.SSL_CTX_get_options(ctx) != context.options:
        raise TLSConfigError("curve_preferences: this Python's ssl can set one curve only; give one")
    ssl_ctrl_set_groups_list = 92  # openssl/ssl.h
    if lib.SSL_CTX_ctrl(ctx, ssl_ctrl_set_groups_list, 0, ":".join(groups).encode()) != 1:
        raise TLSConfigError(f"curve_preferences: OpenSSL refused {':'.join(groups)}")
