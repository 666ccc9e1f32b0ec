"""How queues lie in Redis, as ops to read and a parser of the replies: the machinery every layout
shares. Each queue library (and each generic shape) has its own module beside this one.

Every layout answers two questions per
tenant: which ops to run first to discover what exists (`discovery`), and, given their results, which
ops read the queues and how to turn the results into records (`plan`). Both name each op they read
(`reads["depth"]`, `reads[queue, "head"]`) and find its result under that name. Keys and timestamp
units follow `shared/reference/redis-queues.md`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Annotated, Any, Literal

from pydantic import Field

from exporter import untrusted
from exporter.model import Job, QueueStats, Sample
from exporter.sources.base import JOB_STATES, MAX_JOB_PAGE, Duration, Model
from exporter.sources.base import Retained as Retained  # lives in sources/base.py (NATS uses it too)
from exporter.sources.redis.events import CeleryEvents
from exporter.sources.redis.items import EPOCH_2000, WRONGTYPE, kind_of
from exporter.sources.redis.ops import AnyOp
from exporter.values import DIVISOR, Unit, as_int, as_time, stored_time

DIV = DIVISOR
Reads = dict[Hashable, AnyOp]  # ops by the name the parser reads their results under
Results = Mapping[Hashable, Any]


@dataclass
class Parsed:
    """What a plan's parser found for one tenant of one layout."""

    queues: list[QueueStats] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    malformed: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    facts: list[object] = field(default_factory=list)
    # What a layout keeps from one collection to the next (per-worker counts that must stay
    # monotonic, see Retained); owned by the source, so it lives as long as the source does.
    memory: dict[Any, Any] = field(default_factory=dict)


@dataclass
class Plan:
    """The ops of one tenant of one layout, by name, and the function that reads their results by name."""

    reads: Reads
    parse: Callable[[Results, float, Parsed], None]


def count(value: Any) -> int:
    """An integer reply, with a key of the wrong type counted as empty."""
    return 0 if value == WRONGTYPE or value is None else int(value)


def head_time(reply: Any, unit: Unit, out: Parsed, latest: float | None = None) -> float | None:
    """The timestamp of a HEAD/HEADHASH reply; unparseable values count as malformed, and so do times
    before 2000 or after `latest` (now plus the allowed skew) where the op could not skip them (ISO, a
    sorted set's first member)."""
    if reply == WRONGTYPE:
        out.malformed += 1
        return None
    raw, bad = reply
    out.malformed += int(bad)
    try:
        stamp = stored_time(raw, unit)
    except (ValueError, TypeError, OverflowError):
        out.malformed += 1
        return None
    if stamp is not None and latest is not None and not EPOCH_2000 <= stamp <= latest:
        out.malformed += 1
        return None
    return stamp


def entry_time(entry_id: Any, out: Parsed, latest: float) -> float | None:
    """The time in a stream entry id (`<ms>-<seq>`, XADD's clock), in Unix seconds; an id that is not
    a plausible time (before 2000, after `latest`: `99999999999999-0` is an explicit id, not a clock)
    counts as malformed and gives no age, like a list's or a sorted set's stamp."""
    try:
        stamp = int(str(entry_id).split("-", 1)[0]) / 1000.0
    except ValueError:
        stamp = -1.0
    if not EPOCH_2000 <= stamp <= latest:
        out.malformed += 1
        return None
    return stamp


# QueueStats' defaults after `oldest_timestamp`, for building records without its Python __new__.
AFTER_OLDEST = tuple(QueueStats._field_defaults[f] for f in QueueStats._fields[4:])
assert QueueStats._fields[:4] == ("queue", "depth", "tenant", "oldest_timestamp")


def fill_tenant(template: str, tenant: str) -> str:
    return template.replace("{tenant}", tenant)


@dataclass(frozen=True)
class JobRange:
    """Where the jobs of one state of one queue live (the job listing): a list or sorted set, its order,
    and, when items are ids, where each job is: the text `fields` of a hash `hash_prefix`..id (BullMQ,
    RQ), a field id of one hash `body_hash` (dramatiq's `.msgs`, Bee-Queue's `jobs`) or a string key
    `body_prefix`..id (saq); that body reaches `Layout.job` as the field `body`, and with `scores` a
    sorted set's score as the field `score` (arq: the enqueue or run time)."""

    kind: Literal["list", "zset", "stream"]
    key: str
    oldest_first: bool = True  # list: oldest at the head; zset: lowest score first; stream: always
    hash_prefix: str | None = None
    fields: tuple[str, ...] = ()
    body_hash: str | None = None
    body_prefix: str | None = None
    scores: bool = False
    # Items that are binary (huey's pickles) reach `Layout.job` undecoded, as latin-1 text (byte for byte).
    binary: bool = False
    # Where the key is of this range's kind instead (huey's priority storage: a zset under the same key).
    other: JobRange | None = None
    # A stream's entries not yet delivered to this consumer group (all of them while it does not exist);
    # each entry's `data` field is the item, its id the field `id`.
    group: str | None = None

    def acl(self) -> list[tuple[str, ...]]:
        """What the job listing (jobs.read_page) sends for this range, with a full page: what an ACL must
        allow (redis-py sends ZREVRANGE for a newest-first page of a sorted set)."""
        page = str(MAX_JOB_PAGE)
        if self.kind == "stream":
            return [("TYPE", self.key), ("XINFO", "GROUPS", self.key), ("XLEN", self.key),
                    ("XRANGE", self.key, "-", "+", "COUNT", str(MAX_STREAM_SCAN))]
        if self.kind == "list":
            window = ("0", str(MAX_JOB_PAGE - 1)) if self.oldest_first else ("-" + page, "-1")
            out = [("LLEN", self.key), ("LRANGE", self.key, *window)]
        else:
            verb = "ZRANGE" if self.oldest_first else "ZREVRANGE"
            out = [("ZCARD", self.key), (verb, self.key, "0", str(MAX_JOB_PAGE - 1))]
        if self.hash_prefix is not None:
            out.append(("HMGET", self.hash_prefix + "1", *self.fields))
        if self.body_hash is not None:
            out.append(("HGET", self.body_hash, "1"))
        if self.body_prefix is not None:
            out.append(("GET", self.body_prefix + "1"))
        if self.other is not None:  # the key's type decides which range is read
            out = [("TYPE", self.key), *out, *self.other.acl()]
        return out


MAX_STREAM_SCAN = 1000  # entries a stream page may read from its start: XRANGE cannot skip to an offset
MAX_RAW = 64 * 1024  # characters of an item that is not (bounded) JSON, shown as its payload


def decoded(raw: Any) -> Any:
    """A JSON text decoded, or the text itself (cut at MAX_RAW) when it is not bounded JSON.

    NaN is read as the libraries write it; the answer's encoder turns it into null."""
    if not isinstance(raw, str):
        return raw
    try:
        return untrusted.loads(raw, finite=False)
    except ValueError:  # not JSON, too deep or too large: (bounded) text, never a 500
        return bounded(raw)


_MEMO_PUT = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_MEMO_GET = frozenset({"GET", "BINGET", "LONG_BINGET"})


def pickled_values(data: bytes, limit: int = 4096) -> list[Any]:
    """The texts and numbers a pickle pushes, in order (memo references resolved), None for anything
    else; [] when it is not a pickle. `pickletools.genops` only decodes opcodes: unlike unpickling, it
    never imports a class or calls anything, so a hostile item is text like any other."""
    import pickletools  # here: only pickled payloads (Celery, RQ) need it, and it costs ~0.2 MB

    values: list[Any] = []
    memo: dict[int, Any] = {}
    try:
        for opcode, arg, _ in islice(pickletools.genops(data), limit):
            name = opcode.name
            if name == "MEMOIZE":
                memo[len(memo)] = values[-1] if values else None
            elif name in _MEMO_PUT and isinstance(arg, int):
                memo[arg] = values[-1] if values else None
            elif name in _MEMO_GET and isinstance(arg, int):
                values.append(memo.get(arg))
            elif name == "GLOBAL" and isinstance(arg, str):  # protocols 0-3: "module name"
                values += arg.split(" ", 1)
            elif isinstance(arg, str | int | float) and not isinstance(arg, bool) and opcode.stack_after:
                values.append(arg)
            elif opcode.stack_after and name not in ("MARK", "PROTO", "FRAME"):
                values.append(None)
    except (ValueError, EOFError, UnicodeDecodeError):  # not a pickle, or cut short
        return []
    return values


def bounded(raw: str) -> str:
    return raw if len(raw) <= MAX_RAW else raw[:MAX_RAW] + "…"


def job_of(job_id: Any, queue: str, status: str, payload: Any, message: Any, trace: Any, attempts: Any,
           created: Any, updated: Any) -> Job:
    """A `Job` from the values a library stores; times and counts are read leniently (unknown = None)."""
    stack = "\n".join(map(str, trace)) if isinstance(trace, list) else (str(trace) if trace else None)
    created_at, updated_at = as_time(created), as_time(updated)
    return Job(None if job_id is None else str(job_id), queue, status, payload,
               str(message).splitlines()[0] if message else None, stack if message else None, as_int(attempts),
               created_at, updated_at if updated_at is not None else created_at)


def payload_job(item: str, queue: str, status: str) -> Job:
    """A job stored whole as a JSON item (Laravel, Sidekiq, Celery, plain lists); unknown fields are None."""
    body = decoded(item)
    body = body if isinstance(body, dict) else {"raw": bounded(item)}
    headers = body.get("headers")
    job_id = body.get("id") or body.get("uuid") or body.get("jid") or (
        headers.get("id") if isinstance(headers, dict) else None)
    return job_of(job_id, queue, status, body.get("data", body.get("args", body)), body.get("error_message"),
                  body.get("error_backtrace"), body.get("attempts", body.get("retry_count")),
                  body.get("createdAt") or body.get("pushedAt") or body.get("created_at") or body.get("enqueued_at")
                  or body.get("timestamp"), body.get("failed_at") or body.get("enqueued_at"))


class Layout(Model):
    """Base of every layout config. A library's module overrides what it knows: `plan` (and `discovery`)
    for the collection, `job_range` and `job` for the job listing (by default: not supported)."""

    scan: Annotated[int, Field(ge=1, le=100)] = 10
    # How far in the future a stored enqueue time may lie (clock skew between app hosts and the
    # exporter) before it counts as malformed and the next item gives the age.
    future_skew: Duration = 300.0
    # For a layout without `{tenant}` in its keys: the tenant label of its series. Two apps in one
    # Redis (two Laravel prefixes, two Sidekiq namespaces) each get their own, so no series is doubled.
    tenant: str | None = None

    def latest(self, now: float) -> float:
        """The latest plausible enqueue time at `now`."""
        return now + self.future_skew

    def stamp_kind(self, unit: Unit, now: float) -> str:
        return kind_of(unit, self.latest(now))

    def templates(self) -> Sequence[str]:
        """Every key template of the layout; `{tenant}` in any of them makes it per-tenant."""
        return ()

    @property
    def per_tenant(self) -> bool:
        return any("{tenant}" in t for t in self.templates())

    def static_queues(self) -> list[str]:
        """The queue names the config alone says the layout reports (not those its registry announces)."""
        name = getattr(self, "name", None)
        if isinstance(name, str):
            return [name]
        return list(getattr(self, "queues", None) or [])

    @property
    def discovers(self) -> bool:
        """Whether the layout reads anything before planning (spares the others a pass per tenant)."""
        return type(self).discovery is not Layout.discovery

    def discovery(self, tenant: str) -> Reads:
        """What to read before planning, by name; `plan` gets the results under the same names."""
        return {}

    @property
    def registry(self) -> bool:
        """Whether the queues come from the library's own registry (no `queues` configured): then the
        source keeps an inventory of them and passes the known ones to `plan_known`."""
        return False

    def scan_match(self) -> str | None:
        """A SCAN MATCH pattern whose keys name the layout's queues where no registry lists them all
        (Laravel's `queues:*` lists for Horizon, BullMQ's `meta` hashes); None: nothing to scan."""
        return None

    def scanned_queue(self, key: str) -> str | None:
        """The queue a key found by `scan_match` belongs to, or None for keys of no queue."""
        return None

    def plan_known(self, tenant: str, found: Results, now: float, known: Sequence[str]) -> Plan:
        """`plan`, also reading the queues of the inventory that discovery no longer announces."""
        return self.plan(tenant, found, now)

    def listener(self, db: int) -> CeleryEvents | None:
        """A background listener the source runs for this layout (Celery events); most have none."""
        return None

    def plan(self, tenant: str, found: Results, now: float) -> Plan:
        raise NotImplementedError

    def plan_all(self, tenants: list[str], found: list[Results], now: float) -> list[Plan]:
        """Plans for every tenant; layouts with a flat per-tenant key override it with EACH ops."""
        return [self.plan(t, f, now) for t, f in zip(tenants, found, strict=True)]

    def serves(self, queue: str) -> bool:
        """Whether this layout reads a queue of that name (`queues: null` means discovered: any name)."""
        name: str | None = getattr(self, "name", None)
        if name is not None:
            return name == queue
        queues: list[str] | None = getattr(self, "queues", None)
        return queues is None or queue in queues

    @property
    def lists_jobs(self) -> bool:
        """Whether the layout supports the job listing at all."""
        return type(self).job_range is not Layout.job_range

    def job_range(self, tenant: str, queue: str, status: str) -> JobRange | None:
        """Where jobs of `status` live, or None when the library keeps no such set per queue."""
        return None

    def job(self, item: str, fields: dict[str, str], queue: str, status: str) -> Job:
        """One listed job from its range item (and its hash fields, for layouts with job hashes)."""
        return payload_job(item, queue, status)

    def job_acl(self, tenant: str) -> list[tuple[str, ...]]:
        """What the job listing may send for this layout (on its first configured queue; none for queues
        only the library's registry names): what an ACL must allow."""
        queues = self.static_queues()
        if not queues:
            return []
        queue = queues[0]
        return [command for state in JOB_STATES if (where := self.job_range(tenant, queue, state)) is not None
                for command in where.acl()]


class RegistryLayout(Layout):
    """A library that lists its own queues (Sidekiq's `queues` set, RQ's `rq:queues`, BullMQ's `meta`
    hashes): without `queues` in the config they come from that registry, and the source keeps an
    inventory so that a queue the registry stops announcing still reads 0 until `forget_after`."""

    queues: list[str] | None = None

    @property
    def registry(self) -> bool:
        return self.queues is None

    def plan_known(self, tenant: str, found: Results, now: float, known: Sequence[str]) -> Plan:
        return self.plan(tenant, found, now, known)

    def plan(self, tenant: str, found: Results, now: float, known: Sequence[str] = ()) -> Plan:
        raise NotImplementedError


def hashes(reply: Any) -> list[dict[str, Any]]:
    """ZHASHES reply -> one dict per member: the hash fields plus `member` and `score`."""
    if reply == WRONGTYPE or not reply:
        return []
    out = []
    for member, score, flat in reply:
        fields = dict(zip(flat[::2], flat[1::2], strict=False)) if isinstance(flat, list) else {}
        out.append({**fields, "member": str(member), "score": float(score)})
    return out


def members(reply: Any) -> list[str]:
    return [] if reply == WRONGTYPE or not reply else [str(m) for m in reply]


def json_dict(raw: Any) -> dict[str, Any]:
    try:
        value = untrusted.loads(raw) if isinstance(raw, str) else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def to_int(raw: Any) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return 0


def to_float(raw: Any) -> float:
    try:
        return float(raw) if raw not in (None, WRONGTYPE) else 0.0
    except ValueError:
        return 0.0


def flat_dict(reply: Any) -> dict[str, str]:
    """An HGETALL reply (flat list, or a dict from redis-py) as a dict; empty for a missing key."""
    if isinstance(reply, dict):
        return {str(k): str(v) for k, v in reply.items()}
    if not isinstance(reply, list):
        return {}
    return {str(k): str(v) for k, v in zip(reply[::2], reply[1::2], strict=False)}


# --------------------------------------------------------------------------------- flow and workers
# Every layout that reports flow or workers goes through these helpers, so every library emits the
# same series the same way (FLOW_METRICS in exporter/metrics.py).

WORKER_STATES = ("busy", "idle", "paused")


def flow(out: Parsed, tenant: str, queue: str, processed: float | None, failed: float | None = None) -> None:
    """jobqueue_jobs_processed_total / _failed_total from counts the library keeps; None = not kept."""
    if processed is not None:
        out.samples.append(Sample("jobqueue_jobs_processed", (tenant, queue), processed))
    if failed is not None:
        out.samples.append(Sample("jobqueue_jobs_failed", (tenant, queue), failed))


def stored_count(raw: Any, out: Parsed) -> int | None:
    """A count the library stores as a string (GET stat:processed, HGET ... count): None when absent;
    a value that is not a number (or a key of the wrong type) is counted as malformed and skipped."""
    if raw is None:
        return None
    value = as_int(raw) if raw != WRONGTYPE else None
    if value is None:
        out.malformed += 1
    return value


def runtime(out: Parsed, tenant: str, queue: str, seconds: float | None) -> None:
    """jobqueue_job_runtime_seconds: the average runtime as the library keeps it."""
    if seconds is not None and math.isfinite(seconds):
        out.samples.append(Sample("jobqueue_job_runtime_seconds", (tenant, queue), seconds))


@dataclass
class Workers:
    """Live workers of one tenant, tallied per queue and state, with capacity and busy slots.

    A worker serving several queues counts under each; one that names no queue counts under "".
    `states` are the states the library can tell apart: (busy, idle, paused) for most; a library
    that only shows that a worker is connected (BullMQ's CLIENT LIST) reports `unknown`.
    A paused worker offers no capacity (it takes no new job): layouts add it with capacity 0.
    """

    tenant: str
    states: tuple[str, ...] = WORKER_STATES
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    capacity: dict[str, float] = field(default_factory=dict)
    busy: dict[str, float] = field(default_factory=dict)

    def add(self, queues: Sequence[str], state: str, capacity: float | None = None,
            busy: float | None = None, n: int = 1) -> None:
        for queue in dict.fromkeys(queues or [""]):
            per = self.counts.setdefault(queue, {})
            per[state] = per.get(state, 0) + n
            if capacity is not None:
                self.capacity[queue] = self.capacity.get(queue, 0) + capacity
            if busy is not None:
                self.busy[queue] = self.busy.get(queue, 0) + busy

    def emit(self, out: Parsed, queues: Sequence[str] = (), capacity: bool = True, busy: bool = True) -> None:
        """Every state of every queue (`queues`: those known to exist, so "no live worker" is a 0, not
        a missing series); capacity and busy slots only where the library records them."""
        for queue in dict.fromkeys([*queues, *self.counts]):
            per = self.counts.get(queue, {})
            for state in dict.fromkeys([*self.states, *per]):
                out.samples.append(Sample("jobqueue_workers", (self.tenant, queue, state), per.get(state, 0)))
            if capacity:
                out.samples.append(Sample("jobqueue_worker_capacity", (self.tenant, queue),
                                          self.capacity.get(queue, 0)))
            if busy:
                out.samples.append(Sample("jobqueue_worker_busy_slots", (self.tenant, queue),
                                          self.busy.get(queue, 0)))


_ADDITIVE = frozenset({"jobqueue_jobs_processed", "jobqueue_jobs_failed", "jobqueue_workers",
                       "jobqueue_worker_capacity", "jobqueue_worker_busy_slots"})


def merge_flow(samples: list[Sample]) -> list[Sample]:
    """One series per label set for the library-wide counts (queue ""): where several libraries share
    a Redis and tenant (Sidekiq, RQ and Celery events all count only globally), their counts and
    workers add up; of two runtimes the first is kept.

    A named queue is not merged: two layouts reporting one (tenant, queue) is the collision the
    scheduler counts (jobqueue_series_collisions) and emits once, first kept, the same as that
    queue's depth, so depth and workers of a queue always come from the same layout (a sum of two
    apps' workers beside one app's backlog would hide a queue with no live worker). Other samples
    pass through untouched."""
    merged: dict[tuple[str, tuple[str, ...]], int] = {}
    out: list[Sample] = []
    for sample in samples:
        if (sample.metric not in _ADDITIVE and sample.metric != "jobqueue_job_runtime_seconds") or \
                sample.labels[1:2] != ("",):
            out.append(sample)
            continue
        key = (sample.metric, sample.labels)
        at = merged.get(key)
        if at is None:
            merged[key] = len(out)
            out.append(sample)
        elif sample.metric in _ADDITIVE:
            out[at] = sample._replace(value=out[at].value + sample.value)
    return out
