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


PER_QUEUE = {"queues": [
    {"selector": 'queue="payments"', "queue_depth_warning": 10, "queue_depth_critical": 50,
     "oldest_age_critical_seconds": 120},
    {"selector": 'queue=~"pay.*"', "queue_depth_critical": 5},  # never reached for payments: first match wins
    {"selector": 'queue="nightly-batch"', "queue_depth_warning": 50000, "queue_depth_critical": 200000,
     "oldest_age_warning_seconds": 21600, "oldest_age_critical_seconds": 43200},
]}


def firing(path: Path, tmp_path: Path, series: dict[str, str], alert: str, expected: list[tuple[str, str]]) -> None:
    """promtool: at 10m exactly `expected` ((queue, severity) pairs) of `alert` fire."""
    labels = 'job="jobqueue-exporter",instance="a:9312",source="redis",tenant=""'
    input_series = [{"series": f'{name}{{{labels},queue="{queue}"}}', "values": values}
                    for (name, queue), values in ((k.split("/"), v) for k, v in series.items())]
    alerts = []
    for queue, severity in expected:
        alerts.append({"exp_labels": {"severity": severity, "job": "jobqueue-exporter", "instance": "a:9312",
                                      "source": "redis", "queue": queue}})  # tenant "" is no label
    test = {"rule_files": [str(path)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": input_series,
        "alert_rule_test": [{"eval_time": "10m", "alertname": alert, "exp_alerts": alerts}]}]}
    test_file = tmp_path / f"{alert}.test.yml"
    test_file.write_text(yaml.safe_dump(test, sort_keys=False))
    result = subprocess.run([promtool(), "test", "rules", str(test_file)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def strip_annotations(path: Path) -> None:
    """Keep labels only, so that the cases compare which alerts fire (their texts are tested elsewhere)."""
    doc = yaml.safe_load(path.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_per_queue_thresholds_fire_and_stay_quiet_for_overridden_and_default_queues(tmp_path: Path) -> None:
    """Issue 21 item 11: payments pages at 60 waiting (its critical is 50), a nightly batch queue holding
    5,000 stays quiet (its warning is 50,000), and queues without an override keep the defaults (100 /
    1000): `refunds` with 60 is quiet, `mail` with 5,000 pages. Ages: payments 5 min old pages (120 s), a
    default queue 5 min old is quiet (15 min), the nightly batch 2 h old is quiet (6 h)."""
    path = render(tmp_path, PER_QUEUE)
    strip_annotations(path)
    depth = {"jobqueue_depth/payments": "60x15", "jobqueue_depth/nightly-batch": "5000x15",
             "jobqueue_depth/refunds": "60x15", "jobqueue_depth/mail": "5000x15", "jobqueue_depth/paylater": "7x15"}
    firing(path, tmp_path, depth, "JobQueueDepthHigh", [
        ("payments", "critical"), ("payments", "warning"), ("mail", "critical"), ("mail", "warning"),
        ("paylater", "critical")])
    age = {"jobqueue_oldest_timestamp_seconds/payments": "-300+60x15",
           "jobqueue_oldest_timestamp_seconds/mail": "-300+60x15",
           "jobqueue_oldest_timestamp_seconds/nightly-batch": "-7200+60x15",
           "jobqueue_oldest_timestamp_seconds/refunds": "-1200+60x15"}
    firing(path, tmp_path, age, "JobQueueOldestItemTooOld", [("payments", "critical"), ("refunds", "warning")])
    # the committed rules (no override): the same series judged by the defaults only
    default = tmp_path / "default.rules.yml"
    default.write_text((ROOT / "alerts" / "jobqueue.rules.yml").read_text())
    strip_annotations(default)
    firing(default, tmp_path, depth, "JobQueueDepthHigh", [
        ("nightly-batch", "critical"), ("nightly-batch", "warning"), ("mail", "critical"), ("mail", "warning")])


def test_per_queue_thresholds_judge_queues_that_share_job_and_instance(tmp_path: Path) -> None:
    """Two clusters (or any labels beyond job, instance, source, tenant, queue) with the same instance
    address: pod IPs repeat across clusters under a multi-cluster ruler (Thanos, Mimir). The threshold
    is recorded from the queue's own series, so it carries every label of it; comparing `on (job,
    instance, source, tenant, queue)` instead makes the match group hold two series, and PromQL's
    one-to-one comparison then fails the whole rule ("many-to-many matching not allowed") — no queue
    pages at all. The SLO objective (jobqueue:slo_latency:objective_seconds) already matches this way."""
    path = render(tmp_path, PER_QUEUE)
    strip_annotations(path)
    labels = 'job="jobqueue-exporter",instance="10.0.0.5:9312",source="redis",tenant="",queue="payments"'
    test = {"rule_files": [str(path)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [{"series": f'jobqueue_depth{{{labels},cluster="{c}"}}', "values": v}
                         for c, v in (("eu", "60x15"), ("us", "3x15"))],
        "alert_rule_test": [{"eval_time": "10m", "alertname": "JobQueueDepthHigh", "exp_alerts": [
            {"exp_labels": {"severity": s, "job": "jobqueue-exporter", "instance": "10.0.0.5:9312",
                            "source": "redis", "queue": "payments", "cluster": "eu"}}
            for s in ("critical", "warning")]}]}]}
    test_file = tmp_path / "clusters.test.yml"
    test_file.write_text(yaml.safe_dump(test, sort_keys=False))
    result = subprocess.run([promtool(), "test", "rules", str(test_file)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("knobs", "message"), [
    ({"queues": [{"queue": "payments", "queue_depth_warning": 5}]}, "queues[0] needs a selector"),
    ({"queues": [{"selector": 'queue="a"', "depth_warning": 5}]}, "queues[0]: unknown key 'depth_warning'"),
    ({"queues": [{"selector": 'queue="a"', "queue_depth_warning": "x"}]}, "queues[0].queue_depth_warning must be a"),
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
