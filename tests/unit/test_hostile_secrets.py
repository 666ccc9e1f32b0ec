"""Secrets read from files or the environment lose surrounding whitespace (issue 15, item 4): a token
file written with CRLF endings must match the token a client sends, not one with a stray CR."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from exporter.health.config import TokenConfig
from exporter.sources.base import read_secret
from exporter.web.auth import Authenticator


def test_token_file_with_crlf_and_padded_env_value(tmp_path: Path) -> None:
    (tmp_path / "token").write_bytes(b"  file-token\r\n")
    auth = Authenticator([
        TokenConfig.model_validate({"name": "file", "token_file": str(tmp_path / "token"), "roles": ["ops"]}),
        TokenConfig.model_validate({"name": "env", "token_env": "TOKEN", "roles": ["ops"]}),
    ], environ={"TOKEN": "env-token\r\n"})
    assert auth.check("file-token").name == "file"  # type: ignore[union-attr]  # None fails the test anyway
    assert auth.check("env-token").name == "env"  # type: ignore[union-attr]  # None fails the test anyway
    assert auth.check("file-token\r") is None


def test_source_secret_files_are_stripped(tmp_path: Path) -> None:
    (tmp_path / "pw").write_bytes(b"s3cret\r\n")
    assert read_secret(None, tmp_path / "pw") == "s3cret"
    assert read_secret(SecretStr("inline"), None) == "inline"
