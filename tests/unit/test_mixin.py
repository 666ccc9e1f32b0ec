"""mixin/: the monitoring mixin renders (with the `jsonnet` package, as `jsonnet -J vendor` would) exactly
the bundled rules and dashboards, and with a user's `_config` exactly what alerts/build.py and
grafana/build.py render for the same knobs; the committed generated files are current."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import _jsonnet
import yaml

ROOT = Path(__file__).resolve().parents[2]
MIXIN = ROOT / "mixin"


def module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"test_mixin_{path.parent.name}", path)
    assert spec and spec.loader
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def render(override: str = "{}") -> dict[str, Any]:
    """The mixin as a user imports it, with `override` added, evaluated by the real jsonnet."""
    snippet = f"""
local mixin = (import 'mixin.libsonnet') + {override};
{{rules: mixin.prometheusRules, alerts: mixin.prometheusAlerts, dashboards: mixin.grafanaDashboards}}
"""
    result: dict[str, Any] = json.loads(_jsonnet.evaluate_snippet("test.jsonnet", snippet, jpathdir=[str(MIXIN)]))
    return result


def test_generated_files_are_current() -> None:
    build = module(MIXIN / "build.py")
    assert (MIXIN / "generated.libsonnet").read_text() == build.rendered(), "run python3 mixin/build.py"
    assert (MIXIN / "config.libsonnet").read_text() == build.config_libsonnet(), "run python3 mixin/build.py"


def test_default_config_renders_the_bundled_rules_and_dashboards() -> None:
    mixin = render()
    bundled = yaml.safe_load((ROOT / "alerts" / "jobqueue.rules.yml").read_text())["groups"]
    assert mixin["rules"]["groups"] + mixin["alerts"]["groups"] == bundled
    assert all("alert" not in r for g in mixin["rules"]["groups"] for r in g["rules"])
    assert all(any("alert" in r for r in g["rules"]) for g in mixin["alerts"]["groups"])
    names = [g["name"] for g in bundled]
    assert len(names) == len(set(names))  # rules + alerts can share one PrometheusRule or file
    boards = {p.name: json.loads(p.read_text()) for p in sorted((ROOT / "grafana" / "dashboards").glob("*.json"))}
    assert mixin["dashboards"] == boards


def test_a_users_config_renders_what_the_generators_render_for_the_same_knobs() -> None:
    alerts = module(ROOT / "alerts" / "build.py")
    grafana = module(ROOT / "grafana" / "build.py")
    knobs = alerts.load()
    knobs["job_selector"] = 'job="jq", namespace="ops"'
    knobs["runbook_base_url"] = "https://git.example.com/jq/blob/v1/"
    knobs["thresholds"] = {**knobs["thresholds"], "queue_depth_warning": 50, "failure_ratio_rise_factor": 3,
                           "worker_saturation_ratio": 0.75}
    mixin = render("""{_config+:: {
      job_selector: 'job="jq", namespace="ops"',
      runbook_base_url: 'https://git.example.com/jq/blob/v1/',
      thresholds+: {queue_depth_warning: 50, failure_ratio_rise_factor: 3, worker_saturation_ratio: 0.75},
    }}""")
    expected = yaml.safe_load(alerts.render(knobs))["groups"]
    assert mixin["rules"]["groups"] + mixin["alerts"]["groups"] == expected
    assert mixin["dashboards"] == {f"{name}.json": make(knobs).json() for name, make in grafana.BOARDS.items()}
    # and it did change something: the threshold, the description quoting it, the runbook links
    rules = [r for g in expected for r in g["rules"]]
    assert {"record": "jobqueue:threshold:queue_depth_warning", "expr": "vector(50)"} in rules
    assert any("more than 3 times" in r.get("annotations", {}).get("description", "") for r in rules)
    assert all(r["annotations"]["runbook_url"].startswith("https://git.example.com/jq/blob/v1/docs/runbook.md#")
               for r in rules if "alert" in r)


def test_jsonnet_bundler_can_install_it() -> None:
    jsonnetfile = json.loads((MIXIN / "jsonnetfile.json").read_text())
    assert jsonnetfile["version"] == 1 and jsonnetfile["dependencies"] == []
    # everything mixin.libsonnet imports lives in mixin/, the directory jb vendors
    for name in ("mixin.libsonnet", "config.libsonnet", "generated.libsonnet"):
        assert (MIXIN / name).is_file()


def test_the_readme_example_renders() -> None:
    import re

    readme = (ROOT / "README.md").read_text()
    example = re.search(r"```jsonnet\n(.*?)```", readme, re.S)
    assert example is not None
    snippet = example.group(1).replace("jobqueue-exporter-mixin/mixin.libsonnet", "mixin.libsonnet")
    out = json.loads(_jsonnet.evaluate_snippet("readme.jsonnet", snippet, jpathdir=[str(MIXIN)]))
    groups = yaml.safe_load(out["jobqueue-rules.yaml"])["groups"]
    bundled = yaml.safe_load((ROOT / "alerts" / "jobqueue.rules.yml").read_text())["groups"]
    assert [g["name"] for g in groups] == [g["name"] for g in bundled]
    assert {"record": "jobqueue:threshold:queue_depth_warning", "expr": "vector(50)"} in groups[0]["rules"]
    assert sorted(out) == ["dashboards/host.json", "dashboards/nats.json", "dashboards/overview.json",
                           "dashboards/postgres.json", "dashboards/redis.json", "jobqueue-rules.yaml"]
