"""Host source (psutil): CPU and memory of the machine, and the processes of named components.

CPU use (host and per process) is always a delta of CPU times between two readings taken by this
source, never psutil's meaningless first sample: a collection reuses the previous collection as
its start when it is recent enough, and otherwise (first collection, a newly seen process)
measures over `cpu_window` itself. Process CPU is in cores (1.0 = one core busy, like top's 100%).

`Reading.details` keys:
  hostname          the host name components are reported under
  resources         {cpu_used_percent, memory_used_percent, memory_available_mb, memory_available_bytes}
                    (the media-service seed's `resources` block)
  cpu_percent, memory_percent, memory_available_bytes   the same numbers, flat
  registry          [{name, type, hostname, status ("Ready" | "NotReady"), conditions [str], processes,
                      pids, started_at (Unix s, oldest process), age_seconds, age ("7h 6m" at collection),
                      cpu_percent (100 = one core), mem_bytes}]
                    (the NATS job-platform seed's component `registry`)
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, NamedTuple

import psutil
from pydantic import Field, field_validator, model_validator

from exporter.facts import HostResources
from exporter.model import Reading, Sample
from exporter.sources.base import (
    Duration,
    MetricDef,
    Model,
    Name,
    Source,
    SourceConfig,
    SourceContext,
    SourceError,
    redact_url,
)

MIN_WINDOW = 0.1  # psutil's advice: CPU samples closer than this are noise
# Seconds between full scans of the process table while every component has its processes: a scan
# reads three /proc files per process (138 processes: 0.1 s idle, 0.7 s under an HTTP flood, each
# read waiting for the GIL behind the web thread). A component short of `min_count` is rescanned at
# once, so a dead or restarted process is seen at the next collection; only an *extra* instance
# can take this long to be counted.
RESCAN = 60.0


class ProcessSpec(Model):
    """One component: specific processes, found by pid file, by the exporter's own pid, or by the
    conditions given among `process` (exact name), `cmdline` (regex) and `port` (listens on this TCP
    port), all of which must hold. `process` alone matches every process of that name on the host:
    add `port` or `cmdline` to name the instance that serves the system."""

    name: Name
    type: str = "process"
    process: str | None = None
    cmdline: str | None = None
    port: int | None = Field(None, ge=1, le=65535)  # or a URL, whose port it takes (`${NATS_URL}`)
    pid_file: str | None = None
    own: bool = False
    min_count: int = Field(1, ge=1)

    @field_validator("port", mode="before")
    @classmethod
    def _port_of_url(cls, value: Any) -> Any:
        return port_of_url(value) if isinstance(value, str) and "://" in value else value

    @model_validator(mode="after")
    def _one_matcher(self) -> ProcessSpec:
        scan = [k for k in ("process", "cmdline", "port") if getattr(self, k) is not None]
        given = [k for k in ("pid_file",) if getattr(self, k) is not None] + (["own"] if self.own else [])
        if len(given) + bool(scan) != 1:
            raise ValueError("give pid_file, own, or any of process, cmdline, port "
                             f"(got {given + scan or 'none'})")
        if self.cmdline is not None:
            try:
                re.compile(self.cmdline)
            except re.error as err:
                raise ValueError(f"cmdline regex does not compile: {err}") from err
        return self

    @property
    def scans(self) -> bool:
        return self.process is not None or self.cmdline is not None or self.port is not None


DEFAULT_PORTS = {"nats": 4222, "tls": 4222, "redis": 6379, "rediss": 6379, "postgres": 5432, "postgresql": 5432,
                 "http": 80, "https": 443}


def port_of_url(url: str) -> int:
    """The port a server URL names (the first of a comma list, as NATS_URL may be), else its scheme's
    default: so a registry entry watches the server the source reads, wherever the URL points."""
    from urllib.parse import urlsplit

    first = urlsplit(url.split(",")[0].strip())
    try:
        port = first.port
    except ValueError as err:
        raise ValueError(f"{redact_url(url)}: {err}") from err
    if port is None and first.scheme not in DEFAULT_PORTS:
        raise ValueError(f"{redact_url(url)} names no port and {first.scheme!r} has no default one")
    return port or DEFAULT_PORTS[first.scheme]


class SystemConfig(SourceConfig):
    """The host itself and, optionally, named component processes on it."""

    type: Literal["system"]
    cpu_window: Duration = 0.25
    hostname: str | None = None
    processes: list[ProcessSpec] = []

    @model_validator(mode="after")
    def _window(self) -> SystemConfig:
        if self.cpu_window >= self.timeout:
            raise ValueError(f"cpu_window ({self.cpu_window}s) must be shorter than timeout ({self.timeout}s)")
        names = [p.name for p in self.processes]
        if len(names) != len(set(names)):
            raise ValueError("two processes entries share a name")
        return self


class CpuTimes(NamedTuple):
    """Busy and total CPU seconds of the host at one instant (psutil's definition of busy)."""

    busy: float
    total: float


def host_cpu_times(times: Any) -> CpuTimes:
    """psutil.cpu_times() -> busy/total; guest time is already in user, idle and iowait are not busy."""
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    busy = total - times.idle - getattr(times, "iowait", 0.0)
    return CpuTimes(busy, total)


def busy_ratio(before: CpuTimes, after: CpuTimes) -> float:
    """Share of host CPU busy between two readings, 0..1."""
    total = after.total - before.total
    if total <= 0:
        return 0.0
    return min(1.0, max(0.0, (after.busy - before.busy) / total))


def format_conditions(found: int, zombies: int, min_count: int) -> tuple[str, list[str]]:
    """Status and active conditions of a component from its process counts."""
    conditions = []
    if found - zombies < min_count:
        conditions.append("NotRunning" if found == 0 else "TooFewProcesses")
    if zombies:
        conditions.append("Zombie")
    return ("NotReady" if found - zombies < min_count else "Ready"), conditions


def format_age(seconds: float | None) -> str | None:
    """The seed's age style: `7h 6m`, `5m 3s`, `42s`, `2d 3h`."""
    if seconds is None:
        return None
    s = int(max(0.0, seconds))
    days, hours, minutes = s // 86400, s % 86400 // 3600, s % 3600 // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {s % 60}s" if minutes else f"{s}s"


Key = tuple[int, float]  # pid, create time: a reused pid is another process


class SystemSource(Source):
    """Reads host CPU and memory and the processes of configured components."""

    backend = "system"
    config_model = SystemConfig
    metrics = (
        MetricDef("jobqueue_host_cpu_used_ratio", "Host CPU in use since the previous collection, 0 to 1."),
        MetricDef("jobqueue_host_memory_used_ratio", "Host memory in use, 0 to 1."),
        MetricDef("jobqueue_host_memory_available_bytes", "Host memory available to new processes."),
        MetricDef("jobqueue_process_running", "Live (non-zombie) processes of the component.", ("process", "type")),
        MetricDef("jobqueue_process_ready", "1 if the component runs at least its minimum number of processes.",
                  ("process",)),
        MetricDef("jobqueue_process_cpu_cores", "CPU the component's processes used since the previous "
                  "collection, in cores (1 = one core busy).", ("process",)),
        MetricDef("jobqueue_process_resident_memory_bytes", "Resident memory of the component's processes.",
                  ("process",)),
        MetricDef("jobqueue_process_start_time_seconds", "Start time of the component's oldest process.",
                  ("process",)),
    )

    def __init__(self, config: SystemConfig, context: SourceContext) -> None:
        super().__init__(config, context)
        self.config: SystemConfig = config
        self.hostname = config.hostname or socket.gethostname()
        self._host: tuple[float, CpuTimes] | None = None
        self._procs: dict[Key, tuple[float, float]] = {}  # key -> (monotonic, cpu seconds)
        self._cache: dict[Key, tuple[str, psutil.Process]] = {}  # matched processes and their component
        self._scanned_at = -RESCAN  # monotonic time of the last full scan of the process table

    async def collect(self) -> Reading:
        try:
            return await asyncio.to_thread(self._read)
        except (OSError, psutil.Error) as err:
            raise SourceError(f"psutil could not read the host: {err}") from err

    def _read(self) -> Reading:
        found = self._find()
        now = time.monotonic()
        host = host_cpu_times(psutil.cpu_times())
        cpu = self._cpu_of(found)
        stale = self._host is None or now - self._host[0] < MIN_WINDOW
        if stale or any(k not in self._procs for k in cpu):
            before_host, before_cpu = (now, host), {k: (now, v) for k, v in cpu.items()}
            time.sleep(self.config.cpu_window)
            now, host, cpu = time.monotonic(), host_cpu_times(psutil.cpu_times()), self._cpu_of(found)
            if not stale:
                before_host = self._host  # type: ignore[assignment]  # not stale: set by the last collection
            before_cpu = {**before_cpu, **{k: v for k, v in self._procs.items() if k in cpu}}
        else:
            before_host, before_cpu = self._host, self._procs  # type: ignore[assignment]  # as above: set
        ratio = busy_ratio(before_host[1], host)
        cores = {k: max(0.0, (v - before_cpu[k][1]) / (now - before_cpu[k][0]))
                 for k, v in cpu.items() if k in before_cpu and now > before_cpu[k][0]}
        self._host, self._procs = (now, host), {k: (now, v) for k, v in cpu.items()}
        mem = psutil.virtual_memory()
        samples = [
            Sample("jobqueue_host_cpu_used_ratio", (), ratio),
            Sample("jobqueue_host_memory_used_ratio", (), mem.percent / 100.0),
            Sample("jobqueue_host_memory_available_bytes", (), mem.available),
        ]
        registry = [self._component(spec, procs, cores, samples) for spec, procs in found]
        resources = {"cpu_used_percent": round(ratio * 100, 1), "memory_used_percent": mem.percent,
                     "memory_available_mb": mem.available // (1024 * 1024), "memory_available_bytes": mem.available}
        details = {"hostname": self.hostname, "resources": resources, "cpu_percent": ratio * 100,
                   "memory_percent": mem.percent, "memory_available_bytes": mem.available, "registry": registry}
        fact = HostResources(self.hostname, ratio * 100, mem.percent, mem.available)
        return Reading(samples=tuple(samples), details=details, facts=(fact,))

    def _component(self, spec: ProcessSpec, procs: list[tuple[Key, psutil.Process]], cores: dict[Key, float],
                   samples: list[Sample]) -> dict[str, Any]:
        rss, zombies, live = 0, 0, []
        for key, proc in procs:
            try:
                if proc.status() == psutil.STATUS_ZOMBIE:
                    zombies += 1
                    continue
                rss += proc.memory_info().rss
                live.append(key)
            except psutil.NoSuchProcess:
                continue
            except psutil.AccessDenied:
                live.append(key)
        status, conditions = format_conditions(len(live) + zombies, zombies, spec.min_count)
        used = sum((cores.get(k, 0.0) for k in live), 0.0)
        started = min((k[1] for k in live), default=None)
        age = None if started is None else max(0.0, time.time() - started)
        samples += [
            Sample("jobqueue_process_running", (spec.name, spec.type), len(live)),
            Sample("jobqueue_process_ready", (spec.name,), status == "Ready"),
        ]
        if live:
            samples += [Sample("jobqueue_process_cpu_cores", (spec.name,), used),
                        Sample("jobqueue_process_resident_memory_bytes", (spec.name,), rss)]
        if started is not None:
            samples.append(Sample("jobqueue_process_start_time_seconds", (spec.name,), started))
        return {"name": spec.name, "type": spec.type, "hostname": self.hostname, "status": status,
                "conditions": conditions, "processes": len(live), "pids": sorted(k[0] for k in live),
                "started_at": started, "age_seconds": age, "age": format_age(age),
                "cpu_percent": round(used * 100, 1), "mem_bytes": rss}

    def _cpu_of(self, found: list[tuple[ProcessSpec, list[tuple[Key, psutil.Process]]]]) -> dict[Key, float]:
        out: dict[Key, float] = {}
        for _, procs in found:
            for key, proc in procs:
                try:
                    times = proc.cpu_times()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                out[key] = times.user + times.system
        return out

    def _find(self) -> list[tuple[ProcessSpec, list[tuple[Key, psutil.Process]]]]:
        """Match every configured component against the process table once."""
        specs = self.config.processes
        if not specs:
            return []
        result: dict[str, list[tuple[Key, psutil.Process]]] = {s.name: [] for s in specs}
        scan = [s for s in specs if s.scans]
        now = time.monotonic()
        if scan and now - self._scanned_at < RESCAN:  # the matches kept, while none is missing
            kept = self._kept(specs)
            if all(len(kept[s.name]) >= s.min_count for s in scan):
                scan = []
        if scan:
            self._scanned_at = now
            patterns = {s.name: re.compile(s.cmdline) for s in scan if s.cmdline is not None}
            listens = _listeners({s.port for s in scan if s.port is not None})
            for proc in psutil.process_iter(["name", "cmdline", "create_time"]):
                info = proc.info
                line = " ".join(info.get("cmdline") or [])
                for spec in scan:
                    hit = ((spec.process is None or info.get("name") == spec.process)
                           and (spec.cmdline is None or patterns[spec.name].search(line) is not None)
                           and (spec.port is None or listens(proc.pid, spec.port)))
                    if hit:
                        result[spec.name].append(self._keyed(spec.name, proc, info.get("create_time")))
        for spec in specs:
            pid = os.getpid() if spec.own else _read_pid(spec.pid_file)
            if pid is not None and (spec.own or spec.pid_file is not None):
                try:
                    proc = psutil.Process(pid)
                    result[spec.name].append(self._keyed(spec.name, proc, proc.create_time()))
                except psutil.NoSuchProcess:
                    pass
        seen = {k for procs in result.values() for k, _ in procs}
        for name, procs in self._kept(specs).items():
            # a matched process stays its component's until it is gone (a zombie has no cmdline left)
            for key, proc in procs:
                if key not in seen:
                    result[name].append((key, proc))
                    seen.add(key)
        self._cache = {k: v for k, v in self._cache.items() if k in seen}
        return [(s, result[s.name]) for s in specs]

    def _kept(self, specs: list[ProcessSpec]) -> dict[str, list[tuple[Key, psutil.Process]]]:
        """The matched processes of scanning components that are still running."""
        kept: dict[str, list[tuple[Key, psutil.Process]]] = {s.name: [] for s in specs if s.scans}
        for key, (name, proc) in self._cache.items():
            if name in kept and proc.is_running():
                kept[name].append((key, proc))
        return kept

    def _keyed(self, name: str, proc: psutil.Process, created: float | None) -> tuple[Key, psutil.Process]:
        key = (proc.pid, created or 0.0)
        return key, self._cache.setdefault(key, (name, proc))[1]


def _listening_inodes(ports: set[int]) -> dict[int, set[str]] | None:
    """Inodes of the TCP sockets in LISTEN on each of `ports`, from /proc/net/tcp{,6} (None where there
    is no /proc). Only LISTEN lines are kept: psutil.net_connections mapped every socket of every
    process to its pid, so 2,000 connections to the exporter itself made each host read take seconds
    (issue 20 item 3: the host source timed out under a flood of HTTP connections)."""
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not any(t.exists() for t in tables):
        return None
    out: dict[int, set[str]] = {p: set() for p in ports}
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split(None, 10)
            if len(fields) > 9 and fields[3] == "0A":  # TCP_LISTEN
                port = int(fields[1].rpartition(":")[2], 16)
                if port in out:
                    out[port].add(fields[9])
    return out


def _owns(pid: int, inodes: set[str]) -> bool:
    """Whether process `pid` holds one of the socket `inodes` (its fds in order: a listener is opened early)."""
    if not inodes:
        return False
    wanted = {f"socket:[{inode}]" for inode in inodes}
    try:
        fds = sorted(os.listdir(f"/proc/{pid}/fd"), key=int)
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                return True
        except OSError:
            continue
    return False


def _listeners(ports: set[int]) -> Callable[[int, int], bool]:
    """`listens(pid, port)`: from /proc where there is one, else from psutil's whole socket table."""
    inodes = _listening_inodes(ports)
    if inodes is not None:  # never the exporter's own fds: its HTTP connections are what made this slow
        me = os.getpid()
        return lambda pid, port: pid != me and _owns(pid, inodes.get(port, set()))
    out: dict[int, set[int]] = {p: set() for p in ports}
    if ports:
        for conn in psutil.net_connections(kind="tcp"):
            if (conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port in out
                    and conn.pid is not None):
                out[conn.laddr.port].add(conn.pid)
    return lambda pid, port: pid in out.get(port, ())


def _read_pid(path: str | None) -> int | None:
    """The pid in a pid file, or None when it is missing or not a number."""
    if path is None:
        return None
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
