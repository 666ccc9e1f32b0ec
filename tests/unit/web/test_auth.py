"""Tokens and API keys: every way to give a secret, roles, constant-time lookup, the rate limit."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from pydantic import ValidationError

from exporter.health.config import TokenConfig
from exporter.web.auth import Authenticator, Credential, RateLimiter


def token(**fields: object) -> TokenConfig:
    return TokenConfig.model_validate({"name": "t", **fields})


class TestAuthenticator:
    def test_every_secret_form(self, tmp_path: Path) -> None:
        (tmp_path / "secret").write_text("from-file\n")
        auth = Authenticator([
            TokenConfig.model_validate({"name": "inline", "token": "inline-secret", "roles": ["ops"]}),
            TokenConfig.model_validate({"name": "env", "token_env": "MY_TOKEN", "roles": ["super_admin"]}),
            TokenConfig.model_validate({"name": "file", "token_file": str(tmp_path / "secret")}),
            TokenConfig.model_validate({"name": "hash", "sha256": hashlib.sha256(b"hashed").hexdigest(),
                                        "roles": ["viewer"], "tenants": ["t1"], "permissions": ["health:read"]}),
        ], environ={"MY_TOKEN": "env-secret"})
        assert auth.check("inline-secret") == Credential("inline", frozenset({"ops"}))
        assert auth.check("env-secret").name == "env"
        assert auth.check("from-file").name == "file"
        assert auth.check("hashed") == Credential("hash", frozenset({"viewer"}), frozenset({"t1"}),
                                                  frozenset({"health:read"}))
        assert auth.check("nope") is None
        assert auth.check("") is None

    def test_an_unset_variable_switches_the_token_off(self) -> None:
        auth = Authenticator([token(token_env="UNSET_VAR", roles=["ops"])], environ={})
        assert auth.check("") is None
        assert auth.has_role("ops") is False

    @pytest.mark.parametrize("fields,message", [
        ({}, "give exactly one of token, token_env, token_file, sha256 (got none)"),
        ({"token": "a", "token_env": "B"}, "give exactly one of token, token_env, token_file, sha256"),
        ({"sha256": "abc"}, "sha256 must be 64 hex digits"),
        ({"token_file": "/nonexistent/secret"}, "is not a readable file"),
        ({"token": "a", "roles": ["root"]}, "Input should be 'viewer', 'super_admin' or 'ops'"),
    ])
    def test_bad_token_configs(self, fields: dict[str, object], message: str) -> None:
        with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
            token(**fields)

    def test_secrets_never_show_in_reprs(self) -> None:
        conf = token(token="hunter2")
        assert "hunter2" not in repr(conf) and "hunter2" not in str(conf.model_dump())

    @pytest.mark.parametrize("roles,tenants,tenant,allowed", [
        ({"super_admin"}, set(), "any", True), ({"viewer"}, {"t1"}, "t1", True), ({"viewer"}, {"t1"}, "t2", False),
        ({"viewer"}, {"*"}, "t2", True), ({"ops"}, {"t1"}, "t1", False),
    ])
    def test_can_view(self, roles: set[str], tenants: set[str], tenant: str, allowed: bool) -> None:
        assert Credential("c", frozenset(roles), frozenset(tenants)).can_view(tenant) is allowed


class TestRateLimiter:
    def test_bucket_refills_with_time(self) -> None:
        now = [0.0]
        limiter = RateLimiter(2, 10.0, clock=lambda: now[0])
        assert [limiter.allow("a"), limiter.allow("a"), limiter.allow("a")] == [True, True, False]
        assert limiter.allow("b") is True
        assert limiter.retry_after("a") == 5
        now[0] = 5.0
        assert limiter.allow("a") is True
        assert limiter.allow("a") is False
