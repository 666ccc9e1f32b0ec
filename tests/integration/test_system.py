"""System source on the real host: processes of the test's own, found, measured, lost and reaped."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from exporter.scheduler import Scheduler
from tests.conftest import samples

BUSY = "while True: pass"
IDLE = "import time\ntime.sleep(300)"


@pytest.fixture
def spawn() -> Iterator[Callable[[str, str], subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(code: str, token: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-c", code, token])
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def config(token: str, pid_file: Path | str = "/nonexistent.pid") -> str:
    return f"""
sources:
  - name: host
    type: system
    processes:
      - {{name: workers, type: agent, cmdline: "{token}", min_count: 2}}
      - {{name: me, type: api, own: true}}
      - {{name: by-pid, pid_file: "{pid_file}"}}
"""


async def test_components_found_and_measured_on_the_first_collection(
        spawn: Callable[[str, str], subprocess.Popen[bytes]], make_scheduler: Callable[[str], Scheduler],
        tmp_path: Path) -> None:
    token = f"jqtest-{uuid.uuid4().hex}"
    busy, idle = spawn(BUSY, token), spawn(IDLE, token)
    (tmp_path / "idle.pid").write_text(f"{idle.pid}\n")
    scheduler = make_scheduler(config(token, tmp_path / "idle.pid"))
    await scheduler.collect_once()
    values = samples(scheduler)
    reading = scheduler.snapshot.reading("host")
    assert reading is not None
    registry = {c["name"]: c for c in reading.details["registry"]}
    workers = registry["workers"]
    assert (workers["status"], workers["conditions"], workers["processes"]) == ("Ready", [], 2)
    assert workers["pids"] == sorted([busy.pid, idle.pid])
    created = min(psutil.Process(busy.pid).create_time(), psutil.Process(idle.pid).create_time())
    assert values['jobqueue_process_start_time_seconds{source="host",process="workers"}'] == pytest.approx(created)
    assert values['jobqueue_process_running{source="host",process="workers",type="agent"}'] == 2
    assert values['jobqueue_process_ready{source="host",process="workers"}'] == 1
    # measured over a window even on the first collection: psutil's first sample would say 0.0
    assert values['jobqueue_process_cpu_cores{source="host",process="workers"}'] > 0.05
    assert values['jobqueue_process_resident_memory_bytes{source="host",process="workers"}'] > 0
    assert registry["me"]["pids"] == [os.getpid()]
    assert registry["by-pid"]["pids"] == [idle.pid]
    assert set(reading.details["resources"]) == {"cpu_used_percent", "memory_used_percent",
                                                 "memory_available_mb", "memory_available_bytes"}
    ratio = values['jobqueue_host_cpu_used_ratio{source="host"}']
    assert 0 < ratio <= 1  # the busy child alone keeps the host above zero
    assert reading.details["resources"]["memory_available_bytes"] == \
        values['jobqueue_host_memory_available_bytes{source="host"}']


def registry(scheduler: Scheduler) -> dict[str, dict[str, Any]]:
    reading = scheduler.snapshot.reading("host")
    assert reading is not None
    return {c["name"]: c for c in reading.details["registry"]}


async def test_lost_and_zombie_processes(spawn: Callable[[str, str], subprocess.Popen[bytes]],
                                         make_scheduler: Callable[[str], Scheduler]) -> None:
    token = f"jqtest-{uuid.uuid4().hex}"
    first, second = spawn(IDLE, token), spawn(IDLE, token)
    scheduler = make_scheduler(config(token))
    await scheduler.collect_once()
    first.kill()
    # killed but not reaped: a zombie, which does not count as running
    for _ in range(100):
        if psutil.Process(first.pid).status() == psutil.STATUS_ZOMBIE:
            break
        await asyncio.sleep(0.02)
    await scheduler.collect_once()
    workers = registry(scheduler)["workers"]
    assert (workers["status"], workers["conditions"], workers["pids"]) == \
        ("NotReady", ["TooFewProcesses", "Zombie"], [second.pid])
    first.wait()
    second.kill()
    second.wait()
    await scheduler.collect_once()
    values = samples(scheduler)
    workers = registry(scheduler)["workers"]
    assert (workers["status"], workers["conditions"], workers["processes"]) == ("NotReady", ["NotRunning"], 0)
    assert values['jobqueue_process_running{source="host",process="workers",type="agent"}'] == 0
    assert values['jobqueue_process_ready{source="host",process="workers"}'] == 0
    assert 'jobqueue_process_cpu_cores{source="host",process="workers"}' not in values
    assert 'jobqueue_process_start_time_seconds{source="host",process="workers"}' not in values
    by_pid = registry(scheduler)["by-pid"]
    assert (by_pid["status"], by_pid["processes"]) == ("NotReady", 0)


LISTEN = """import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
open(PORT_FILE, "w").write(str(s.getsockname()[1]))
time.sleep(300)"""


async def test_a_component_named_by_its_listening_port(spawn: Callable[[str, str], subprocess.Popen[bytes]],
                                                       make_scheduler: Callable[[str], Scheduler],
                                                       tmp_path: Path) -> None:
    """Two processes of one name and command line; only the one listening on the port is the component
    (the nats-server entry must not stay Ready on another nats-server of the host)."""
    token = f"jqtest-{uuid.uuid4().hex}"
    port_file = tmp_path / "port"
    proc = spawn(LISTEN.replace("PORT_FILE", repr(str(port_file))), token)
    other = spawn(IDLE, token)
    deadline = time.monotonic() + 10
    while not port_file.exists() or not port_file.read_text():
        assert time.monotonic() < deadline, "the listener did not start"
        await asyncio.sleep(0.05)
    port = int(port_file.read_text())
    name = psutil.Process(proc.pid).name()
    scheduler = make_scheduler(f"""
sources:
  - name: host
    type: system
    processes:
      - {{name: by-name, process: "{name}", cmdline: "{token}"}}
      - {{name: by-port, process: "{name}", cmdline: "{token}", port: {port}}}
      - {{name: dead-port, process: "{name}", cmdline: "{token}", port: {port + 1 if port < 65535 else port - 1}}}
""")
    await scheduler.collect_once()
    found = registry(scheduler)
    assert found["by-name"]["pids"] == sorted([proc.pid, other.pid])
    assert (found["by-port"]["pids"], found["by-port"]["status"]) == ([proc.pid], "Ready")
    assert (found["dead-port"]["pids"], found["dead-port"]["status"]) == ([], "NotReady")
    proc.kill()
    proc.wait()
    await scheduler.collect_once()
    assert (registry(scheduler)["by-port"]["status"], registry(scheduler)["by-name"]["pids"]) == (
        "NotReady", [other.pid])
