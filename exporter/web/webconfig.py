"""`--web.config.file`: TLS, basic auth and response headers in the Prometheus exporter-toolkit format.

The same file a Go exporter takes (`tls_server_config`, `basic_auth_users` with bcrypt hashes,
`http_server_config.headers`), so a platform team reuses what it already wrote for node_exporter.
Relative paths are relative to the file, as in the toolkit. The file and the certificates it names
are re-read when they change (checked at most once a second, on a request or a TLS handshake): a
rotated certificate or a new user applies to the next connection without a restart. A broken new
version is logged and the last good one stays in force. Turning TLS on or off needs a restart.

Basic auth guards every path but these: `/healthz` and `/readyz` stay open (they are the
container's and the kubelet's probes, which carry no credentials, and say nothing but "alive" and
"collected once"), and the JSON shims keep the authentication their documented APIs define
(`auth:` tokens, sent as `Authorization: Bearer`, which basic auth would take the place of).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import os
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from exporter.web.shims import SHIMS
from exporter.web.tls import (
    CIPHER_SUITES,
    CLIENT_AUTH,
    CURVES,
    VERIFYING,
    VERSIONS,
    TLSConfigError,
    TLSSettings,
)
from exporter.web.tls import build_ssl_context as build_tls_context

log = logging.getLogger("jobqueue.web.webconfig")

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
# The toolkit's own list (web/handler.go extraHTTPHeaders): only these, some with fixed values.
HEADERS: dict[str, tuple[str, ...]] = {
    "Strict-Transport-Security": (), "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"), "X-XSS-Protection": (), "Content-Security-Policy": (),
}
TLS_KEYS = {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version", "max_version",
            "prefer_server_cipher_suites", "cipher_suites", "curve_preferences", "client_allowed_sans"}
# Toolkit keys this exporter does not implement: refused by name rather than silently ignored.
UNSUPPORTED = {"cert": "use cert_file", "key": "use key_file", "client_ca": "use client_ca_file",
               "rate_limit": "limit at the proxy or network"}
# bcrypt of a random password: unknown users cost the same time as known ones (no user enumeration).
_DUMMY_HASH = b"$2b$10$KQLJsRzSuRCRUxvtfsQRBuK6N7LAsgs9jRzwvuQXVt4xlpJCE7Dia"


class WebConfigError(Exception):
    """The web config cannot be used; the message is one line naming the file and the key."""


@dataclass(frozen=True)
class WebConfig:
    """One parsed version of the file."""

    tls: TLSSettings | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def parse_web_config(text: str, path: Path) -> WebConfig:
    """Validate the file's text the way the toolkit does (unknown keys are errors)."""
    where = str(path)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise WebConfigError(f"{where}: not valid YAML: {getattr(err, 'problem', err)}") from err
    if not isinstance(data, dict):
        raise WebConfigError(f"{where}: the file must be a mapping of keys")
    _known(data, {"tls_server_config", "http_server_config", "basic_auth_users"}, where, "")
    # http2 and prefer_server_cipher_suites are accepted and have no effect: aiohttp serves HTTP/1.1,
    # and Go ignores the latter since 1.18
    users: dict[str, bytes] = {}
    for user, hashed in _mapping(data.get("basic_auth_users"), where, "basic_auth_users").items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise WebConfigError(f"{where}: basic_auth_users.{user}: not a bcrypt hash ($2y$..., e.g. "
                                 "from `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)")
        users[str(user)] = hashed.encode()
    http = data.get("http_server_config") or {}
    _known(http, {"headers", "http2"}, where, "http_server_config.")
    headers = {str(k): str(v) for k, v in _mapping(http.get("headers"), where, "http_server_config.headers").items()}
    for name, value in headers.items():
        if name not in HEADERS:
            raise WebConfigError(f"{where}: http_server_config.headers.{name}: this header can not be configured")
        if HEADERS[name] and value not in HEADERS[name]:
            raise WebConfigError(f"{where}: http_server_config.headers.{name}: expected one of "
                                 f"{', '.join(HEADERS[name])}, got {value!r}")
    tls_data = data.get("tls_server_config") or {}
    _known(tls_data, TLS_KEYS, where, "tls_server_config.")
    tls = _tls(tls_data, path) if tls_data else None
    return WebConfig(tls, users, headers)


def _mapping(value: Any, where: str, key: str) -> dict[Any, Any]:
    """`value` as a mapping (absent: empty); anything else is an error naming the key, not a traceback."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WebConfigError(f"{where}: {key}: must be a mapping")
    return value


def _known(data: Any, keys: set[str], where: str, prefix: str) -> None:
    if not isinstance(data, dict):
        raise WebConfigError(f"{where}: {prefix.rstrip('.') or '(top level)'}: must be a mapping")
    for key in data:
        if key in UNSUPPORTED:
            raise WebConfigError(f"{where}: {prefix}{key}: not supported by jobqueue-exporter ({UNSUPPORTED[key]})")
        if key not in keys:
            raise WebConfigError(f"{where}: {prefix}{key}: unknown key (misspelled?)")


def _tls(data: dict[str, Any], path: Path) -> TLSSettings:
    where = f"{path}: tls_server_config"

    def file(key: str) -> Path | None:
        value = data.get(key)
        return None if not value else path.parent / str(value)  # an absolute value replaces the base

    cert, key, ca = file("cert_file"), file("key_file"), file("client_ca_file")
    if cert is None or key is None:
        raise WebConfigError(f"{where}: cert_file and key_file are both required")
    auth = str(data.get("client_auth_type") or "")
    if auth not in CLIENT_AUTH:
        names = ", ".join(k for k in CLIENT_AUTH if k)
        raise WebConfigError(f"{where}.client_auth_type: {auth!r} is not one of {names}")
    if ca is not None and auth in ("", "NoClientCert"):  # Go: "client CA's ... without a Client Auth Policy"
        raise WebConfigError(f"{where}: client_ca_file is set but client_auth_type asks for no client certificate")
    if ca is None and auth in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert"):
        raise WebConfigError(f"{where}: client_auth_type {auth} needs client_ca_file")
    if ca is None and auth == "RequireAnyClientCert":  # Python's TLS cannot require a certificate it does not check
        raise WebConfigError(f"{where}: client_auth_type RequireAnyClientCert needs client_ca_file here (without "
                             "one, clients that send no certificate would be accepted)")
    versions = []
    for name, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        value = str(data.get(name) or default)
        if value not in VERSIONS:
            raise WebConfigError(f"{where}.{name}: {value!r} is not one of {', '.join(VERSIONS)}")
        versions.append(value)
    if VERSIONS[versions[0]] > VERSIONS[versions[1]]:
        raise WebConfigError(f"{where}: min_version {versions[0]} is above max_version {versions[1]}: "
                             "no connection could be made")
    suites = _names(data, "cipher_suites", CIPHER_SUITES, where)
    if suites and not any(CIPHER_SUITES[s] for s in suites) and VERSIONS[versions[0]] < ssl.TLSVersion.TLSv1_3:
        raise WebConfigError(f"{where}.cipher_suites: only TLS 1.3 suites, which are not configurable (as in Go): "
                             "name a TLS 1.2 suite or set min_version: TLS13")
    curves = _names(data, "curve_preferences", CURVES, where)
    allowed = _names(data, "client_allowed_sans", None, where)
    if allowed and auth not in VERIFYING:
        raise WebConfigError(f"{where}: client_allowed_sans needs a client_auth_type that verifies certificates "
                             f"({', '.join(VERIFYING)}): Python's ssl reads no certificate it has not verified")
    return TLSSettings(cert, key, ca, auth, versions[0], versions[1], suites, curves, allowed)


def _names(data: dict[str, Any], key: str, known: dict[str, Any] | None, where: str) -> tuple[str, ...]:
    """A list of strings; with `known`, each must be one of its names (Go's, as the toolkit reads them)."""
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise WebConfigError(f"{where}.{key}: must be a list of names")
    for name in value:
        if known is not None and name not in known:
            raise WebConfigError(f"{where}.{key}: unknown name {name!r} (Go's names: {', '.join(known)})")
    return tuple(value)


def build_ssl_context(tls: TLSSettings) -> ssl.SSLContext:
    """A server context from the settings; an unreadable file is a WebConfigError naming it."""
    try:
        return build_tls_context(tls)
    except TLSConfigError as err:
        raise WebConfigError(str(err)) from err


class ReloadingContext(ssl.SSLContext):
    """What the listening socket holds: each new connection is wrapped by the newest real context.

    asyncio wraps every accepted connection with `context.wrap_bio(...)`; delegating that call is
    how a rotated certificate, CA or client-auth policy reaches the next handshake without
    reopening the port.
    """

    current: ssl.SSLContext
    before_handshake: Callable[[], None]

    def wrap_bio(self, incoming: Any, outgoing: Any, server_side: bool = False,
                 server_hostname: Any = None, session: Any = None) -> ssl.SSLObject:
        self.before_handshake()
        return self.current.wrap_bio(incoming, outgoing, server_side, server_hostname, session)


class LiveWebConfig:
    """The web config in force, re-read when the file or a certificate it names changes."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.monotonic, every: float = 1.0) -> None:
        self.path = Path(path)
        self.clock = clock
        self.every = every
        self._checked = clock()
        self.config = self._read()
        self._stamp = self._stat()
        self.context: ReloadingContext | None = None
        if self.config.tls is not None:
            self.context = ReloadingContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.current = build_ssl_context(self.config.tls)
            self.context.before_handshake = self.maybe_reload
        # the main listener and scrape_listen check on two loops of two threads: the cache is shared
        # under a lock, and each loop has its own semaphore (an asyncio one belongs to a single loop)
        self._cache: OrderedDict[bytes, bool] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._bcrypt: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}

    def _read(self) -> WebConfig:
        try:
            text = self.path.read_text()
        except OSError as err:
            raise WebConfigError(f"{self.path}: cannot read the web config file: {err.strerror}") from err
        except UnicodeDecodeError as err:  # a reload must keep the old config, not raise on every request
            raise WebConfigError(f"{self.path}: cannot read the web config file: not UTF-8 text "
                                 f"(byte {err.start})") from err
        return parse_web_config(text, self.path)

    def _stat(self) -> tuple[Any, ...]:
        """What tells a change: size, mtime and inode of the file and of every file it names."""
        paths = [self.path, *(self.config.tls.files() if self.config.tls else ())]
        out: list[tuple[Any, ...]] = []
        for p in paths:
            try:
                st = os.stat(p)
                out.append((str(p), st.st_size, st.st_mtime_ns, st.st_ino))
            except OSError:
                out.append((str(p), None))
        return tuple(out)

    def maybe_reload(self) -> None:
        """Re-read if something changed; at most once every `every` seconds."""
        now = self.clock()
        if now - self._checked < self.every:
            return
        self._checked = now
        stamp = self._stat()
        if stamp != self._stamp:
            self._stamp = stamp
            error = self.reload()
            if error:
                log.error("web config not reloaded; the previous one stays in force", extra={"error": error})

    def reload(self) -> str | None:
        """Read the file and its certificates again; on any problem keep the old ones and say why."""
        try:
            config = self._read()
            if (config.tls is None) != (self.context is None):
                raise WebConfigError(f"{self.path}: turning TLS on or off needs a restart")
            context = build_ssl_context(config.tls) if config.tls is not None else None
        except WebConfigError as err:
            return str(err)
        self.config = config
        if self.context is not None and context is not None:
            self.context.current = context
        self._cache.clear()
        self._stamp = self._stat()
        log.info("web config loaded", extra={"file": str(self.path), "tls": config.tls is not None,
                                             "users": len(config.users)})
        return None

    async def allowed(self, header: str | None) -> bool:
        """Whether an `Authorization: Basic` header names a user with the right password."""
        users = self.config.users
        user, password = _basic(header)
        if user is None or password is None:
            return False
        hashed = users.get(user)
        key = hashlib.sha256(b"\0".join((user.encode(), hashed or b"", password.encode()))).digest()
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        # bcrypt costs tens of milliseconds on purpose: off the event loop, one at a time (as the
        # toolkit does, so a flood of bad passwords takes one core at most), cached per credential
        import bcrypt  # here: only a daemon with basic_auth_users pays for it (0.4 MB)

        async with self._bcrypt.setdefault(asyncio.get_running_loop(), asyncio.Semaphore(1)):
            ok = await asyncio.to_thread(bcrypt.checkpw, password.encode(), hashed or _DUMMY_HASH)
        ok = ok and hashed is not None
        with self._cache_lock:
            self._cache[key] = ok
            if len(self._cache) > 256:
                self._cache.popitem(last=False)
        return ok


def _basic(header: str | None) -> tuple[str | None, str | None]:
    if not header:
        return None, None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        user, sep, password = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    return (user, password) if sep else (None, None)


WEB_CONFIG = web.AppKey("web_config", LiveWebConfig)


def protected(path: str) -> bool:
    """Everything needs the web auth (unknown paths too) but the probes and the health APIs, which
    keep the authentication their documents define. `path` is the route's pattern when one matched."""
    return path not in OPEN_PATHS and path not in SHIM_PATHS


SHIM_PATHS = frozenset(path for shim in SHIMS for path in shim.paths)


@web.middleware
async def web_auth(request: web.Request, handler: Any) -> web.StreamResponse:
    """Basic auth on the protected paths and the configured headers on every answer."""
    live = request.app.get(WEB_CONFIG)
    if live is None:
        response: web.StreamResponse = await handler(request)
        return response
    live.maybe_reload()
    headers = live.config.headers
    route = request.match_info.route.resource
    path = route.canonical if route is not None else request.path
    if live.config.users and protected(path) and not await live.allowed(
            request.headers.get("Authorization")):
        return web.Response(status=401, text="Unauthorized\n",
                            headers={**headers, "WWW-Authenticate": 'Basic realm="jobqueue-exporter"'})
    try:
        response = await handler(request)
    except web.HTTPException as err:
        err.headers.update(headers)
        raise
    response.headers.update(headers)
    return response
