"""The Grafana dashboards: in sync with grafana/build.py, the dashboard-linter rules, valid PromQL.

grafana/dashboard-linter (17.4 of the conventions) has no Debian package and cannot be built with
`go install`, so its rules are implemented here, one test per rule id; PromQL validity is checked
by promtool on a temporary rules file holding every query as a recording rule.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.metrics import catalogue

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
UIDS = {"overview.json": "jobqueue-overview", "redis.json": "jobqueue-redis", "postgres.json": "jobqueue-postgres",
        "nats.json": "jobqueue-nats", "host.json": "jobqueue-host"}
# A subset of Grafana's unit ids (packages/grafana-data/src/valueFormats/categories.ts).
UNITS = {"none", "short", "percent", "percentunit", "s", "ms", "µs", "ns", "m", "h", "d", "dtdurations",
         "dtdurationms", "bytes", "decbytes", "bits", "ops", "reqps", "rps", "wps", "iops", "opm", "rpm",
         "Bps", "binBps", "bps", "locale", "string", "bool", "dateTimeAsIso"}
VARIABLES = {"$job": ".+", "$instance": ".+", "$source": ".+", "$queue": ".+"}
GRAFANA_INTERVALS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


def targets(board: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(p["title"], t) for p in panels(board) for t in p["targets"]]


def substitute(expr: str) -> str:
    """A dashboard query as Prometheus receives it from Grafana, for some value of the variables."""
    for name, value in GRAFANA_INTERVALS.items():
        expr = expr.replace(name, value)
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def all_board_params() -> list[Any]:
    return [pytest.param(p, id=p.name) for p in DASHBOARDS]


def test_the_five_dashboards_exist_with_stable_uids() -> None:
    assert {p.name: load(p)["uid"] for p in DASHBOARDS} == UIDS


def test_committed_dashboards_are_what_build_py_generates() -> None:
    spec = importlib.util.spec_from_file_location("grafana_build", GRAFANA / "build.py")
    assert spec and spec.loader
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    rendered = build.render()
    assert sorted(rendered) == [p.name for p in DASHBOARDS]
    for path in DASHBOARDS:
        assert path.read_text() == rendered[path.name], f"{path.name} is stale: run python3 grafana/build.py"


@pytest.mark.parametrize("path", all_board_params())
def test_dashboard_model(path: Path) -> None:
    board = load(path)
    assert 8 <= len(board["uid"]) <= 40 and re.fullmatch(r"[a-z0-9-]+", board["uid"])
    assert board["title"] and board["description"]
    assert "__inputs" not in board and "__requires" not in board, "provisioned copies carry no __inputs"
    assert board["editable"] is False, "[uneditable-dashboard]"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for p in board["panels"]:
        grid = p["gridPos"]
        assert 1 <= grid["w"] <= 24 and grid["x"] + grid["w"] <= 24


def test_titles_are_unique() -> None:
    titles = [load(p)["title"] for p in DASHBOARDS]
    assert len(titles) == len(set(titles))


@pytest.mark.parametrize("path", all_board_params())
def test_template_datasource_rule(path: Path) -> None:
    sources = [v for v in load(path)["templating"]["list"] if v["type"] == "datasource"]
    assert len(sources) == 1
    assert sources[0]["name"] == "datasource" and sources[0]["label"] == "Data source"
    assert sources[0]["query"] == "prometheus"


def _uses_datasource_variable(ds: Any) -> bool:
    uid = ds.get("uid") if isinstance(ds, dict) else ds
    return uid in ("$datasource", "${datasource}")


@pytest.mark.parametrize("path", all_board_params())
@pytest.mark.parametrize("name", ["job", "instance"])
def test_template_job_and_instance_rules(path: Path, name: str) -> None:
    var = next((v for v in load(path)["templating"]["list"] if v["name"] == name), None)
    assert var is not None, f"[template-{name}-rule] no {name} variable"
    assert var["label"] == name
    assert var["type"] == "query"
    assert _uses_datasource_variable(var["datasource"])
    assert var["multi"] is True
    assert var["allValue"] == ".+"


@pytest.mark.parametrize("path", all_board_params())
def test_template_on_time_change_reload_and_uneditable_rules(path: Path) -> None:
    for var in load(path)["templating"]["list"]:
        if var["type"] == "query":
            assert var["refresh"] == 2, f"{var['name']}: [template-on-time-change-reload-rule]"
            assert _uses_datasource_variable(var["datasource"])
        assert var.get("hide", 0) == 0 or var["type"] == "constant"


@pytest.mark.parametrize("path", all_board_params())
def test_panel_rules(path: Path) -> None:
    for p in panels(load(path)):
        where = f"{path.name}: {p['title']!r}"
        assert p["title"].strip() and p.get("description", "").strip(), f"{where}: [panel-title-description-rule]"
        assert _uses_datasource_variable(p["datasource"]), f"{where}: [panel-datasource-rule]"
        assert p["targets"], f"{where}: [panel-no-targets-rule]"
        unit = p["fieldConfig"]["defaults"].get("unit")
        assert unit in UNITS, f"{where}: [panel-units-rule] {unit!r}"
        for t in p["targets"]:
            assert _uses_datasource_variable(t["datasource"]), where


def excluded(rule: str, board: dict[str, Any], panel: str) -> bool:
    """Whether grafana/dashboards/.lint excludes `rule` for this dashboard and panel."""
    lint = yaml.safe_load((GRAFANA / "dashboards" / ".lint").read_text()) or {}
    entry = (lint.get("exclusions") or {}).get(rule)
    if entry is None:
        return False
    assert entry.get("reason"), f".lint: exclusion of {rule} needs a reason"
    entries = entry.get("entries")
    return entries is None or any(e.get("dashboard") == board["title"] and e.get("panel", panel) == panel
                                  for e in entries)


RANGE_FUNCS = re.compile(r"\b(rate|irate|increase)\s*\(")
SELECTOR = re.compile(r"\b((?:jobqueue_|process_)[a-zA-Z0-9_:]*|up)\b(\{[^}]*\})?")


@pytest.mark.parametrize("path", all_board_params())
def test_target_rules(path: Path) -> None:
    board = load(path)
    for title, t in targets(board):
        expr, where = t["expr"], f"{path.name}: {title!r}: {t['expr']}"
        for match in re.finditer(r"\[([^\]]+)\]", expr):
            assert match.group(1) == "$__rate_interval", f"{where}: [target-rate-interval-rule]"
        assert len(RANGE_FUNCS.findall(expr)) == expr.count("[$__rate_interval]"), where
        for name, matchers in SELECTOR.findall(expr):
            assert matchers, f"{where}: {name} without matchers"
            assert 'job=~"$job"' in matchers, f"{where}: [target-job-rule]"
            assert 'instance=~"$instance"' in matchers, f"{where}: [target-instance-rule]"
            if name.endswith("_total") and not excluded("target-counter-agg-rule", board, title):
                assert re.search(rf"\b(rate|irate|increase)\(\s*{name}\{{", expr), f"{where}: [target-counter-agg-rule]"


def test_every_metric_a_dashboard_reads_is_in_the_catalogue() -> None:
    known = {m.name + ("_total" if m.type == "counter" else "") for m in catalogue()}
    known |= {"process_cpu_seconds_total", "process_resident_memory_bytes"}
    for path in DASHBOARDS:
        board = load(path)
        exprs = [t["expr"] for _, t in targets(board)]
        exprs += [v["definition"] for v in board["templating"]["list"] if v["type"] == "query"]
        for expr in exprs:
            for name, _ in SELECTOR.findall(expr):
                if name != "up":
                    assert name in known, f"{path.name}: {name} is not a metric the exporter defines"


def promql_check(exprs: list[str], tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: apt-get install prometheus (scripts/test does)"
    rules = {"groups": [{"name": "dashboards", "rules": [
        {"record": f"dashboard:check_{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_target_promql_rule_every_query_parses(tmp_path: Path) -> None:
    exprs = [substitute(t["expr"]) for p in DASHBOARDS for _, t in targets(load(p))]
    assert len(exprs) > 40
    promql_check(exprs, tmp_path)


def test_template_label_promql_rule_every_variable_query_parses(tmp_path: Path) -> None:
    selectors = []
    for path in DASHBOARDS:
        for var in load(path)["templating"]["list"]:
            if var["type"] == "query":
                match = re.fullmatch(r"label_values\((.+),\s*([a-zA-Z_]+)\)", var["definition"])
                assert match, var["definition"]
                assert var["query"]["query"] == var["definition"]
                selectors.append(substitute(match.group(1)))
    promql_check(selectors, tmp_path)


def test_provisioning_files() -> None:
    dash = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "jobqueue.yml").read_text())
    assert dash["apiVersion"] == 1
    (provider,) = dash["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]
    assert provider["allowUiUpdates"] is False
    assert not (provider["options"].get("foldersFromFilesStructure") and (provider.get("folder")
                                                                          or provider.get("folderUid")))
    sources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert sources["apiVersion"] == 1
    assert [d["type"] for d in sources["datasources"]] == ["prometheus"]


# Metrics deliberately on no dashboard, with the reason.
NOT_SHOWN = {
    "jobqueue_health_quiet_hours": "a config fact (the ops shim's inQuietHours), not a series to watch",
    "jobqueue_worker_expected_interval_seconds": "configuration that the WorkerStale alert reads",
    "jobqueue_exporter_shard_ordinal": "deployment facts, for a sharding-mismatch alert, not series to watch",
    "jobqueue_exporter_total_shards": "deployment facts, for a sharding-mismatch alert, not series to watch",
    "jobqueue_exporter_config_last_reload_successful": "read by the JobQueueConfigReloadFailed alert",
    "jobqueue_exporter_config_last_reload_success_timestamp_seconds": "lifecycle fact, read next to _successful",
    "jobqueue_source_interval_seconds": "configuration that the staleness alert reads, not a series to watch",
    "jobqueue_oldest_age_seconds": "the dashboards show time() - jobqueue_oldest_timestamp_seconds, which keeps "
                                   "counting between collections",
}


def test_every_metric_of_the_catalogue_is_on_a_dashboard() -> None:
    """A new metric gets a panel (or a reason here), so the per-backend dashboards keep up with the sources."""
    text = "".join(p.read_text() for p in DASHBOARDS)
    missing = [m.name for m in catalogue()
               if re.search(rf"\b{m.name}{'_total' if m.type == 'counter' else ''}\b", text) is None]
    assert sorted(missing) == sorted(NOT_SHOWN)


def build_module() -> Any:
    spec = importlib.util.spec_from_file_location("grafana_build", GRAFANA / "build.py")
    assert spec and spec.loader
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    return build


def test_every_recording_rule_a_dashboard_reads_is_in_the_bundled_rules() -> None:
    rules = yaml.safe_load((ROOT / "alerts" / "jobqueue.rules.yml").read_text())
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    read = {name for p in DASHBOARDS for _, t in targets(load(p)) for name in re.findall(r"jobqueue:[\w:]+", t["expr"])}
    assert {"jobqueue:slo_latency:budget_remaining_ratio", "jobqueue:threshold:slo_latency_target"} <= read
    assert read <= recorded, read - recorded


def test_the_knobs_of_the_alerts_config_reach_the_dashboards(tmp_path: Path) -> None:
    """One config file adapts rules and dashboards alike: the job selector, thresholds, SLO windows."""
    config = tmp_path / "my.yml"
    config.write_text(yaml.safe_dump({
        "job_selector": 'job="queues-prod"',
        "thresholds": {"queue_depth_warning": 40, "worker_saturation_ratio": 0.8},
        "slo": {"target": 0.995, "page_fast": {"burn_rate": 10, "long": "2h", "short": "10m"}},
    }))
    assert build_module().main(["--config", str(config), "--out", str(tmp_path / "out")]) == 0
    boards = {p.name: json.loads(p.read_text()) for p in (tmp_path / "out").glob("*.json")}
    assert sorted(boards) == sorted(UIDS)
    for board in boards.values():
        (job,) = [v for v in board["templating"]["list"] if v["name"] == "job"]
        assert job["definition"] == 'label_values(jobqueue_exporter_build_info{job="queues-prod"}, job)'
    panels_ = {p["title"]: p for p in panels(boards["redis.json"])}
    steps = panels_["Waiting items"]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None, 40, 1000]
    steps = panels_["Worker utilisation"]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None, 0.8]
    overview = {p["title"]: p for p in panels(boards["overview.json"])}
    burn = overview["Burn rate (2h)"]
    assert "jobqueue:slo_latency:error_ratio2h" in burn["targets"][0]["expr"]
    assert [s["value"] for s in burn["fieldConfig"]["defaults"]["thresholds"]["steps"]] == [None, 6, 10]
    target = overview["Collections within objective (2h)"]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in target] == [None, 0.995]
