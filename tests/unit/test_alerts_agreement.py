"""The alert rules and the exporter's health evaluation reach the same verdict on one table of
scenarios (tests/unit/agreement_scenarios.py): a page whenever a shim would answer 503, a ticket
when the system is degraded, nothing when it is ok.

Rules half: each scenario's series go through promtool with the bundled rules; the firing alerts
(read back from the ALERTS series) give the verdict. It is checked twice: with everything the
exporter exposes ("full": the system-status alerts may carry it), and without
jobqueue_health_status ("symptom": the alerts on the facts themselves must reach it alone).
Exporter half (test_health_evaluation_agrees): the same facts as a snapshot and a system config go
through exporter/health/evaluation.py; its verdict and issues must be the table's, seed 001's status shim must
answer 503 exactly when the rules page, and the rules fed the exporter's own issue ids agree again.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.facts import CheckRecord
from tests.support import builders
from tests.unit.agreement_scenarios import EVAL_TIME, SCENARIOS, Scenario, series

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "alerts" / "jobqueue.rules.yml"
STATUS_ALERTS = ("JobQueueSystemUnhealthy", "JobQueueSystemDegraded")


def firing_alerts(input_series: list[dict[str, str]], tmp_path: Path) -> list[dict[str, str]]:
    """Labels of every alert firing at EVAL_TIME, as promtool evaluates the bundled rules."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: apt-get install prometheus (scripts/test does)"
    test = {"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": input_series,
        "promql_expr_test": [{"expr": 'ALERTS{alertstate="firing",alertname!="JobQueueWatchdog"}',  # always fires
                              "eval_time": EVAL_TIME, "exp_samples": []}],
    }]}
    path = tmp_path / "agreement.test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    result = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
    if result.returncode == 0:
        return []
    got = (result.stdout + result.stderr).split("got:", 1)
    assert len(got) == 2, result.stdout + result.stderr
    return [dict(re.findall(r'(\w+)="([^"]*)"', m)) for m in re.findall(r"\{([^}]*)\}", got[1])]


def verdict(alerts: list[dict[str, str]]) -> str:
    severities = {a["severity"] for a in alerts}
    return "unhealthy" if "critical" in severities else "degraded" if "warning" in severities else "ok"


def describe(alerts: list[dict[str, str]]) -> list[str]:
    return sorted(f"{a['alertname']}/{a['severity']}" for a in alerts)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_rules_agree_with_the_table(scenario: Scenario, tmp_path: Path) -> None:
    alerts = firing_alerts(series(scenario, scenario.verdict, scenario.issues), tmp_path)
    assert verdict(alerts) == scenario.verdict, describe(alerts)


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s.symptom], ids=lambda s: s.name)
def test_symptom_alerts_alone_agree_with_the_table(scenario: Scenario, tmp_path: Path) -> None:
    alerts = [a for a in firing_alerts(series(scenario, None, scenario.issues), tmp_path)
              if a["alertname"] not in STATUS_ALERTS]
    assert verdict(alerts) == scenario.verdict, describe(alerts)


def test_the_table_covers_every_verdict_and_the_required_kinds() -> None:
    assert {s.verdict for s in SCENARIOS} == {"ok", "degraded", "unhealthy"}
    issues = {i for s in SCENARIOS for i in s.issues}
    assert {"backend_unreachable", "queue_depth_warning", "queue_depth_critical", "failed_jobs", "worker_stale",
            "queue_stuck", "disabled_share"} <= issues
    assert all((s.verdict == "ok") == (not s.issues) for s in SCENARIOS)


# --- exporter half --------------------------------------------------------------------------------

# The issue ids of the table are the contract's; the health module may add a suffix naming the
# queue, worker or component (`worker_stale:backfill`) and uses a few other words for the same rule.
ISSUE_ALIASES = {"source_down": "backend_unreachable", "queue_warning": "queue_depth_warning",
                 "queue_critical": "queue_depth_critical", "queue_failed": "failed_jobs",
                 "high_disabled": "disabled_share", "check": "check_warn"}


def contract_issue(issue_id: str) -> str:
    base = issue_id.split(":", 1)[0]
    return ISSUE_ALIASES.get(base, base)


def evaluate_with_exporter(s: Scenario) -> tuple[str, tuple[str, ...], int]:
    """The exporter's verdict, raw issue ids and the status shim's HTTP code for the scenario: its facts
    as a snapshot, a system config."""
    health = pytest.importorskip("exporter.health.evaluation", reason="exporter/health/evaluation.py has not landed")
    from exporter.health.config import (
        CheckRule,
        ComponentRule,
        QueueRule,
        ShareRule,
        StuckRule,
        SystemConfig,
        WorkerRule,
    )
    from exporter.model import QueueStats
    from tests.unit.agreement_scenarios import SOURCE, SYSTEM

    now = 1_800_000_000.0
    details: dict[str, object] = {"workers": {w.name: {"last_run": now - w.since, "state": "idle" if w.idle
                                                       else "working"} for w in s.workers}}
    if s.stuck:
        details["stuck"] = {"ready": s.ready if s.ready is not None else s.queues[0].depth}
    if s.disabled:
        details["backups"] = {"disabled": s.disabled[0], "total": s.disabled[1]}
    details["components"] = {"vector": {"status": "down" if s.component_down else "ok"}}
    facts = (CheckRecord("orphans", "warn", 3),) if s.check_warn else ()
    if s.check_down:
        facts += (CheckRecord("planning", None, 0, error='relation "planning_worker_runs" does not exist'),)
    system = SystemConfig(
        name=SYSTEM, sources=[SOURCE], queues=[QueueRule(source=SOURCE)],
        workers=[WorkerRule(name=w.name, source=SOURCE, last_run=f"workers.{w.name}.last_run", interval=w.interval,
                            state=f"workers.{w.name}.state") for w in s.workers],
        stuck=[StuckRule(source=SOURCE, ready="stuck.ready", worker=w.name) for w in s.workers if s.stuck and w.idle],
        shares=[ShareRule(source=SOURCE, total="backups.total", part="backups.disabled")] if s.disabled else [],
        components=[ComponentRule(name="vector", source=SOURCE, path="components.vector")],
        checks=[CheckRule(source=SOURCE), CheckRule(source=SOURCE, checks=["planning"])],
        quiet_hours="00:00-23:59" if s.quiet else None,
    )
    queues = tuple(QueueStats(q.queue, q.depth, q.tenant, None if q.oldest_age is None else now - q.oldest_age,
                              (("reserved", q.reserved),), failed=q.failed) for q in s.queues)
    read = builders.reading(queues, details=details, facts=facts) if s.up else None
    snapshot = builders.snapshot(builders.state(SOURCE, read, at=now, last_success=now if s.up else now - 60,
                                                error=None if s.up else "refused", collections=5), at=now)
    result = health.evaluate(system, snapshot, health.History(), now)
    return result.status, tuple(i.id for i in result.issues), status_shim_code(system, snapshot, result, now)


def status_shim_code(system: Any, snapshot: Any, result: Any, now: float) -> int:
    """What seed 001's /api/health/status (the shim that follows the system's verdict) answers."""
    from exporter.web.shims.status import StatusShim, platform_status

    view = builders.view(snapshot, result, systems=[system], started_at=now - 60, now=now)
    code, _ = platform_status(view, StatusShim(system=system.name))
    return code


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_health_evaluation_agrees(scenario: Scenario, tmp_path: Path) -> None:
    """The exporter's verdict is the table's, and the rules fed the exporter's own issues reach it too."""
    status, issues, code = evaluate_with_exporter(scenario)
    assert (status, sorted({contract_issue(i) for i in issues})) == (scenario.verdict, sorted(scenario.issues))
    alerts = firing_alerts(series(scenario, status, issues), tmp_path)
    assert verdict(alerts) == status, describe(alerts)
    assert (code == 503) == (verdict(alerts) == "unhealthy"), f"the shim answers {code}; alerts: {describe(alerts)}"
    if scenario.symptom:
        symptoms = [a for a in firing_alerts(series(scenario, None, issues), tmp_path)
                    if a["alertname"] not in STATUS_ALERTS]
        assert verdict(symptoms) == status, describe(symptoms)


def test_horizon_down_pages_on_its_symptoms(tmp_path: Path) -> None:
    """Horizon dead, 100 jobs on `high`: the backlog still reports (the inventory), and the rules page on
    what the metrics show by themselves: no live worker for the queue, nothing taken, Horizon stale."""
    (scenario,) = [s for s in SCENARIOS if s.name == "Horizon down with a backlog"]
    alerts = firing_alerts(series(scenario, None, scenario.issues), tmp_path)
    assert {"JobQueueNoWorkers/critical", "JobQueueStuck/critical", "JobQueueWorkerStale/critical",
            "JobQueueDepthHigh/warning"} <= set(describe(alerts))
    (quiet,) = [s for s in SCENARIOS if s.name == "a backlog with live workers"]
    assert firing_alerts(series(quiet, None, ()), tmp_path) == []
