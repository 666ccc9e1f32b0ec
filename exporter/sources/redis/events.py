"""Celery's worker and task events, heard with SUBSCRIBE only, for the Celery layout (opt-in).

Celery keeps no counts in Redis: a worker *announces* what it does as events (`celery -E` or
`worker_send_task_events`), published by kombu's Redis transport with PUBLISH on the fanout topic
`<global_keyprefix>/<db>.celeryev/<routing key>` (kombu/transport/redis.py `_get_publish_topic`,
`keyprefix_fanout = '/{db}.'`, and PUBLISH among `PREFIXED_SIMPLE_COMMANDS`). The routing key is the
event type with `-` replaced by `.` (celery/events/dispatcher.py `publish`); a worker with an event
loop buffers task events and flushes them as one list under `task.multi` (`flush`).

The listener is a background task of the Redis source (one SUBSCRIBE connection, nothing else); a
collection reads a frozen copy of what it heard. What it heard before the exporter started is lost:
the counters start at 0 with the exporter, which Prometheus reads as a counter reset.
"""

from __future__ import annotations

import base64
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from exporter import untrusted

# The events the listener needs; worker-online/offline make a worker live or gone at once.
ROUTING_KEYS = ("worker.heartbeat", "worker.online", "worker.offline", "task.received", "task.succeeded",
                "task.failed", "task.multi")
# celery/events/state.py HEARTBEAT_EXPIRE_WINDOW = 200: a worker is alive until its last heartbeat
# (the local receive time) + freq x 200 %, `heartbeat_expires`.
EXPIRE_WINDOW = 2.0
# task-succeeded / task-failed carry the uuid, not the name: names come from task-received.
NAMES_KEPT = 10000
OTHER = "other"  # tasks beyond the cardinality cap
UNKNOWN = "unknown"  # tasks received before the exporter listened
# What one message may make the listener keep. A message is read whole by redis-py (at most the
# server's pubsub output buffer hard limit, 32 MiB by default: Redis drops a subscriber past it);
# past MAX_BYTES it is skipped before it is decoded. A kept string is bounded by its UTF-8 length in
# bytes (a bound in characters let 1,024 emoji take 4 KiB), and at most WORKERS_KEPT workers,
# NAMES_KEPT uuids with their names and task_cap names are kept: with MAX_FREQ, whatever is
# published, measured with tracemalloc (every table full, every string at its bound with one emoji in
# it, the worst case: Python then keeps each of its characters in 4 bytes), the state and the frozen
# copy hold at most 48 MiB with task_cap 100 and 70 MiB with task_cap 10,000, its largest (14 and
# 22 MiB all ASCII); tests/unit/sources/redis/test_flow.py measures the latter.
MAX_BYTES = untrusted.MAX_BYTES
# A uuid is 36 characters (kombu `uuid()`: str(uuid4())); `apply_async(task_id=...)` takes any string,
# so room for a prefixed one.
MAX_UUID = 128
MAX_HOSTNAME = 512  # `name@host` (celery/utils/nodenames.py): a host name is at most 255 bytes
MAX_NAME = 512  # a task name is a dotted Python path (`module.function`)
WORKERS_KEPT = 10000
MAX_FREQ = 3600.0  # seconds: a heartbeat `freq` over an hour reads as an hour (a worker never live forever)
# seconds: a task runtime over a year reads as absent (0), as a NaN does: two of 1e308 summed to
# infinity and froze the task's runtime counter for good
MAX_RUNTIME = 365 * 86400.0


@dataclass(frozen=True)
class Heard:
    """A frozen copy of the listener's state, what one collection reads."""

    workers: tuple[tuple[str, float, int], ...]  # (hostname, expires at, active tasks)
    tasks: tuple[tuple[str, int, int, float], ...]  # (name, succeeded, failed, runtime seconds summed)
    succeeded: int
    failed: int
    runtime: float | None  # mean runtime of the tasks that succeeded since the previous collection
    malformed: int  # messages and events skipped since the previous collection
    why: str = ""  # the first one's reason


@dataclass
class CeleryEvents:
    """The state built from Celery events on one topic prefix."""

    prefix: str  # `<global_keyprefix>/<db>.<exchange>/`
    task_cap: int = 100
    workers: dict[str, tuple[float, int]] = field(default_factory=dict)
    names: OrderedDict[str, str] = field(default_factory=OrderedDict)
    tasks: dict[str, list[float]] = field(default_factory=dict)
    succeeded: int = 0
    failed: int = 0
    window: list[float] = field(default_factory=lambda: [0.0, 0.0])
    malformed: int = 0
    why: str = ""  # why the first message skipped since the last collection was (a fixed phrase, no content)

    @property
    def channels(self) -> list[str]:
        return [self.prefix + key for key in ROUTING_KEYS]

    def handle(self, data: bytes | str, received: float) -> None:
        """One PUBLISHed kombu message: a JSON envelope whose `body` is the event (or a list of events),
        base64-encoded when `properties.body_encoding` says so (kombu's Redis channel default).

        Anyone who may PUBLISH on the topic may send anything: what is not that is counted (the
        source's `jobqueue_malformed_items`) and skipped here, never raised, so one message never ends
        the listener."""
        events = _unwrap(data)
        if isinstance(events, str):
            self._skip(events)
            return
        for event in events:
            why = _invalid(event)
            if why:
                self._skip(why)
                continue
            try:
                why = self.event(event, received)
            except (ValueError, TypeError, OverflowError):  # one bad event, never the end of the listener
                why = "an event field of the wrong type"
            if why:
                self._skip(why)

    def _skip(self, why: str) -> None:
        self.malformed += 1
        self.why = self.why or why

    def event(self, e: dict[str, Any], received: float) -> str:
        """Apply one checked event (`_invalid` passed it); the reason it was skipped, or ""."""
        kind, host = e["type"], str(e.get("hostname"))  # a str in a worker event (`_invalid`)
        if kind in ("worker-heartbeat", "worker-online"):
            if host not in self.workers and len(self.workers) >= WORKERS_KEPT:
                return f"over {WORKERS_KEPT} live workers"
            freq = min(_number(e.get("freq"), 2.0), MAX_FREQ)  # celery/worker/heartbeat.py: interval or 2.0
            self.workers[host] = (received + freq * EXPIRE_WINDOW, int(_number(e.get("active"), 0)))
        elif kind == "worker-offline":
            self.workers.pop(host, None)
        elif kind == "task-received":
            self.names[e["uuid"]] = e.get("name") or UNKNOWN
            if len(self.names) > NAMES_KEPT:
                self.names.popitem(last=False)
        elif kind in ("task-succeeded", "task-failed"):
            name = self.names.pop(e["uuid"], UNKNOWN)
            if name not in self.tasks and len(self.tasks) >= self.task_cap:
                name = OTHER
            row = self.tasks.setdefault(name, [0, 0, 0.0])
            if kind == "task-succeeded":
                runtime = _number(e.get("runtime"), 0.0)  # seconds (celery/app/trace.py `on_success`)
                if runtime > MAX_RUNTIME:
                    runtime = 0.0
                self.succeeded += 1
                row[0] += 1
                row[2] += runtime
                self.window[0] += runtime
                self.window[1] += 1
            else:
                self.failed += 1
                row[1] += 1
        return ""

    def freeze(self, now: float) -> Heard:
        """What a collection reads; runs on the event loop, so the listener never changes it meanwhile.
        Workers past their expiry are forgotten here."""
        for host in [h for h, (expires, _) in self.workers.items() if expires < now]:
            del self.workers[host]
        runtime = self.window[0] / self.window[1] if self.window[1] else None
        self.window = [0.0, 0.0]
        malformed, self.malformed = self.malformed, 0
        why, self.why = self.why, ""
        return Heard(
            tuple((h, exp, active) for h, (exp, active) in sorted(self.workers.items())),
            tuple((n, int(r[0]), int(r[1]), r[2]) for n, r in sorted(self.tasks.items())),
            self.succeeded, self.failed, runtime, malformed, why,
        )


def _number(value: Any, default: float) -> float:
    """A count, interval or runtime of an event: anyone may PUBLISH one, and NaN, infinities and
    negatives would end the listener (`int(nan)`), keep a worker live forever or poison a summed
    counter; they read as the default, as an absent field does."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
        return float(value)
    return default


def _unwrap(data: bytes | str) -> list[Any] | str:
    """The events of one message, or why it has none (a fixed phrase: the payload may hold task
    arguments, which are never logged)."""
    if len(data) > MAX_BYTES:
        return "over 1 MiB"
    if isinstance(data, bytes):
        try:
            data = data.decode()  # kombu writes UTF-8 JSON; json's own guess would take UTF-16 too
        except UnicodeDecodeError:
            return "not UTF-8"
    try:
        envelope = untrusted.loads(data, finite=False)  # a PUBLISH anyone may send: bounded
    except ValueError:
        return "not JSON"
    properties = (envelope.get("properties") or {}) if isinstance(envelope, dict) else None
    if not (isinstance(properties, dict) and isinstance(envelope.get("body"), str)):
        return "not a kombu message (a JSON object with a string body)"
    body: str | bytes = envelope["body"]
    if properties.get("body_encoding") == "base64":
        try:
            body = base64.b64decode(body)
        except ValueError:  # binascii.Error, or a str that is not ASCII
            return "body not base64"
    try:
        events = untrusted.loads(body, finite=False)
    except ValueError:
        return "body not JSON"
    return events if isinstance(events, list) else [events]


def _invalid(event: Any) -> str:
    """Why one event cannot be read, or "": Celery's dispatcher gives every event a `type` and a
    `hostname` (celery/events/dispatcher.py `publish`), and every task event a `uuid`; a worker event
    is read by its hostname and a task event by its uuid, so each needs that one; the strings kept are
    bounded."""
    if not isinstance(event, dict):
        return "an event that is not a JSON object"
    kind, host, uuid, name = event.get("type"), event.get("hostname"), event.get("uuid"), event.get("name")
    if not (isinstance(kind, str) and kind):
        return "an event without type"
    if kind.startswith("worker-") and not (isinstance(host, str) and host):
        return "a worker event without hostname"
    if kind.startswith("task-") and not (isinstance(uuid, str) and uuid):
        return "a task event without uuid"
    if name is not None and not isinstance(name, str):
        return "a task name that is not a string"
    if _over(host, MAX_HOSTNAME):
        return f"a hostname over {MAX_HOSTNAME} bytes"
    if _over(uuid, MAX_UUID):
        return f"a task uuid over {MAX_UUID} bytes"
    if _over(name, MAX_NAME):
        return f"a task name over {MAX_NAME} bytes"
    return ""


def _over(value: Any, limit: int) -> bool:
    """Whether a string is over `limit` bytes as UTF-8: a bound in characters let each character
    take 4 bytes. Python keeps a character in at most as many bytes as UTF-8 writes it, but keeps all
    of a string's at the width of its widest: a bound of 512 is still up to 2 KiB kept."""
    if not isinstance(value, str):
        return False
    return len(value) > limit or len(value.encode("utf-8", "surrogatepass")) > limit
