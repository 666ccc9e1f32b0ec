"""Config loading: shape, interpolation, secrets and error messages that name file, key path and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.config import DEFAULT_PORT, ConfigError, default_config, load_config, parse_config

VALID = """
listen: "127.0.0.1:9999"
sources:
  - name: r
    type: redis
    url: ${REDIS_URL:-redis://127.0.0.1:6379/3}
    interval: 30s
    timeout: 500ms
    queues:
      - {layout: laravel, queues: [default, high]}
"""


def errors(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "cfg.yaml", env or {})
    return info.value.lines()


class TestParseConfig:
    def test_valid_config_gets_defaults_and_durations(self) -> None:
        config = parse_config(VALID, "cfg.yaml", {})
        source = config.sources[0]
        assert config.listen == "127.0.0.1:9999"
        assert source.url == "redis://127.0.0.1:6379/3"
        assert (source.interval, source.timeout) == (30.0, 0.5)
        assert source.queues[0].queues == ["default", "high"]
        assert source.queues[0].prefix == "laravel-database-"

    def test_environment_wins_over_default(self) -> None:
        config = parse_config(VALID, "cfg.yaml", {"REDIS_URL": "redis://cache:6380/1"})
        assert config.sources[0].url == "redis://cache:6380/1"

    def test_unset_variable_without_default_names_key_and_line(self) -> None:
        text = "sources:\n  - name: r\n    type: redis\n    url: ${NOPE}\n    queues: [{layout: laravel}]\n"
        assert errors(text) == ["cfg.yaml:4: sources[0].url: environment variable NOPE is not set"]

    def test_double_dollar_is_a_literal_dollar(self) -> None:
        text = "sources:\n  - name: r\n    type: redis\n    username: a$$b\n    queues: [{layout: laravel}]\n"
        assert parse_config(text, "c", {}).sources[0].username == "a$b"

    def test_misspelled_keys_are_errors_with_path_and_line(self) -> None:
        text = (
            "sources:\n"
            "  - name: r\n"
            "    type: redis\n"
            "    intervall: 10s\n"
            "    queues:\n"
            "      - layout: list\n"
            "        name: q\n"
            "        kee: x\n"
        )
        assert errors(text) == [
            "cfg.yaml:6: sources[0].queues[0].key: required key is missing",
            "cfg.yaml:8: sources[0].queues[0].kee: unknown key (misspelled?)",
            "cfg.yaml:4: sources[0].intervall: unknown key (misspelled?)",
        ]

    def test_unknown_source_type_lists_the_known_ones(self) -> None:
        (line,) = errors("sources:\n  - {name: x, type: kafka}\n")
        assert line.startswith("cfg.yaml:2: sources[0]: ")
        assert "'kafka'" in line and "'redis'" in line and "'system'" in line

    def test_bad_layout_name(self) -> None:
        (line,) = errors("sources:\n  - name: r\n    type: redis\n    queues: [{layout: kue}]\n")
        assert line.startswith("cfg.yaml:4: sources[0].queues[0]: ") and "'kue'" in line

    @pytest.mark.parametrize(
        ("snippet", "message"),
        [
            ("    interval: 5s\n    timeout: 10s\n", "sources[0]: timeout (10.0s) must not exceed interval (5.0s)"),
            ("    interval: soon\n", "sources[0].interval: not a duration: 'soon' (use e.g. 500ms, 15s, 2m)"),
            ("    password: a\n    password_file: /etc/hostname\n",
             "sources[0]: give either password or password_file"),
            ("    password_file: /nonexistent/secret\n",
             "sources[0]: password_file '/nonexistent/secret' is not a readable file"),
        ],
    )
    def test_rules_over_field_pairs(self, snippet: str, message: str) -> None:
        text = "sources:\n  - name: r\n    type: redis\n" + snippet + "    queues: [{layout: laravel}]\n"
        (line,) = errors(text)
        assert message in line

    def test_duplicate_source_names(self) -> None:
        text = "sources:\n  - {name: h, type: system}\n  - {name: h, type: system}\n"
        assert errors(text) == ["cfg.yaml: (top level): two sources are named 'h'"]

    @pytest.mark.parametrize("listen", ["9000", "host:", "h:99999", "h:port"])
    def test_bad_listen_address(self, listen: str) -> None:
        (line,) = errors(f"listen: '{listen}'\nsources: [{{name: h, type: system}}]\n")
        assert line.startswith("cfg.yaml:1: listen: listen must be HOST:PORT")

    def test_not_yaml(self) -> None:
        (line,) = errors("sources: [unclosed\n")
        assert line.startswith("cfg.yaml:2: (top level): not valid YAML")

    def test_no_sources(self) -> None:
        assert errors("listen: ':9000'\n") == ["cfg.yaml:1: sources: required key is missing"]

    def test_tenant_template_needs_tenants(self) -> None:
        text = "sources:\n  - name: r\n    type: redis\n    queues: [{layout: list, name: e, key: 't_{tenant}:e'}]\n"
        (line,) = errors(text)
        assert line == "cfg.yaml:2: sources[0]: queues[0] uses {tenant} in a key but the source has no `tenants`"


class TestLoadConfig:
    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError) as info:
            load_config(tmp_path / "absent.yaml")
        assert info.value.lines() == [f"{tmp_path / 'absent.yaml'}: (top level): cannot read the file: "
                                      "No such file or directory"]

    def test_password_file_is_read_at_connect_time_not_logged(self, write_config) -> None:
        secret = write_config("s3cret\n", "secret")
        path = write_config(
            f"sources:\n  - name: r\n    type: redis\n    password_file: {secret}\n    queues: [{{layout: laravel}}]\n"
        )
        config = load_config(path)
        assert "s3cret" not in repr(config)
        assert str(config.sources[0].password_file) == str(secret)

    def test_inline_secret_is_masked_in_repr(self) -> None:
        text = "sources:\n  - name: r\n    type: redis\n    password: ${P}\n    queues: [{layout: laravel}]\n"
        config = parse_config(text, "c", {"P": "hunter2"})
        assert "hunter2" not in repr(config)
        assert config.sources[0].password.get_secret_value() == "hunter2"


def test_embedded_default_reads_host_and_laravel_default_queue() -> None:
    config = default_config()
    assert config.listen == f"0.0.0.0:{DEFAULT_PORT}"
    assert [(s.name, s.type) for s in config.sources] == [("host", "system"), ("redis", "redis")]
    assert config.sources[1].queues[0].queues == ["default"]


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("http://admin:s3cret@127.0.0.1:1/health?api_key=k3y", "http://***@127.0.0.1:1/health"),
        ("nats://svc:p@ss@host:4222", "nats://***@host:4222"),
        ("redis://:pw@cache:6380/2", "redis://***@cache:6380/2"),
        ("nats://TOKEN@host:4222", "nats://***@host:4222"),  # issue 20 item 9: the user name is the token
        ("redis://:pa/ss@cache:6380/2", "redis://***@cache:6380/2"),  # a raw `/` in the password
        ("http://[::1]:80/x", "http://[::1]:80/x"),
    ],
)
def test_urls_in_messages_carry_no_secret(url: str, safe: str) -> None:
    from exporter.sources.base import redact_url

    assert redact_url(url) == safe


def test_postgres_dsn_with_a_password_query_is_refused() -> None:
    text = "sources:\n  - name: p\n    type: postgres\n    dsn: postgresql://u@h/db?password=hunter2\n"
    (line,) = errors(text)
    assert line.endswith("dsn must not hold the password: use password (${PGPASSWORD}) or password_file")
    assert "hunter2" not in line


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://127.0.0.1:6379/db1", "the database in the url must be a number, got 'db1'"),
        ("unix:///run/redis.sock", "url must start with redis:// or rediss:// (unix sockets are not supported)"),
    ],
)
def test_redis_url_problems_are_config_errors(url: str, message: str) -> None:
    text = f"sources:\n  - name: r\n    type: redis\n    url: {url}\n    queues: [{{layout: laravel}}]\n"
    assert errors(text) == [f"cfg.yaml:4: sources[0].url: {message}"]


@pytest.mark.parametrize(("interval", "timeout"), [("1s", 1.0), ("500ms", 0.5), ("5s", 5.0), ("1m", 5.0)])
def test_an_unset_timeout_derives_from_the_interval(interval: str, timeout: float) -> None:
    # `interval: 1s` alone was refused: "timeout (5.0s) must not exceed interval (1.0s)", for a timeout never set
    config = parse_config(f"sources:\n  - {{name: h, type: system, interval: {interval}}}\n", "c.yaml", {})
    assert config.sources[0].timeout == timeout


def test_an_explicit_timeout_over_the_interval_is_still_refused() -> None:
    with pytest.raises(ConfigError, match=r"c.yaml:2: sources\[0\]: timeout \(2.0s\) must not exceed interval"):
        parse_config("sources:\n  - {name: h, type: system, interval: 1s, timeout: 2s}\n", "c.yaml", {})
