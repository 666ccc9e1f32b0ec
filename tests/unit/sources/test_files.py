"""Files source parsing and config on literal inputs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from exporter.sources.files import DirectoryCheck, FilesConfig, GlobCheck, parse_manifest

H1, H2 = "a" * 64, "B" * 64


def test_parse_manifest_reads_sha256sum_lines() -> None:
    text = f"# scripts\n{H1}  asr.py\n{H2} *bin/model.onnx\n\nnot a line\n{H1}  with space.py\r\n"
    entries, bad = parse_manifest(text)
    assert entries == [(H1, "asr.py"), (H2.lower(), "bin/model.onnx"), (H1, "with space.py")]
    assert bad == 1


def test_tree_config() -> None:
    config = FilesConfig.model_validate({"name": "media", "type": "files", "checks": {
        "pipeline": {"scripts_ready": {"directory": "/opt/s"}, "scripts_count": {"glob": "/opt/s/*.py"},
                     "processors": {"asr": {"path": "/opt/s/asr.py"}}},
        "tmdb": {"api_key_configured": {"env": "TMDB_API_KEY"}, "enabled": {"const": False}}}})
    pipeline = config.checks["pipeline"]
    assert pipeline["scripts_ready"] == DirectoryCheck(directory="/opt/s")
    assert pipeline["scripts_count"] == GlobCheck(glob="/opt/s/*.py")
    with pytest.raises(ValidationError, match=r"checks\.a\.directory\.glob"):
        FilesConfig.model_validate({"name": "f", "type": "files", "checks": {"a": {"directory": "/x", "glob": "*"}}})
    with pytest.raises(ValidationError, match="String should match pattern"):
        FilesConfig.model_validate({"name": "f", "type": "files", "checks": {"a": {"env": "NOT-A-NAME"}}})
    with pytest.raises(ValidationError):
        FilesConfig.model_validate({"name": "f", "type": "files", "checks": {}})
