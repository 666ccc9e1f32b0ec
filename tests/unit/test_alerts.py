"""The bundled alert rules: promtool checks and unit tests, plus the monitoring-mixin lint rules.

promtool is Debian's `prometheus` package (scripts/test installs it). The mixtool lint rules
(`pkg/mixer/lint.go`) are implemented here because mixtool is not packaged.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "alerts" / "jobqueue.rules.yml"
TESTS = sorted((ROOT / "alerts" / "tests").glob("*.yml"))
RUNBOOK = ROOT / "docs" / "runbook.md"


def promtool() -> str:
    """The promtool binary; its absence is a failure, not a skip (scripts/test installs it)."""
    path = shutil.which("promtool")
    assert path, "promtool not found: apt-get install prometheus (scripts/test does)"
    return path


def rules() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [r for r in rules() if "alert" in r]


def test_promtool_check_rules_is_clean() -> None:
    result = subprocess.run([promtool(), "check", "rules", "--lint=all", "--lint-fatal", str(RULES)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


@pytest.mark.parametrize("test_file", TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(test_file: Path) -> None:
    result = subprocess.run([promtool(), "test", "rules", test_file.name], cwd=test_file.parent,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def _cases() -> list[dict[str, Any]]:
    out = []
    for path in TESTS:
        for group in yaml.safe_load(path.read_text())["tests"]:
            out.extend(group.get("alert_rule_test", []))
    return out


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    cases = _cases()
    for rule in alerts():
        name, severity = rule["alert"], rule["labels"]["severity"]
        fired = [c for c in cases if c["alertname"] == name
                 and any(a["exp_labels"].get("severity") == severity for a in c["exp_alerts"])]
        quiet = [c for c in cases if c["alertname"] == name and not c["exp_alerts"]]
        assert fired, f"no promtool case where {name} ({severity}) fires"
        assert quiet or name == WATCHDOG, f"no promtool case where {name} must not fire"


WATCHDOG = "JobQueueWatchdog"  # always fires (a heartbeat): no quiet case, severity none, as kube-prometheus'
CAMEL = re.compile(r"^([A-Z]+[a-z0-9]+)+$")
SUMMARY = re.compile(r"^[A-Z].+\.$")


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: f"{r['alert']}-{r['labels']['severity']}")
def test_alert_follows_mixin_conventions(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    assert CAMEL.match(name), "[alert-name-camelcase]"
    assert name.startswith("JobQueue"), "all alerts share the JobQueue prefix"
    assert rule["labels"]["severity"] in ("critical", "warning") or (name, rule["labels"]["severity"]) == (
        WATCHDOG, "none"), "[alert-severity-rule]"
    notes = rule["annotations"]
    assert SUMMARY.match(notes["summary"]), "[alert-summary-style]"
    assert "{{" not in notes["summary"], "[alert-summary-templating]: the summary is static"
    assert "{{" in notes["description"], "[alert-description-templating]"
    assert "for" in rule, "every alert allows slack with `for:`"


def _anchors(markdown: str) -> set[str]:
    """GitHub-style anchors of the markdown headings."""
    out = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    return out


def test_every_runbook_url_points_at_a_section_of_the_runbook() -> None:
    anchors = _anchors(RUNBOOK.read_text())
    for rule in alerts():
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == "docs/runbook.md", url
        assert anchor == rule["alert"].lower(), url
        assert anchor in anchors, f"docs/runbook.md has no section #{anchor}"


def test_alerts_sharing_a_name_differ_only_in_severity_and_threshold() -> None:
    by_name: dict[str, list[dict[str, Any]]] = {}
    for rule in alerts():
        by_name.setdefault(rule["alert"], []).append(rule)
    for name, group in by_name.items():
        severities = [r["labels"]["severity"] for r in group]
        assert len(severities) == len(set(severities)), f"{name}: one rule per severity"
        assert len({r["annotations"]["summary"] for r in group}) == 1, f"{name}: one static summary"


def test_thresholds_live_in_one_group_and_are_all_used() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    thresholds = [r["record"] for g in groups for r in g["rules"] if r.get("record", "").startswith(
        "jobqueue:threshold:")]
    assert thresholds
    assert all(r.get("record", "").startswith("jobqueue:threshold:") for r in groups[0]["rules"])
    assert all(re.fullmatch(r"vector\([0-9.]+\)", r["expr"]) for r in groups[0]["rules"])
    others = "\n".join(str(r["expr"]) for g in groups[1:] for r in g["rules"])
    for name in thresholds:
        assert name in others, f"{name} is never used"
    # No alert compares against a bare number other than 0 and 1 (presence / booleans).
    for rule in alerts():
        expr = re.sub(r"\[[0-9]+[smh]\]|offset [0-9]+[smh]|\{[^}]*\}", "", rule["expr"])
        for number in re.findall(r"[<>]=?\s*([0-9.]+)", expr):
            assert number in ("0", "1"), f"{rule['alert']}: threshold {number} belongs in jobqueue.thresholds"
