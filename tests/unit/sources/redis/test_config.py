"""Config errors of the redis source name the file, the line, the key path and the reason."""

from __future__ import annotations

import pytest

from exporter.config import ConfigError, parse_config
from exporter.sources.redis.layouts import LAYOUTS

HEAD = "sources:\n  - name: r\n    type: redis\n"


def errors(body: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(HEAD + body, "c.yaml", env or {})
    return info.value.lines()


def test_bad_layout_name() -> None:
    """The error lists every tag of the layout table (read from it: a new layout is no edit here)."""
    tags = list(LAYOUTS)
    assert tags[:3] == ["list", "zset", "stream"] and len(tags) == len(set(tags)) >= 15
    assert errors("    queues:\n      - {layout: kafka, name: q, key: q}\n") == [
        "c.yaml:5: sources[0].queues[0]: Input tag 'kafka' found using 'layout' does not match any of the expected "
        "tags: " + ", ".join(f"'{tag}'" for tag in tags)]


def test_misspelled_keys() -> None:
    body = "    queues:\n      - layout: list\n        name: q\n        key: q\n        timestamp_feild: ts\n"
    assert errors(body) == ["c.yaml:8: sources[0].queues[0].timestamp_feild: unknown key (misspelled?)"]
    assert errors("    querys: []\n    queues: [{layout: rq}]\n") == [
        "c.yaml:4: sources[0].querys: unknown key (misspelled?)"]


def test_tenant_template_without_tenants() -> None:
    body = "    queues:\n      - {layout: rq}\n      - {layout: list, name: q, key: 't:{tenant}:q'}\n"
    assert errors(body) == [
        "c.yaml:2: sources[0]: queues[1] uses {tenant} in a key but the source has no `tenants`"]


def test_bad_regexes() -> None:
    queues = "    queues:\n      - {layout: list, name: q, key: 't:{tenant}:q'}\n"
    scan = "    tenants:\n      scan: {match: 't:*', regex: 't:(?P<tenant>[a-z'}\n"
    assert errors(scan + queues) == [
        "c.yaml:5: sources[0].tenants.scan.regex: regex 't:(?P<tenant>[a-z' does not compile: "
        "unterminated character set at position 13"]
    nogroup = "    tenants:\n      scan: {match: 't:*', regex: 't:(.*)'}\n"
    assert errors(nogroup + queues) == [
        "c.yaml:5: sources[0].tenants.scan.regex: regex needs a named group (?P<tenant>...)"]
    include = "    tenants:\n      static: [a]\n      include: '(['\n"
    assert errors(include + queues) == [
        "c.yaml:6: sources[0].tenants.include: regex '([' does not compile: unterminated character set at position 1"]


def test_other_mistakes() -> None:
    queues = "    queues: [{layout: list, name: q, key: q, timestamp_unit: minutes}]\n"
    assert errors(queues) == [
        "c.yaml:4: sources[0].queues[0].timestamp_unit: Input should be 's', 'ms', 'us', 'ns', 'iso' or 'auto'"]
    both = "    tenants: {static: [a], scan: {match: x, regex: '(?P<tenant>x)'}}\n    queues: [{layout: rq}]\n"
    assert errors(both) == [
        "c.yaml:4: sources[0].tenants: give exactly one of static, scan, source (got ['static', 'scan'])"]
    assert errors("    password: ${REDIS_PW}\n    queues: [{layout: rq}]\n") == [
        "c.yaml:4: sources[0].password: environment variable REDIS_PW is not set"]
    (line,) = errors("    scripts: always\n    queues: [{layout: rq}]\n")
    assert line.startswith("c.yaml:4: sources[0].scripts: Input should be ")
    assert all(f"'{mode}'" in line for mode in ("auto", "lua", "pipeline"))
    assert errors("    queues: []\n") == [
        "c.yaml:4: sources[0].queues: List should have at least 1 item after validation, not 0"]


def test_valid_config_with_env_password() -> None:
    config = parse_config(HEAD + "    password: ${REDIS_PW}\n    queues: [{layout: sidekiq}]\n", "c.yaml",
                          {"REDIS_PW": "hunter2"})
    assert config.sources[0].password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(config)


def test_two_layouts_reporting_one_queue_are_refused() -> None:
    """A (tenant, queue) known from the config to come from two layouts is a --check-config error."""
    body = ("    queues:\n      - {layout: laravel, prefix: 'a-database-', queues: [default, mail]}\n"
            "      - {layout: laravel, prefix: 'b-database-', queues: [mail]}\n")
    assert errors(body) == [
        "c.yaml:2: sources[0]: queues[0] (laravel) and queues[1] (laravel) both report queue 'mail' (tenant \"\"): "
        "give one of them its own `tenant` label or a different queue name (docs/sources/redis.md, Two apps in "
        "one Redis)"]
    body = ("    queues:\n      - {layout: bullmq, queues: [emails]}\n"
            "      - {layout: list, name: emails, key: 'x:emails'}\n")
    assert "queues[0] (bullmq) and queues[1] (list) both report queue 'emails'" in errors(body)[0]
    # Laravel and Horizon on one prefix: Horizon reads the lists itself, whatever the queues
    body = ("    queues:\n      - {layout: laravel, queues: [default]}\n"
            "      - {layout: horizon}\n")
    assert errors(body) == [
        "c.yaml:2: sources[0]: queues[0] (laravel) and queues[1] (horizon) both read the Laravel lists under "
        "prefix 'laravel-database-': Horizon reads them itself, drop the laravel layout (list its queues in the "
        "horizon layout's `queues` to read them without live supervisors)"]


def test_two_apps_in_one_redis_through_the_tenant_label() -> None:
    body = ("    queues:\n      - {layout: laravel, prefix: 'a-database-', queues: [mail], tenant: shop}\n"
            "      - {layout: laravel, prefix: 'b-database-', queues: [mail], tenant: billing}\n"
            "      - {layout: sidekiq, tenant: shop}\n      - {layout: sidekiq, prefix: 'b:', tenant: billing}\n")
    config = parse_config(HEAD + body, "c.yaml", {})
    assert [q.tenant for q in config.sources[0].queues] == ["shop", "billing", "shop", "billing"]  # type: ignore[attr-defined]
    templated = ("    tenants: {static: [a]}\n    queues:\n"
                 "      - {layout: list, name: q, key: '{tenant}:q', tenant: shop}\n")
    assert errors(templated) == [
        "c.yaml:2: sources[0]: queues[0] has `tenant` but its keys already take it from {tenant}"]


def test_celery_events_heard_once() -> None:
    twice = "    queues:\n      - {layout: celery, queues: [a], events: true}\n" \
            "      - {layout: celery, queues: [b], events: true}\n"
    assert errors(twice) == [
        "c.yaml:2: sources[0]: queues[1] listens to the Celery events that queues[0] already hears; "
        "list all their queues in one layout"]
    templated = "    tenants: {static: [a]}\n    queues:\n" \
                "      - {layout: celery, global_keyprefix: 't{tenant}:', events: true}\n"
    assert errors(templated) == [
        "c.yaml:6: sources[0].queues[0]: events: true needs a global_keyprefix without {tenant} "
        "(one topic to subscribe)"]


def test_celery_worker_queues_need_events() -> None:
    """Worker pools are told apart by the hostname of their events: without events there is nothing to match."""
    body = "    queues:\n      - {layout: celery, queues: [mail], worker_queues: {'mail@*': [mail]}}\n"
    assert errors(body) == [
        "c.yaml:5: sources[0].queues[0]: worker_queues needs events: true (workers are known from their events only)"]
