"""The landing page's list of endpoints covers every documented GET path exactly once, in user words."""

from __future__ import annotations

from exporter.web import endpoints as landing
from exporter.web.openapi import document
from exporter.web.shims import SHIMS


def test_every_documented_path_has_a_description_for_users() -> None:
    described = [*landing.OWN, *(e for entry in SHIMS for e in entry.load().endpoints)]
    listed = [p for p, _ in described]
    assert len(listed) == len(set(listed))
    assert set(listed) == set(document()["paths"]) - {"/", "/-/reload"}
    for _, text in described:
        assert text.endswith(".") and "seed" not in text.lower() and "shared/" not in text


def test_each_shim_describes_exactly_its_own_paths() -> None:
    for shim in (entry.load() for entry in SHIMS):
        assert [p for p, _ in shim.endpoints] == list(shim.paths), shim.key
