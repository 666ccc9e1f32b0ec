"""Config of the NATS source: connection, name filters, dead letters and the registries' KV layouts."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from exporter.sources.base import Duration, Model, SourceConfig, check_one_secret, redact_url
from exporter.sources.nats.parse import JOB_STATES, matches
from exporter.sources.tls import TlsConfig

DEFAULT_JOB_STATUSES: dict[str, list[str]] = {
    "unprocessed": ["unprocessed", "pending", "queued", "new"],
    "processing": ["processing", "running", "active", "in_progress"],
    "completed": ["completed", "done", "succeeded", "success"],
    "failed": ["failed", "error"],
    "dlq": ["dlq", "dead", "dead_letter"],
}


class Patterns(Model):
    """Glob include/exclude lists on names (`*`, `?`, `[..]`); exclude wins."""

    include: list[str] = ["*"]
    exclude: list[str] = []

    def keep(self, name: str) -> bool:
        return matches(name, self.include, self.exclude)


class JobsRegistry(Model):
    """Where the job registry lives and how to read a job's status from its KV entry."""

    bucket: str
    keys: str = ">"
    queue: str | None = None
    status_field: str | None = "status"
    status_token: int | None = None
    statuses: dict[str, list[str]] = {}
    created_field: str | None = None

    @model_validator(mode="after")
    def _valid(self) -> JobsRegistry:
        unknown = set(self.statuses) - set(JOB_STATES)
        if unknown:
            raise ValueError(f"statuses: unknown states {sorted(unknown)}; use {list(JOB_STATES)}")
        if (self.status_field is None) == (self.status_token is None):
            raise ValueError("give exactly one of status_field and status_token (set the other to null)")
        return self

    def state_of(self) -> dict[str, str]:
        """Raw status (lower-cased) -> canonical state."""
        merged = {**DEFAULT_JOB_STATUSES, **self.statuses}
        return {raw.lower(): state for state, raws in merged.items() for raw in raws}


class AgentRegistry(Model):
    """Where the agent registry lives and which JSON fields hold hostname, labels, status, heartbeat."""

    bucket: str
    keys: str = ">"
    hostname_field: str | None = "hostname"
    labels_field: str | None = "labels"
    status_field: str | None = "status"
    ready_values: list[str] = Field(default_factory=lambda: ["Ready", "ready"])
    heartbeat_field: str | None = None
    stale_after: Duration | None = None


class StreamPatterns(Patterns):
    """Streams to export; KV and object-store streams are reported as buckets instead."""

    exclude: list[str] = ["KV_*", "OBJ_*"]


class ConsumerPatterns(Patterns):
    """Consumers to export, by consumer name; ephemeral ones churn series, so they are off by default."""

    ephemeral: bool = False


class KvPatterns(Patterns):
    """KV buckets to export, by bucket name; counting live keys costs one read per key."""

    count_keys: bool = True
    max_keys: int = Field(10000, ge=1)


class DeadLetters(Model):
    """Max-deliveries advisories: counted by a live subscription, or read from a capturing stream."""

    mode: Literal["subscribe", "stream", "off"] = "subscribe"
    stream: str | None = None

    @model_validator(mode="after")
    def _stream_given(self) -> DeadLetters:
        if (self.mode == "stream") != (self.stream is not None):
            raise ValueError("`stream` is required with mode: stream, and only then")
        return self


class NatsConfig(SourceConfig):
    """One NATS server (or cluster URL list) with JetStream enabled."""

    type: Literal["nats"]
    url: str = "nats://127.0.0.1:4222"
    user: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    token: SecretStr | None = None
    token_file: Path | None = None
    creds_file: Path | None = None  # a .creds file (user JWT + nkey seed), as `nsc` writes it
    nkeys_seed_file: Path | None = None  # a user nkey seed (SU...), for servers that list `nkey` users
    tls: TlsConfig | None = None  # CA, client certificate, insecure (tls:// urls use the system CAs without it)
    api_prefix: str = "$JS.API"
    concurrency: int = Field(64, ge=1, le=1024)
    streams: StreamPatterns = StreamPatterns.model_construct()
    consumers: ConsumerPatterns = ConsumerPatterns.model_construct()
    kv: KvPatterns = KvPatterns.model_construct()
    object_stores: Patterns = Patterns.model_construct()
    dead_letters: DeadLetters = DeadLetters.model_construct()
    jobs: JobsRegistry | None = None
    agents: AgentRegistry | None = None
    connect_timeout: Duration = 2.0

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        """nats-py takes a comma-separated server list; `http://` is the monitoring port, not a server."""
        for server in value.split(","):
            scheme = server.strip().partition("://")[0].lower() if "://" in server else ""
            if scheme not in ("", "nats", "tls", "ws", "wss"):  # nats-py reads a bare host:port as nats://
                raise ValueError(f"url must start with nats://, tls://, ws:// or wss://, got {redact_url(server)!r}")
        return value

    @model_validator(mode="after")
    def _secrets(self) -> NatsConfig:
        check_one_secret(self, "password")
        check_one_secret(self, "token")
        for key in ("creds_file", "nkeys_seed_file"):
            path = getattr(self, key)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{key} {str(path)!r} is not a readable file")
        ways = [k for k in ("user", "token", "creds_file", "nkeys_seed_file") if getattr(self, k) is not None
                or (k == "token" and self.token_file is not None)]
        if len(ways) > 1:
            raise ValueError(f"give one way to log in, not {' and '.join(ways)}")
        return self


