"""Pure parsing for the NATS source: JetStream API JSON in, plain records out.

Kept apart from `nats.py` so every rule (time stamps, KV delete markers, job states, agent
readiness, label formatting, name filters) is unit-tested on literal inputs without a server.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from exporter import untrusted
from exporter.values import as_time, dig, iso_time

JOB_STATES = ("unprocessed", "processing", "completed", "failed", "dlq")
KV_DELETE_OPS = frozenset({"DEL", "PURGE"})
ADVISORY_MAX_DELIVERIES = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"


def parse_ts(value: Any) -> float | None:
    """A JetStream API time (RFC 3339 with nanoseconds, Go's format) -> Unix seconds; None when absent."""
    return iso_time(value) if isinstance(value, str) else None


def matches(name: str, include: Iterable[str], exclude: Iterable[str]) -> bool:
    """Glob filter: kept when some include pattern matches and no exclude pattern does."""
    return any(fnmatchcase(name, p) for p in include) and not any(fnmatchcase(name, p) for p in exclude)


def subject_matches(subject: str, pattern: str) -> bool:
    """NATS subject wildcard match: `*` is one token, `>` the rest (one or more tokens)."""
    tokens, pats = subject.split("."), pattern.split(".")
    for i, pat in enumerate(pats):
        if pat == ">":
            return len(tokens) > i
        if i >= len(tokens) or (pat != "*" and pat != tokens[i]):
            return False
    return len(tokens) == len(pats)


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """One stream from `$JS.API.STREAM.LIST` or `STREAM.INFO`."""

    name: str
    messages: int
    bytes: int
    consumers: int
    first_ts: float | None
    last_ts: float | None
    subjects: int | None


def parse_stream(info: Mapping[str, Any]) -> StreamRecord:
    """A stream info object -> record; first_ts is dropped for an empty stream."""
    state = info.get("state") or {}
    messages = int(state.get("messages", 0))
    return StreamRecord(
        name=info["config"]["name"],
        messages=messages,
        bytes=int(state.get("bytes", 0)),
        consumers=int(state.get("consumer_count", 0)),
        first_ts=parse_ts(state.get("first_ts")) if messages else None,
        last_ts=parse_ts(state.get("last_ts")),
        subjects=state.get("num_subjects"),
    )


@dataclass(frozen=True, slots=True)
class ConsumerRecord:
    """One consumer from `$JS.API.CONSUMER.LIST.<stream>`."""

    stream: str
    name: str
    durable: bool
    pending: int
    ack_pending: int
    redelivered: int
    waiting: int
    last_active: float | None
    delivered: int = 0  # delivered.consumer_seq: deliveries so far, redeliveries included
    acked: int = 0  # ack_floor.consumer_seq: deliveries up to which every one is acknowledged


def parse_consumer(info: Mapping[str, Any]) -> ConsumerRecord:
    """A consumer info object -> record."""
    config = info.get("config") or {}
    delivered = info.get("delivered") or {}
    return ConsumerRecord(
        stream=info["stream_name"],
        name=info["name"],
        durable=bool(config.get("durable_name")),
        pending=int(info.get("num_pending", 0)),
        ack_pending=int(info.get("num_ack_pending", 0)),
        redelivered=int(info.get("num_redelivered", 0)),
        waiting=int(info.get("num_waiting", 0)),
        last_active=parse_ts(delivered.get("last_active")),
        delivered=int(delivered.get("consumer_seq", 0)),
        acked=int((info.get("ack_floor") or {}).get("consumer_seq", 0)),
    )


def parse_headers(raw: bytes) -> dict[str, str]:
    """NATS/1.0 header block -> {name: value} (last one wins; names as sent)."""
    out: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip()] = value.strip()
    return out


@dataclass(frozen=True, slots=True)
class KvEntry:
    """The latest revision of one KV key, as `STREAM.MSG.GET last_by_subj` returns it."""

    key: str
    revision: int
    time: float | None
    operation: str  # PUT, DEL or PURGE
    value: bytes

    @property
    def live(self) -> bool:
        return self.operation not in KV_DELETE_OPS


def parse_kv_message(bucket: str, message: Mapping[str, Any]) -> KvEntry:
    """A `stream_msg_get_response.message` of stream KV_<bucket> -> the key's latest entry."""
    prefix = f"$KV.{bucket}."
    subject: str = message["subject"]
    headers = parse_headers(base64.b64decode(message["hdrs"])) if message.get("hdrs") else {}
    op = headers.get("KV-Operation", "PUT").upper()
    data = base64.b64decode(message["data"]) if message.get("data") else b""
    return KvEntry(subject.removeprefix(prefix), int(message.get("seq", 0)), parse_ts(message.get("time")), op, data)


def decode_json(value: bytes) -> Mapping[str, Any] | None:
    """A KV value as a JSON object, or None when it is not one."""
    try:
        doc = untrusted.loads(value)
    except ValueError:  # includes too large, too deep, not UTF-8: one malformed entry, not a failed source
        return None
    return doc if isinstance(doc, Mapping) else None


@dataclass
class JobCounts:
    """Jobs of the registry by canonical state; unmapped statuses count as `other`."""

    states: dict[str, int] = field(default_factory=lambda: dict.fromkeys(JOB_STATES, 0))
    other: int = 0
    malformed: int = 0
    oldest_unprocessed: float | None = None

    @property
    def total(self) -> int:
        return sum(self.states.values()) + self.other

    def as_details(self) -> dict[str, int]:
        return {"total": self.total, **self.states, "other": self.other}


def job_status(entry: KvEntry, status_field: str | None, status_token: int | None) -> str | None:
    """The raw status of a job: a token of its key, or a (dotted) field of its JSON value."""
    if status_token is not None:
        tokens = entry.key.split(".")
        return tokens[status_token] if -len(tokens) <= status_token < len(tokens) else None
    doc = decode_json(entry.value)
    if doc is None:
        return None
    value = dig(doc, status_field)
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None


def count_jobs(entries: Iterable[KvEntry], status_field: str | None, status_token: int | None,
               state_of: Mapping[str, str], created_field: str | None = None) -> JobCounts:
    """Count live job entries per canonical state; `state_of` maps raw status (lower-cased) -> state."""
    counts = JobCounts()
    for entry in entries:
        if not entry.live:
            continue
        raw = job_status(entry, status_field, status_token)
        if raw is None:
            counts.malformed += 1
            continue
        state = state_of.get(raw.lower())
        if state is None:
            counts.other += 1
            continue
        counts.states[state] += 1
        if state == "unprocessed":
            created = entry.time
            if created_field is not None:
                doc = decode_json(entry.value)
                created = as_time(dig(doc, created_field)) if doc is not None else None
            if created is not None and (counts.oldest_unprocessed is None or created < counts.oldest_unprocessed):
                counts.oldest_unprocessed = created
    return counts


def format_labels(labels: Any) -> str:
    """The seed's "formatted label string": a mapping as sorted `k=v` joined by commas, a list joined."""
    if isinstance(labels, Mapping):
        return ",".join(f"{k}={labels[k]}" for k in sorted(labels))
    if isinstance(labels, list | tuple):
        return ",".join(str(x) for x in labels)
    return "" if labels is None else str(labels)


@dataclass(frozen=True, slots=True)
class Agent:
    """One registered agent as the shims show it."""

    key: str
    hostname: str
    labels: str
    status: str
    last_heartbeat: float | None
    ready: bool
    stale: bool = False


def parse_agent(entry: KvEntry, hostname_field: str | None, labels_field: str | None,
                heartbeat_field: str | None, status_field: str | None, ready_values: Iterable[str],
                stale_after: float | None, now: float) -> Agent | None:
    """A live agent registration -> Agent; None when its value is not a JSON object."""
    doc = decode_json(entry.value)
    if doc is None:
        return None
    host = dig(doc, hostname_field)
    heartbeat = as_time(dig(doc, heartbeat_field)) if heartbeat_field else entry.time
    raw_status = dig(doc, status_field) if status_field else None
    if isinstance(raw_status, bool):
        ready = raw_status
        status = "Ready" if raw_status else "NotReady"
    else:
        status = "" if raw_status is None else str(raw_status)
        ready = status_field is None or status in set(ready_values)
    stale = stale_after is not None and (heartbeat is None or now - heartbeat > stale_after)
    if stale:  # silent past stale_after: whatever it last wrote, it is not Ready now
        ready, status = False, "NotReady"
    return Agent(entry.key, str(host) if host is not None else entry.key,
                 format_labels(dig(doc, labels_field)), status, heartbeat, ready, stale)


def advisory_target(subject: str) -> tuple[str, str] | None:
    """`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.<consumer>` -> (stream, consumer)."""
    prefix = ADVISORY_MAX_DELIVERIES + "."
    if not subject.startswith(prefix):
        return None
    rest = subject[len(prefix):].split(".")
    return (rest[0], rest[1]) if len(rest) == 2 and all(rest) else None


def plain_url(scheme: str, host: str | None, port: int | None) -> str:
    """The connected server's URL without user info (credentials never reach details or labels)."""
    return f"{scheme}://{host}:{port}" if port else f"{scheme}://{host}"
