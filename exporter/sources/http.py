"""HTTP source (aiohttp): probe one URL for status code, latency and, optionally, a JSON field.

The probe is a GET (or HEAD) and nothing else. A connection that cannot be made (refused, DNS,
TLS verification, reset) is a failed collection (`up 0`); an answer that is not the expected one
(wrong status, wrong JSON field) is a successful collection of an unhealthy service
(`jobqueue_http_probe_success 0`), as blackbox_exporter separates `up` from `probe_success`.
TLS certificates are verified unless `tls_verify: false`; `ca_file` adds a private CA.

`Reading.details` keys (the media-service seed's `services.<name>` entry and more):
  status       "ok" | "error"   ok when the status code and the JSON expectation both match
  latency_ms   round trip to the full response, whole milliseconds
  status_code  the HTTP status
  reason       why the probe failed ("status 503", "json field status is 'down'"); absent when ok
  json_value   the value found at `expect_json.field` (absent without an expectation)
"""

from __future__ import annotations

import ssl
import time
from typing import Any, Literal

import aiohttp
from pydantic import Field, SecretStr, model_validator

from exporter import untrusted
from exporter.facts import ProbeResult
from exporter.model import Reading, Sample
from exporter.sources.base import (
    MetricDef,
    Model,
    Source,
    SourceConfig,
    SourceContext,
    SourceTLSFailed,
    SourceUnreachable,
    check_one_secret,
    read_secret,
    redact_url,
    split_userinfo,
)
from exporter.values import dig


class JsonExpectation(Model):
    """A field of the JSON body (dotted path) that must equal one of `values`."""

    field: str
    values: list[bool | int | float | str | None] = Field(min_length=1)


class HttpConfig(SourceConfig):
    """One URL to probe."""

    type: Literal["http"]
    url: str = Field(pattern=r"^https?://")
    method: Literal["GET", "HEAD"] = "GET"
    headers: dict[str, str] = {}
    bearer_token: SecretStr | None = None
    bearer_token_file: str | None = None
    expect_status: list[int] = Field(default_factory=lambda: list(range(200, 300)))
    expect_json: JsonExpectation | None = None
    tls_verify: bool = True
    ca_file: str | None = None
    max_body_bytes: int = Field(1 << 20, ge=1)

    @model_validator(mode="after")
    def _valid(self) -> HttpConfig:
        check_one_secret(self, "bearer_token")
        bearer = self.bearer_token is not None or self.bearer_token_file is not None
        if split_userinfo(self.url)[1] is not None and (bearer or "authorization" in map(str.lower, self.headers)):
            # aiohttp refuses the request (ValueError) on every collection, and doctor crashed on it
            raise ValueError("the url carries credentials (user@ or user:password@) and an Authorization is "
                             "also given (bearer_token or headers): keep one")
        if self.expect_json is not None and self.method == "HEAD":
            raise ValueError("expect_json needs a body: use method GET")
        if self.ca_file is not None and not self.tls_verify:
            raise ValueError("ca_file is only used with tls_verify: true")
        return self


def judge(status: int, body: bytes | None, config: HttpConfig) -> tuple[bool, str | None, Any]:
    """(probe ok, reason when not, JSON value found) for one answer."""
    if status not in config.expect_status:
        return False, f"status {status}", None
    spec = config.expect_json
    if spec is None:
        return True, None, None
    try:
        doc = untrusted.loads(body or b"", max_bytes=config.max_body_bytes)
    except ValueError:
        return False, "body is not JSON", None
    value = dig(doc, spec.field)
    if not any(_same(expected, value) for expected in spec.values):
        return False, f"json field {spec.field} is {value!r}", value
    return True, None, value


def _same(expected: Any, found: Any) -> bool:
    """JSON equality where true is not 1 and "1" is not 1, but 1 is 1.0."""
    if isinstance(expected, bool) or isinstance(found, bool):
        return type(expected) is type(found) and expected == found
    return bool(expected == found) and isinstance(expected, str) == isinstance(found, str)


class HttpSource(Source):
    """Probes one HTTP(S) endpoint."""

    backend = "http"
    config_model = HttpConfig
    metrics = (
        MetricDef("jobqueue_http_probe_success", "1 if the answer had an expected status (and JSON field)."),
        MetricDef("jobqueue_http_status_code", "HTTP status code of the last answer."),
    )

    def __init__(self, config: HttpConfig, context: SourceContext) -> None:
        super().__init__(config, context)
        self.config: HttpConfig = config
        self.session: aiohttp.ClientSession | None = None

    def _ssl(self) -> ssl.SSLContext | bool:
        if not self.config.tls_verify:
            return False
        context = ssl.create_default_context()
        if self.config.ca_file:
            context.load_verify_locations(self.config.ca_file)
        return context

    def _session(self) -> aiohttp.ClientSession:
        if self.session is None or self.session.closed:
            headers = {"User-Agent": "jobqueue-exporter", **self.config.headers}
            token = read_secret(self.config.bearer_token, self.config.bearer_token_file)
            if token:
                headers["Authorization"] = f"Bearer {token}"
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl(), limit=2), headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.config.timeout), auto_decompress=True,
            )
        return self.session

    async def collect(self) -> Reading:
        cfg = self.config
        started = time.perf_counter()
        try:
            async with self._session().request(cfg.method, cfg.url, allow_redirects=False) as resp:
                body = await resp.content.read(cfg.max_body_bytes) if cfg.method == "GET" else None
                status = resp.status
        except aiohttp.ClientConnectorCertificateError as err:
            where = redact_url(cfg.url)
            raise SourceTLSFailed(f"TLS verification failed for {where}: {err.certificate_error}") from err
        except (aiohttp.ClientError, OSError) as err:
            raise SourceUnreachable(f"{redact_url(cfg.url)}: {type(err).__name__}") from err
        latency = time.perf_counter() - started
        ok, reason, value = judge(status, body, cfg)
        details: dict[str, Any] = {"status": "ok" if ok else "error", "latency_ms": round(latency * 1000),
                                   "status_code": status}
        if reason is not None:
            details["reason"] = reason
        if cfg.expect_json is not None:
            details["json_value"] = value
        samples = (Sample("jobqueue_http_probe_success", (), ok), Sample("jobqueue_http_status_code", (), status))
        probe = ProbeResult(ok, status, round(latency * 1000), reason)
        return Reading(samples=samples, latency=latency, details=details, facts=(probe,))

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
