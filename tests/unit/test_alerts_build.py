"""alerts/build.py: the committed rules are what alerts/config.yml renders, and every knob of the
config (job selector, thresholds, windows, SLO objectives and target, runbook base URL) reaches the
rendered rules, which promtool accepts and evaluates as configured."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("alerts_build", ROOT / "alerts" / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool not found: apt-get install prometheus (scripts/test does)"
    return path


def render(tmp_path: Path, knobs: dict[str, Any]) -> Path:
    """The rules rendered from a user's config file holding `knobs`, through the command line."""
    config = tmp_path / "my.yml"
    config.write_text(yaml.safe_dump(knobs))
    out = tmp_path / "out"
    assert builder().main(["--config", str(config), "--out", str(out)]) == 0
    return out / "jobqueue.rules.yml"


def rules(path: Path) -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]]


def test_committed_rules_are_what_the_config_renders() -> None:
    build = builder()
    assert (ROOT / "alerts" / "jobqueue.rules.yml").read_text() == build.render(build.load()), \
        "alerts/jobqueue.rules.yml is stale: run python3 alerts/build.py"


def test_the_committed_config_spells_out_every_default() -> None:
    """alerts/config.yml is the one place to look: it lists every knob, at its default."""
    build = builder()
    assert yaml.safe_load((ROOT / "alerts" / "config.yml").read_text()) == build.DEFAULTS


CUSTOM = {
    "job_selector": 'job="queues-prod"',
    "runbook_base_url": "https://git.example.com/ops/jobqueue-exporter/blob/v2/",
    "thresholds": {"queue_depth_warning": 40},
    "windows": {"throughput_stalled": "30m"},
    "slo": {"target": 0.999, "objective_seconds": 120,
            "objectives": [{"selector": 'queue="payments"', "objective_seconds": 30},
                           {"selector": 'queue=~"pay.*"', "objective_seconds": 60}]},
}


def test_custom_knobs_reach_the_rules(tmp_path: Path) -> None:
    path = render(tmp_path, CUSTOM)
    result = subprocess.run([promtool(), "check", "rules", "--lint=all", "--lint-fatal", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    by_name = {r.get("alert") or r["record"]: r for r in rules(path)}
    for rule in rules(path):
        if "alert" in rule:
            assert rule["annotations"]["runbook_url"] == \
                f"https://git.example.com/ops/jobqueue-exporter/blob/v2/docs/runbook.md#{rule['alert'].lower()}"
    assert by_name["JobQueueExporterDown"]["expr"] == '(up{job="queues-prod"} == 0) or absent(up{job="queues-prod"})'
    assert by_name["jobqueue:threshold:queue_depth_warning"]["expr"] == "vector(40)"
    assert by_name["jobqueue:threshold:queue_depth_critical"]["expr"] == "vector(1000)"  # untouched default
    assert by_name["jobqueue:threshold:slo_latency_target"]["expr"] == "vector(0.999)"
    assert "increase(jobqueue_jobs_processed_total[30m])" in by_name["JobQueueThroughputStalled"]["expr"]


def test_per_queue_objectives_first_match_wins(tmp_path: Path) -> None:
    """payments: 30 s; other pay* queues: 60 s; the rest: the default 120 s. promtool evaluates the SLI."""
    path = render(tmp_path, CUSTOM)
    labels = 'job="queues-prod",instance="a:9312",source="cache"'
    ages = {"payments": 45, "payouts": 45, "mail": 100, "reports": 130}
    test = {"rule_files": [str(path)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [{"series": f'jobqueue_oldest_age_seconds{{{labels},queue="{q}"}}', "values": f"{a}x5"}
                         for q, a in ages.items()],
        "promql_expr_test": [
            {"expr": "jobqueue:slo_latency:objective_seconds", "eval_time": "2m", "exp_samples": [
                {"labels": f'jobqueue:slo_latency:objective_seconds{{{labels},queue="{q}"}}', "value": v}
                for q, v in {"payments": 30, "payouts": 60, "mail": 120, "reports": 120}.items()]},
            {"expr": "jobqueue:slo_latency:good", "eval_time": "2m", "exp_samples": [
                {"labels": f'jobqueue:slo_latency:good{{{labels},queue="{q}"}}', "value": v}
                for q, v in {"payments": 0, "payouts": 1, "mail": 1, "reports": 0}.items()]},
        ],
    }]}
    test_file = tmp_path / "objectives.test.yml"
    test_file.write_text(yaml.safe_dump(test, sort_keys=False))
    result = subprocess.run([promtool(), "test", "rules", str(test_file)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("knobs", "message"), [
    ({"thresholds": {"queue_depth_warnin": 5}}, "unknown key thresholds.'queue_depth_warnin'"),
    ({"thresholds": {"queue_depth_warning": "many"}}, "thresholds.queue_depth_warning must be a number"),
    ({"windows": {"throughput_stalled": "15 minutes"}}, "windows.throughput_stalled must be a Prometheus duration"),
    ({"slo": {"target": 99}}, "slo.target must be between 0 and 1"),
    ({"slo": {"objectives": [{"queue": "x", "objective_seconds": 5}]}}, "slo.objectives[0] needs exactly"),
])
def test_a_bad_config_names_the_file_and_the_key(tmp_path: Path, knobs: dict[str, Any], message: str) -> None:
    with pytest.raises(SystemExit) as error:
        render(tmp_path, knobs)
    assert message in str(error.value)
