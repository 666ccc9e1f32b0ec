"""Files source on temporary directories: exact counts, integrity before and after a change."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from exporter.scheduler import Scheduler
from tests.conftest import samples


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def config(root: Path, env_name: str) -> str:
    return f"""
sources:
  - name: media
    type: files
    checks:
      pipeline:
        scripts_ready: {{directory: "{root}/scripts"}}
        scripts_count: {{glob: "{root}/scripts/*.py"}}
        all_files: {{glob: "{root}/scripts/**/*", recursive: true}}
        processors:
          asr: {{path: "{root}/scripts/asr.py"}}
          yolo: {{path: "{root}/scripts/yolo.py"}}
        models_ready: {{directory: "{root}/models"}}
        scripts_integrity: {{manifest: "{root}/SHA256SUMS", base: "{root}/scripts"}}
        ffmpeg: {{binary: sh}}
        missing_tool: {{binary: jq-no-such-binary-{os.getpid()}}}
      integrations:
        tmdb:
          api_key_configured: {{env: {env_name}}}
          enabled: {{const: false}}
          api_reachable: {{const: null}}
      lost_manifest: {{manifest: "{root}/nope.sha256"}}
"""


async def test_checks_exact_values_and_integrity_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        make_scheduler: Callable[[str], Scheduler]) -> None:
    scripts = tmp_path / "scripts"
    (scripts / "lib").mkdir(parents=True)
    files = {"asr.py": b"print('asr')\n", "ocr.py": b"print('ocr')\n", "cut.py": b"print('cut')\n",
             "lib/util.txt": b"x"}
    for name, data in files.items():
        (scripts / name).write_bytes(data)
    manifest = "".join(f"{sha(data)}  {name}\n" for name, data in files.items())
    (tmp_path / "SHA256SUMS").write_text(manifest + f"{sha(b'gone')}  gone.py\nbroken line\n")
    env_name = f"JQTEST_SECRET_{os.getpid()}"
    monkeypatch.setenv(env_name, "s3cr3t-value")

    scheduler = make_scheduler(config(tmp_path, env_name))
    await scheduler.collect_once()
    reading = scheduler.snapshot.reading("media")
    assert reading is not None
    pipeline = reading.details["pipeline"]
    assert pipeline == {"scripts_ready": True, "scripts_count": 3, "all_files": 4,
                        "processors": {"asr": True, "yolo": False}, "models_ready": False,
                        "scripts_integrity": {"matched": 4, "total": 5, "ok": False},
                        "ffmpeg": True, "missing_tool": False}
    assert reading.details["integrations"] == {"tmdb": {"api_key_configured": True, "enabled": False,
                                                        "api_reachable": None}}
    assert reading.details["lost_manifest"] == {"matched": 0, "total": 0, "ok": False, "error": "manifest missing"}
    assert reading.details["checks"]["pipeline.processors.asr"] is True
    assert reading.malformed == 1
    values = samples(scheduler)
    assert values['jobqueue_files_integrity_matched{source="media",check="pipeline.scripts_integrity"}'] == 4
    assert values['jobqueue_files_integrity_expected{source="media",check="pipeline.scripts_integrity"}'] == 5
    assert values['jobqueue_files_matched{source="media",check="pipeline.scripts_count"}'] == 3
    assert values['jobqueue_files_check_ok{source="media",check="pipeline.scripts_ready",kind="directory"}'] == 1
    assert values['jobqueue_files_check_ok{source="media",check="pipeline.processors.yolo",kind="path"}'] == 0
    assert values['jobqueue_files_check_ok{source="media",check="pipeline.missing_tool",kind="binary"}'] == 0
    assert values['jobqueue_files_check_ok{source="media",check="integrations.tmdb.api_key_configured",'
                  'kind="env"}'] == 1
    body = scheduler.exposition.body("text").decode()
    assert "s3cr3t-value" not in body and "s3cr3t-value" not in repr(reading.details)

    # same size, new content and mtime: rehashed, so the file no longer matches
    target = scripts / "ocr.py"
    target.write_bytes(b"print('OCR')\n")
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 1_000_000_000))
    (scripts / "gone.py").write_bytes(b"gone")
    monkeypatch.delenv(env_name)
    (tmp_path / "models").mkdir()
    await scheduler.collect_once()
    reading = scheduler.snapshot.reading("media")
    assert reading is not None
    assert reading.details["pipeline"]["scripts_integrity"] == {"matched": 4, "total": 5, "ok": False}
    assert reading.details["pipeline"]["scripts_count"] == 4
    assert reading.details["pipeline"]["models_ready"] is True
    assert reading.details["integrations"]["tmdb"]["api_key_configured"] is False

    target.write_bytes(files["ocr.py"])
    await scheduler.collect_once()
    reading = scheduler.snapshot.reading("media")
    assert reading is not None
    assert reading.details["pipeline"]["scripts_integrity"] == {"matched": 5, "total": 5, "ok": True}
    values = samples(scheduler)
    assert values['jobqueue_files_check_ok{source="media",check="pipeline.scripts_integrity",'
                  'kind="manifest"}'] == 1
