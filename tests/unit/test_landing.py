"""The landing page's list of endpoints covers every documented GET path exactly once, in user words."""

from __future__ import annotations

from exporter.web import endpoints as landing
from exporter.web.openapi import document


def test_every_documented_path_has_a_description_for_users() -> None:
    listed = [p for p, _ in landing.OWN] + [p for paths in landing.SHIMS.values() for p, _ in paths]
    assert len(listed) == len(set(listed))
    assert set(listed) == set(document()["paths"]) - {"/", "/-/reload"}
    for _, text in [*landing.OWN, *(e for paths in landing.SHIMS.values() for e in paths)]:
        assert text.endswith(".") and "seed" not in text.lower() and "shared/" not in text


def test_shim_keys_are_the_config_keys() -> None:
    from exporter.web.shims import SHIMS

    assert set(landing.SHIMS) == {shim.key for shim in SHIMS}
