"""Every printed URL loses its whole userinfo, whatever the userinfo holds (review3's cases, issue 20 item 9)."""

from __future__ import annotations

import json

import pytest

from exporter.redact import redact_text, redact_url, redact_url_list
from exporter.sources.redis.connect import parse_endpoint


@pytest.mark.parametrize(("url", "shown"), [
    ("nats://tok/en@host:4222", "nats://***@host:4222"),          # a token with a `/` and no `:`
    ("redis://acluser/x@host:6379/0", "redis://***@host:6379/0"),
    ("nats://u:pa,ss@h1:4222", "nats://***@h1:4222"),              # a comma in the password
    ("redis://:pa/ss@h:1/0", "redis://***@h:1/0"),
    ("redis://h:6379/0", "redis://h:6379/0"),
])
def test_the_whole_userinfo_is_hidden_in_urls_and_text(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert redact_text(f"cannot connect to {url}: refused") == f"cannot connect to {shown}: refused"
    assert redact_url_list(url) == shown


def test_quotes_in_a_password_inside_json_log_lines() -> None:
    line = json.dumps({"url": 'redis://u:pa"ss@host:1', "k": 1})
    assert "pa" not in redact_text(line) and "redis://***@host:1" in redact_text(line)


def test_a_list_is_split_only_where_a_url_starts() -> None:
    assert redact_url_list("nats://a@h1,nats://b:c,d@h2") == "nats://***@h1,nats://***@h2"
    assert redact_url("ss@h1:4222") == "***@h1:4222"  # the tail of a list cut inside a password


def test_a_redis_user_with_a_slash_is_read_whole() -> None:
    endpoint = parse_endpoint("redis://acluser/x@host:6379/0")
    assert (endpoint.username, endpoint.host, endpoint.port, endpoint.db) == ("acluser/x", "host", 6379, 0)
