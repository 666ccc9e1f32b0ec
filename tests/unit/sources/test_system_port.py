"""Seed 001's component registry: the example's `nats-server` entry watched port 4222 whatever NATS_URL
said (issue 21 item 10); a process entry's `port` may be the server's URL, and takes its port."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.config import parse_config
from exporter.sources.system import ProcessSpec, SystemConfig, port_of_url

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(("url", "port"), [
    ("nats://127.0.0.1:4333", 4333), ("nats://user:secret@nats.svc:7422", 7422), ("nats://nats", 4222),
    ("tls://a:4443,tls://b:4443", 4443), ("redis://cache", 6379), ("postgresql://db:6432/x", 6432),
])
def test_port_of_url(url: str, port: int) -> None:
    assert port_of_url(url) == port
    assert ProcessSpec(name="s", process="nats-server", port=url).port == port  # type: ignore[arg-type]


def test_a_url_without_a_port_or_a_known_scheme_is_refused_without_its_password() -> None:
    text = "sources: [{name: host, type: system, processes: [{name: s, port: 'foo://u:hunter2@host'}]}]\n"
    with pytest.raises(Exception, match="names no port") as err:
        parse_config(text, "my.yaml", {})
    assert "hunter2" not in str(err.value) and "sources[0].processes[0].port" in str(err.value)


@pytest.mark.parametrize(("env", "port"), [({}, 4222), ({"NATS_URL": "nats://127.0.0.1:4333"}, 4333)])
def test_the_example_registry_follows_nats_url(env: dict[str, str], port: int) -> None:
    config = parse_config((ROOT / "config.example.yaml").read_text(), "config.example.yaml", env)
    (host,) = [s for s in config.sources if isinstance(s, SystemConfig)]
    (nats,) = [p for p in host.processes if p.name == "nats-server"]
    assert nats.port == port
