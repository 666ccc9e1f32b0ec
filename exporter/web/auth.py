"""Who is calling: tokens and API keys checked in constant time, and a per-client rate limit.

The middleware resolves the credential once per request from `Authorization: Bearer`, `X-API-Key`
or `x-ops-token`; each shim then answers 401, 403 or 404 the way its seed documents. Secrets are
kept only as SHA-256 digests and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from exporter.health.config import TokenConfig

log = logging.getLogger("jobqueue.web.auth")

API_HEADERS = ("authorization", "x-api-key")
OPS_HEADERS = ("x-ops-token",)


@dataclass(frozen=True)
class Credential:
    """What a valid token may do."""

    name: str
    roles: frozenset[str] = frozenset()
    tenants: frozenset[str] = frozenset()
    permissions: frozenset[str] = frozenset()

    def can_view(self, tenant: str) -> bool:
        """A super admin sees every tenant; a viewer the tenants it was given."""
        return "super_admin" in self.roles or (
            "viewer" in self.roles and (tenant in self.tenants or "*" in self.tenants))


@dataclass(frozen=True)
class Presented:
    """The outcome for one request: whether a secret was sent at all, and whose it is."""

    sent: bool
    credential: Credential | None


class Authenticator:
    """Every configured credential as (digest, credential); a token whose variable is unset is off."""

    def __init__(self, tokens: Iterable[TokenConfig], environ: Mapping[str, str] | None = None) -> None:
        env = dict(os.environ if environ is None else environ)
        self._entries: list[tuple[bytes, Credential]] = []
        for token in tokens:
            digest = token.digest(env)
            if digest is None:
                log.warning("token has no secret; it is off", extra={"token": token.name})
                continue
            self._entries.append((digest, Credential(token.name, frozenset(token.roles), frozenset(token.tenants),
                                                     frozenset(token.permissions))))

    def check(self, secret: str) -> Credential | None:
        """The credential of a secret; every entry is compared, so timing says nothing of which matched."""
        # aiohttp decodes header bytes with surrogateescape: encode them back the same way, never fail
        digest = hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()
        found = None
        for stored, credential in self._entries:
            if hmac.compare_digest(stored, digest) and found is None:
                found = credential
        return found

    def has_role(self, role: str) -> bool:
        """Whether any active credential has the role (the ops seed is open when none does, outside production)."""
        return any(role in c.roles for _, c in self._entries)


def secret_from(request: web.Request, headers: Iterable[str]) -> str | None:
    """The secret sent in the first of `headers` present; `Authorization` must say Bearer."""
    for name in headers:
        value = request.headers.get(name)
        if value is None:
            continue
        if name == "authorization":
            scheme, _, token = value.partition(" ")
            if scheme.lower() != "bearer":
                continue
            value = token
        value = value.strip()
        if value:
            return value
    return None


AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
_CACHE: Any = web.RequestKey("jobqueue_auth", dict) if hasattr(web, "RequestKey") else "jobqueue_auth"


def presented(request: web.Request, headers: tuple[str, ...] = API_HEADERS) -> Presented:
    """The request's credential from `headers`, resolved once per request and header set."""
    cache: dict[tuple[str, ...], Presented] | None = request.get(_CACHE)
    if cache is None:
        cache = request[_CACHE] = {}
    if headers not in cache:
        secret = secret_from(request, headers)
        credential = request.app[AUTHENTICATOR].check(secret) if secret is not None else None
        cache[headers] = Presented(secret is not None, credential)
    return cache[headers]


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve the caller once, before any shim; answers of shims are never cached by proxies."""
    presented(request, API_HEADERS)
    response = await handler(request)
    if request.path.startswith(("/api/", "/health")):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


@dataclass
class RateLimiter:
    """A token bucket per client: `requests` per `per` seconds; `allow` says whether one more fits."""

    requests: int
    per: float
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def allow(self, client: str) -> bool:
        now = self.clock()
        tokens, at = self._buckets.get(client, (float(self.requests), now))
        tokens = min(float(self.requests), tokens + (now - at) * self.requests / self.per)
        if tokens < 1.0:
            self._buckets[client] = (tokens, now)
            return False
        self._buckets[client] = (tokens - 1.0, now)
        if len(self._buckets) > 10000:  # forget the idlest clients rather than grow without bound
            for key in sorted(self._buckets, key=lambda k: self._buckets[k][1])[:5000]:
                del self._buckets[key]
        return True

    def retry_after(self, client: str) -> int:
        tokens, _ = self._buckets.get(client, (0.0, 0.0))
        return max(1, int((1.0 - tokens) * self.per / self.requests + 0.999))
