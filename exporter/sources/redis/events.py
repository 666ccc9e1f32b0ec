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


@dataclass(frozen=True)
class Heard:
    """A frozen copy of the listener's state, what one collection reads."""

    workers: tuple[tuple[str, float, int], ...]  # (hostname, expires at, active tasks)
    tasks: tuple[tuple[str, int, int, float], ...]  # (name, succeeded, failed, runtime seconds summed)
    succeeded: int
    failed: int
    runtime: float | None  # mean runtime of the tasks that succeeded since the previous collection
    malformed: int


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

    @property
    def channels(self) -> list[str]:
        return [self.prefix + key for key in ROUTING_KEYS]

    def handle(self, data: str | bytes, received: float) -> None:
        """One PUBLISHed kombu message: a JSON envelope whose `body` is the event (or a list of events),
        base64-encoded when `properties.body_encoding` says so (kombu's Redis channel default)."""
        try:
            envelope = untrusted.loads(data, finite=False)  # a PUBLISH anyone may send: bounded
            body = envelope["body"]
            if (envelope.get("properties") or {}).get("body_encoding") == "base64":
                body = base64.b64decode(body)
            events = untrusted.loads(body, finite=False)
        except (ValueError, TypeError, KeyError, AttributeError):
            self.malformed += 1
            return
        for event in events if isinstance(events, list) else [events]:
            if not (isinstance(event, dict) and isinstance(event.get("type"), str)):
                self.malformed += 1
                continue
            try:
                self.event(event, received)
            except (ValueError, TypeError, OverflowError):  # one bad event, never the end of the listener
                self.malformed += 1

    def event(self, e: dict[str, Any], received: float) -> None:
        kind, host = e["type"], str(e.get("hostname", ""))
        if kind in ("worker-heartbeat", "worker-online"):
            freq = _number(e.get("freq"), 2.0)  # celery/worker/heartbeat.py: interval or 2.0
            self.workers[host] = (received + freq * EXPIRE_WINDOW, int(_number(e.get("active"), 0)))
        elif kind == "worker-offline":
            self.workers.pop(host, None)
        elif kind == "task-received":
            self.names[str(e.get("uuid"))] = str(e.get("name") or UNKNOWN)
            if len(self.names) > NAMES_KEPT:
                self.names.popitem(last=False)
        elif kind in ("task-succeeded", "task-failed"):
            name = self.names.pop(str(e.get("uuid")), UNKNOWN)
            if name not in self.tasks and len(self.tasks) >= self.task_cap:
                name = OTHER
            row = self.tasks.setdefault(name, [0, 0, 0.0])
            if kind == "task-succeeded":
                runtime = _number(e.get("runtime"), 0.0)  # seconds (celery/app/trace.py `on_success`)
                self.succeeded += 1
                row[0] += 1
                row[2] += runtime
                self.window[0] += runtime
                self.window[1] += 1
            else:
                self.failed += 1
                row[1] += 1

    def freeze(self, now: float) -> Heard:
        """What a collection reads; runs on the event loop, so the listener never changes it meanwhile.
        Workers past their expiry are forgotten here."""
        for host in [h for h, (expires, _) in self.workers.items() if expires < now]:
            del self.workers[host]
        runtime = self.window[0] / self.window[1] if self.window[1] else None
        self.window = [0.0, 0.0]
        malformed, self.malformed = self.malformed, 0
        return Heard(
            tuple((h, exp, active) for h, (exp, active) in sorted(self.workers.items())),
            tuple((n, int(r[0]), int(r[1]), r[2]) for n, r in sorted(self.tasks.items())),
            self.succeeded, self.failed, runtime, malformed,
        )


def _number(value: Any, default: float) -> float:
    """A count, interval or runtime of an event: anyone may PUBLISH one, and NaN, infinities and
    negatives would end the listener (`int(nan)`), keep a worker live forever or poison a summed
    counter; they read as the default, as an absent field does."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
        return float(value)
    return default
