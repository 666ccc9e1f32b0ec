"""NATS parsing and config on literal inputs: no server needed."""

from __future__ import annotations

import base64
import json

import pytest
from pydantic import ValidationError

from exporter.sources.nats.config import JobsRegistry, NatsConfig
from exporter.sources.nats.parse import (
    KvEntry,
    advisory_target,
    count_jobs,
    format_labels,
    matches,
    parse_agent,
    parse_consumer,
    parse_headers,
    parse_kv_message,
    parse_stream,
    parse_ts,
    plain_url,
    subject_matches,
)


def test_parse_ts_keeps_nanoseconds_and_drops_zero_time() -> None:
    assert parse_ts("1970-01-01T00:00:01.5Z") == 1.5
    assert parse_ts("2026-11-23T11:09:07.967599552Z") == pytest.approx(1795432147.967599552, abs=1e-6)
    assert parse_ts("1970-01-01T02:00:00+02:00") == 0.0
    assert parse_ts("0001-01-01T00:00:00Z") is None
    assert parse_ts(None) is None
    assert parse_ts("yesterday") is None


def test_glob_and_subject_filters() -> None:
    assert matches("JOBS", ["*"], [])
    assert not matches("KV_cache", ["*"], ["KV_*", "OBJ_*"])
    assert matches("orders-eu", ["orders-*"], ["*-us"])
    assert not matches("orders-us", ["orders-*"], ["*-us"])
    assert subject_matches("jobs.1", "jobs.*")
    assert not subject_matches("jobs.1.x", "jobs.*")
    assert subject_matches("jobs.1.x", "jobs.>")
    assert not subject_matches("jobs", "jobs.>")
    assert subject_matches("a", ">")


def test_parse_stream_ignores_first_ts_of_an_empty_stream() -> None:
    info = {"config": {"name": "JOBS"}, "state": {"messages": 0, "bytes": 0, "first_seq": 7,
                                                   "first_ts": "1970-01-01T00:00:10Z", "consumer_count": 2}}
    record = parse_stream(info)
    assert (record.name, record.messages, record.consumers, record.first_ts) == ("JOBS", 0, 2, None)
    info["state"].update(messages=3, bytes=99)
    assert parse_stream(info).first_ts == 10.0
    assert parse_stream(info).bytes == 99


def test_parse_consumer() -> None:
    record = parse_consumer({"stream_name": "JOBS", "name": "w", "config": {"durable_name": "w"},
                             "num_pending": 4, "num_ack_pending": 2, "num_redelivered": 1, "num_waiting": 3,
                             "delivered": {"last_active": "1970-01-01T00:00:05Z"}})
    assert (record.pending, record.ack_pending, record.redelivered, record.waiting) == (4, 2, 1, 3)
    assert record.durable and record.last_active == 5.0
    ephemeral = parse_consumer({"stream_name": "JOBS", "name": "x1", "config": {}})
    assert not ephemeral.durable and ephemeral.pending == 0


def test_kv_message_with_delete_marker() -> None:
    hdrs = base64.b64encode(b"NATS/1.0\r\nKV-Operation: DEL\r\n\r\n").decode()
    entry = parse_kv_message("jobs", {"subject": "$KV.jobs.a.b", "seq": 9, "hdrs": hdrs,
                                      "time": "1970-01-01T00:00:03Z"})
    assert (entry.key, entry.revision, entry.operation, entry.live, entry.time) == ("a.b", 9, "DEL", False, 3.0)
    put = parse_kv_message("jobs", {"subject": "$KV.jobs.k", "seq": 1, "data": base64.b64encode(b"v").decode()})
    assert (put.operation, put.live, put.value) == ("PUT", True, b"v")
    assert parse_headers(b"NATS/1.0\r\nA: 1\r\nB:2\r\n\r\n") == {"A": "1", "B": "2"}


def entry(key: str, value: object, time: float = 100.0, op: str = "PUT") -> KvEntry:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return KvEntry(key, 1, time, op, raw)


def test_count_jobs_maps_statuses_and_finds_the_oldest_unprocessed() -> None:
    spec = JobsRegistry(bucket="jobs", statuses={"completed": ["done"]})
    entries = [
        entry("1", {"status": "pending"}, 50), entry("2", {"status": "Unprocessed"}, 40),
        entry("3", {"status": "done"}), entry("4", {"status": "completed"}),  # completed now means only `done`
        entry("5", {"status": "failed"}), entry("6", {"status": "dead"}), entry("7", b"[1]"),
        entry("8", {"status": "failed"}, op="DEL"), entry("9", {"other": 1}),
    ]
    counts = count_jobs(entries, spec.status_field, spec.status_token, spec.state_of())
    assert counts.as_details() == {"total": 6, "unprocessed": 2, "processing": 0, "completed": 1, "failed": 1,
                                   "dlq": 1, "other": 1}
    assert counts.malformed == 2 and counts.oldest_unprocessed == 40
    by_field = count_jobs([entry("1", {"status": "new", "at": 7})], "status", None, spec.state_of(), "at")
    assert by_field.oldest_unprocessed == 7


def test_count_jobs_by_key_token() -> None:
    entries = [entry("queued.1", b""), entry("running.2", b""), entry("x", b"")]
    counts = count_jobs(entries, None, 0, JobsRegistry(bucket="b", status_field=None, status_token=0).state_of())
    assert (counts.states["unprocessed"], counts.states["processing"], counts.other) == (1, 1, 1)


def test_agents_ready_stale_and_labels() -> None:
    kw = {"hostname_field": "hostname", "labels_field": "labels", "heartbeat_field": None,
          "status_field": "status", "ready_values": ["Ready"], "stale_after": 30.0, "now": 200.0}
    fresh = parse_agent(entry("a", {"hostname": "web-01", "labels": {"b": 2, "a": 1}, "status": "Ready"}, 190), **kw)
    assert fresh is not None and (fresh.hostname, fresh.labels, fresh.ready, fresh.last_heartbeat) == \
        ("web-01", "a=1,b=2", True, 190)
    stale = parse_agent(entry("b", {"status": "Ready"}, 100), **kw)
    assert stale is not None and stale.hostname == "b" and not stale.ready
    flag = parse_agent(entry("c", {"status": False}, 199), **kw)
    assert flag is not None and (flag.status, flag.ready) == ("NotReady", False)
    assert parse_agent(entry("d", b"nope"), **kw) is None
    assert format_labels(["x", "y"]) == "x,y"
    assert format_labels("group=web") == "group=web" and format_labels(None) == ""


def test_advisory_subjects_and_urls() -> None:
    assert advisory_target("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.JOBS.w1") == ("JOBS", "w1")
    assert advisory_target("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.JOBS.w1") is None
    assert advisory_target("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.JOBS") is None
    assert plain_url("nats", "127.0.0.1", 4222) == "nats://127.0.0.1:4222"


def test_config_validation() -> None:
    config = NatsConfig.model_validate({"name": "n", "type": "nats"})
    assert config.streams.keep("JOBS") and not config.streams.keep("KV_jobs")
    assert not config.consumers.ephemeral and config.dead_letters.mode == "subscribe"
    with pytest.raises(ValidationError, match="stream` is required"):
        NatsConfig.model_validate({"name": "n", "type": "nats", "dead_letters": {"mode": "stream"}})
    with pytest.raises(ValidationError, match="unknown states"):
        NatsConfig.model_validate({"name": "n", "type": "nats", "jobs": {"bucket": "j", "statuses": {"done": []}}})
    with pytest.raises(ValidationError, match="exactly one of status_field"):
        NatsConfig.model_validate({"name": "n", "type": "nats", "jobs": {"bucket": "j", "status_token": 1}})
    with pytest.raises(ValidationError, match="Extra inputs"):
        NatsConfig.model_validate({"name": "n", "type": "nats", "stream": {}})


def test_an_impossible_created_time_is_one_job_without_an_age() -> None:
    spec = JobsRegistry(bucket="jobs")
    entries = [entry("1", {"status": "new", "at": "2026-02-30T10:00:00Z"}), entry("2", {"status": "new", "at": 7})]
    counts = count_jobs(entries, "status", None, spec.state_of(), "at")
    assert counts.states["unprocessed"] == 2 and counts.oldest_unprocessed == 7
