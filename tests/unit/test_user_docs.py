"""What a user of the repository reads refers only to what the repository holds: no path outside it
(the project's working notes are not shipped), every relative link resolves, and the port is 9312."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
USER_FILES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "exporter" / "web" / "openapi.json",
              *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "deploy").rglob("*.yaml"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_no_path_outside_the_repository() -> None:
    for path in USER_FILES:
        text = path.read_text()
        assert "shared/" not in text, f"{path.relative_to(ROOT)} names shared/"
        for target in LINK.findall(text):
            if "://" in target or target.startswith("mailto:"):
                continue
            resolved = (path.parent / target).resolve()
            assert resolved.is_relative_to(ROOT), f"{path.relative_to(ROOT)} links outside the repo: {target}"
            assert resolved.exists(), f"{path.relative_to(ROOT)} links to a missing file: {target}"


def test_docs_use_the_exporters_port() -> None:
    for path in USER_FILES:
        assert "9839" not in path.read_text(), f"{path.relative_to(ROOT)} uses port 9839; the exporter's is 9312"
