"""The example Alertmanager config: amtool accepts it and routes each severity where it belongs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "alerts" / "alertmanager.example.yml"
RULES = ROOT / "alerts" / "jobqueue.rules.yml"


def amtool() -> str:
    path = shutil.which("amtool")
    assert path, "amtool not found: apt-get install prometheus-alertmanager (scripts/test does)"
    return path


def config() -> dict[str, Any]:
    return yaml.safe_load(CONFIG.read_text())


def test_amtool_check_config_succeeds() -> None:
    result = subprocess.run([amtool(), "check-config", str(CONFIG)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


ROUTES = [
    ("pager", {"alertname": "JobQueueSourceDown", "severity": "critical", "source": "redis"}),
    ("pager", {"alertname": "JobQueueSystemUnhealthy", "severity": "critical", "system": "billing"}),
    ("pager", {"alertname": "JobQueueDepthHigh", "severity": "critical", "queue": "default"}),
    ("ticket", {"alertname": "JobQueueDepthHigh", "severity": "warning", "queue": "default"}),
    ("ticket", {"alertname": "JobQueueSystemDegraded", "severity": "warning", "system": "billing"}),
    ("null", {"alertname": "Watchdog", "severity": "info"}),
    ("heartbeat", {"alertname": "JobQueueWatchdog", "severity": "none"}),
    ("null", {"alertname": "SomethingWithoutSeverity"}),
]


@pytest.mark.parametrize(("receiver", "labels"), ROUTES, ids=lambda v: v if isinstance(v, str) else None)
def test_amtool_routes(receiver: str, labels: dict[str, str]) -> None:
    args = [f"{k}={v}" for k, v in labels.items()]
    result = subprocess.run(
        [amtool(), "config", "routes", "test", f"--config.file={CONFIG}", f"--verify.receivers={receiver}", *args],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_every_severity_of_the_rules_has_a_route() -> None:
    severities = {r["labels"]["severity"] for g in yaml.safe_load(RULES.read_text())["groups"]
                  for r in g["rules"] if "alert" in r}
    routed = {m.split("=")[1].strip('"') for r in config()["route"]["routes"] for m in r["matchers"]}
    assert severities - {"none"} <= routed  # severity none: the watchdog, routed by its name


def matches(matcher: str, labels: dict[str, str]) -> bool:
    """One Alertmanager matcher (`name="v"`, `!=`, `=~`, `!~`) against labels; a missing label is ""."""
    import re

    name, op, value = re.fullmatch(r'(\w+)(=~|!~|!=|=)"(.*)"', matcher).groups()  # type: ignore[union-attr]
    have = labels.get(name, "")
    hit = re.fullmatch(value, have) is not None if "~" in op else have == value
    return hit if op in ("=", "=~") else not hit


def test_the_watchdog_is_never_inhibited() -> None:
    """A dead man's switch that an inhibition silences would page about a pipeline that works."""
    watchdog = {"alertname": "JobQueueWatchdog", "severity": "none"}
    for rule in config()["inhibit_rules"]:
        assert not all(matches(m, watchdog) for m in rule["target_matchers"]), rule


def test_quiet_hours_mute_warnings_but_never_pages() -> None:
    cfg = config()
    names = {t["name"] for t in cfg["time_intervals"]}
    assert "quiet-hours" in names
    assert "mute_time_intervals" not in cfg
    for route in cfg["route"]["routes"]:
        muted = route.get("mute_time_intervals", [])
        assert set(muted) <= names
        if 'severity="critical"' in route["matchers"] or 'alertname="JobQueueWatchdog"' in route["matchers"]:
            assert not muted and not route.get("active_time_intervals"), "pages (and the heartbeat) are never muted"
        else:
            assert "quiet-hours" in muted
    nights = cfg["time_intervals"][0]["time_intervals"][0]
    assert nights["location"] and {"start_time": "22:00", "end_time": "24:00"} in nights["times"]


def test_critical_inhibits_warning_for_the_same_system_only_when_both_name_one() -> None:
    rules = config()["inhibit_rules"]
    system_rule = next(r for r in rules if "system" in r["equal"])
    assert 'severity="critical"' in system_rule["source_matchers"]
    assert 'severity="warning"' in system_rule["target_matchers"]
    # Labels missing on both sides count as equal: both sides must require a system label.
    assert 'system=~".+"' in system_rule["source_matchers"]
    assert 'system=~".+"' in system_rule["target_matchers"]
    for rule in rules:
        assert "alertname" in rule["equal"] or all(
            any(m.startswith(f"{label}=~") or m.startswith(f"{label}=") for m in rule["target_matchers"])
            or label == "instance" for label in rule["equal"]
        ), f"inhibit rule {rule} could match alerts that both lack its `equal` labels"
