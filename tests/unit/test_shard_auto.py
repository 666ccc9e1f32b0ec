"""`shard: auto`: the ordinal from the pod name, N from JOBQUEUE_EXPORTER_SHARDS, errors that say what to set."""

from __future__ import annotations

import pytest

from exporter.config import ConfigError, parse_config

TEXT = "shard: auto\nsources:\n  - {name: host, type: system}\n"


@pytest.mark.parametrize(("host", "shards", "expected"), [
    ("jobqueue-exporter-shard-0", "3", "0/3"),
    ("jobqueue-exporter-shard-2", "3", "2/3"),
    ("exporter-11", "12", "11/12"),
])
def test_ordinal_and_total(host: str, shards: str, expected: str) -> None:
    env = {"HOSTNAME": host, "JOBQUEUE_EXPORTER_SHARDS": shards}
    assert parse_config(TEXT, "c.yaml", env).shard == expected


@pytest.mark.parametrize(("env", "message"), [
    ({"HOSTNAME": "exporter-7d9f8c6b5-x2x4q", "JOBQUEUE_EXPORTER_SHARDS": "3"},
     "c.yaml:1: shard: shard auto needs HOSTNAME ending in -<ordinal> (a StatefulSet pod), "
     "got 'exporter-7d9f8c6b5-x2x4q'"),
    ({"HOSTNAME": "exporter-1"},
     "c.yaml:1: shard: shard auto needs JOBQUEUE_EXPORTER_SHARDS set to the number of replicas, got ''"),
    ({"HOSTNAME": "exporter-3", "JOBQUEUE_EXPORTER_SHARDS": "3"},
     "c.yaml:1: shard: shard must be i/N with 0 <= i < N, got '3/3'"),
])
def test_errors_name_what_to_set(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(TEXT, "c.yaml", env)
    assert err.value.lines() == [message]


def test_explicit_shards_are_unchanged() -> None:
    assert parse_config(TEXT.replace("auto", "1/4"), "c.yaml", {}).shard == "1/4"
