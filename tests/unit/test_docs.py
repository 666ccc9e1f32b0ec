"""Documentation that is generated from the code must match it, and the packaging must agree."""

from __future__ import annotations

import re
from pathlib import Path

from exporter.config import DEFAULT_PORT
from exporter.docs import render_readme

ROOT = Path(__file__).resolve().parents[2]


def test_readme_metric_catalogue_is_current() -> None:
    readme = (ROOT / "README.md").read_text()
    assert render_readme(readme) == readme, "run `python -m exporter.docs` to regenerate the metric catalogue"


def test_readme_quick_start_commands_are_the_ci_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "scripts/test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.strip().splitlines()[-1] == "exec scripts/test"


def test_dockerfile_runs_unprivileged_on_the_default_port_with_a_healthcheck() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER 10001$", dockerfile, re.M)
    assert re.search(rf"^EXPOSE {DEFAULT_PORT}$", dockerfile, re.M)
    # the HEALTHCHECK follows the configured port (exporter.healthcheck, tested in test_container.py)
    assert 'CMD ["python", "-m", "exporter.healthcheck"]' in dockerfile
    assert f"{DEFAULT_PORT}/healthz" not in dockerfile
    assert dockerfile.count("FROM ") == 2  # multi-stage


def test_example_config_listens_on_the_default_port() -> None:
    assert f'listen: "0.0.0.0:{DEFAULT_PORT}"' in (ROOT / "config.example.yaml").read_text()


def test_example_config_is_valid_without_any_environment() -> None:
    from exporter.config import load_config

    config = load_config(ROOT / "config.example.yaml", env={})
    assert [s.type for s in config.sources] == ["system", "redis", "nats", "files", "postgres"]
    assert {s.name for s in config.systems} == {"allegro", "jobs", "media", "email", "plannings"}
