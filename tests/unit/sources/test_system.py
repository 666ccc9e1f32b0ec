"""System source arithmetic and config on literal inputs."""

from __future__ import annotations

from collections import namedtuple

import pytest
from pydantic import ValidationError

from exporter.sources.system import (
    CpuTimes,
    SystemConfig,
    busy_ratio,
    format_age,
    format_conditions,
    host_cpu_times,
)

Times = namedtuple("Times", "user nice system idle iowait irq softirq steal guest guest_nice")


def test_host_cpu_times_excludes_guest_and_counts_iowait_as_idle() -> None:
    times = Times(10, 0, 5, 80, 5, 0, 0, 0, 3, 1)  # guest time is already part of user
    assert host_cpu_times(times) == CpuTimes(busy=15, total=100)


def test_busy_ratio_between_two_readings() -> None:
    assert busy_ratio(CpuTimes(15, 100), CpuTimes(40, 200)) == 0.25
    assert busy_ratio(CpuTimes(15, 100), CpuTimes(15, 100)) == 0.0  # no time passed: no made-up number
    assert busy_ratio(CpuTimes(15, 100), CpuTimes(300, 200)) == 1.0


def test_conditions() -> None:
    assert format_conditions(2, 0, 1) == ("Ready", [])
    assert format_conditions(0, 0, 1) == ("NotReady", ["NotRunning"])
    assert format_conditions(2, 1, 2) == ("NotReady", ["TooFewProcesses", "Zombie"])
    assert format_conditions(3, 1, 2) == ("Ready", ["Zombie"])


def test_config() -> None:
    config = SystemConfig.model_validate({"name": "host", "type": "system", "processes": [
        {"name": "nats", "type": "nats", "process": "nats-server"}, {"name": "me", "own": True}]})
    assert [p.name for p in config.processes] == ["nats", "me"]
    with pytest.raises(ValidationError, match="give pid_file, own, or any of process, cmdline, port"):
        SystemConfig.model_validate({"name": "h", "type": "system", "processes": [{"name": "x"}]})
    with pytest.raises(ValidationError, match="give pid_file, own, or any of process, cmdline, port"):
        SystemConfig.model_validate({"name": "h", "type": "system",
                                     "processes": [{"name": "x", "process": "a", "own": True}]})
    narrowed = SystemConfig.model_validate({"name": "h", "type": "system", "processes": [
        {"name": "nats", "process": "nats-server", "port": 4222, "cmdline": "-c /etc/nats/a.conf"}]})
    assert narrowed.processes[0].port == 4222
    with pytest.raises(ValidationError, match="give pid_file, own, or any of process, cmdline, port"):
        SystemConfig.model_validate({"name": "h", "type": "system",
                                     "processes": [{"name": "x", "port": 80, "pid_file": "/run/x.pid"}]})
    with pytest.raises(ValidationError, match="does not compile"):
        SystemConfig.model_validate({"name": "h", "type": "system", "processes": [{"name": "x", "cmdline": "("}]})
    with pytest.raises(ValidationError, match="cpu_window"):
        SystemConfig.model_validate({"name": "h", "type": "system", "timeout": "200ms", "cpu_window": "250ms"})


def test_format_age_like_the_seed() -> None:
    assert format_age(7 * 3600 + 6 * 60 + 59) == "7h 6m"
    assert format_age(303) == "5m 3s"
    assert format_age(42.9) == "42s"
    assert format_age(2 * 86400 + 3 * 3600 + 1) == "2d 3h"
    assert format_age(None) is None
