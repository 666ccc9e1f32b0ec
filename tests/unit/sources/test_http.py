"""HTTP probe judgement and config on literal inputs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from exporter.sources.http import HttpConfig, judge


def cfg(**kw: object) -> HttpConfig:
    return HttpConfig.model_validate({"name": "api", "type": "http", "url": "http://127.0.0.1/health", **kw})


def test_status_codes() -> None:
    assert judge(200, b"", cfg()) == (True, None, None)
    assert judge(204, b"", cfg()) == (True, None, None)
    assert judge(503, b"", cfg()) == (False, "status 503", None)
    assert judge(503, b"", cfg(expect_status=[200, 503])) == (True, None, None)


def test_json_expectation_is_typed() -> None:
    spec = cfg(expect_json={"field": "db.status", "values": ["ok", "healthy"]})
    assert judge(200, b'{"db": {"status": "healthy"}}', spec) == (True, None, "healthy")
    assert judge(200, b'{"db": {"status": "down"}}', spec) == (False, "json field db.status is 'down'", "down")
    assert judge(200, b'{"db": {}}', spec) == (False, "json field db.status is None", None)
    assert judge(200, b"<html>", spec) == (False, "body is not JSON", None)
    flag = cfg(expect_json={"field": "ready", "values": [True]})
    assert judge(200, b'{"ready": true}', flag)[0] is True
    assert judge(200, b'{"ready": 1}', flag)[0] is False
    number = cfg(expect_json={"field": "n", "values": [1]})
    assert judge(200, b'{"n": 1.0}', number)[0] is True
    assert judge(200, b'{"n": "1"}', number)[0] is False


def test_config_rules() -> None:
    assert cfg().tls_verify is True
    with pytest.raises(ValidationError, match="String should match pattern"):
        cfg(url="ftp://x")
    with pytest.raises(ValidationError, match="needs a body"):
        cfg(method="HEAD", expect_json={"field": "a", "values": [1]})
    with pytest.raises(ValidationError, match="ca_file is only used"):
        cfg(tls_verify=False, ca_file="/etc/ssl/certs/ca-certificates.crt")
    with pytest.raises(ValidationError, match="Input should be 'GET' or 'HEAD'"):
        cfg(method="POST")
