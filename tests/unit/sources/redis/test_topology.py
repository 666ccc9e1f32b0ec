"""Pure parts of the Redis connection: URL + `tls` parsing, the cluster slot map and redirects, and the
commands each op sends (what `doctor` asks ACL DRYRUN about)."""

from __future__ import annotations

from pathlib import Path

import hiredis
import pytest
from redis.exceptions import ConnectionError, RedisClusterException

from exporter.sources.base import SourceError, SourceUnreachable
from exporter.sources.redis.cluster import SLOTS, _redirect, slot_map
from exporter.sources.redis.connect import parse_endpoint
from exporter.sources.redis.items import MAX_ITEM, TOO_BIG
from exporter.sources.redis.layouts.huey import HueyLayout
from exporter.sources.redis.layouts.rq import _JOB_FIELDS as RQ_JOB_FIELDS
from exporter.sources.redis.layouts.rq import RQLayout
from exporter.sources.redis.layouts.sidekiq import SidekiqLayout
from exporter.sources.redis.ops import (
    ClientNames,
    Each,
    Head,
    HeadGet,
    HeadHash,
    HeadHGet,
    LFirst,
    Llen,
    XGroups,
    XNext,
    XUndelivered,
    ZCount,
    ZExists,
    ZGets,
    ZHashes,
)
from exporter.sources.redis.source import Skipped, failure, scanned_keys
from exporter.sources.redis.wire import pack, pack_each, pack_keys
from exporter.sources.tls import TlsConfig


def test_endpoint_from_url_and_tls_block(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    plain = parse_endpoint("redis://u%40x:p%3Aw@db.internal:6380/3")
    assert (plain.host, plain.port, plain.db, plain.username, plain.password, plain.tls) == (
        "db.internal", 6380, 3, "u@x", "p:w", None)
    secure = parse_endpoint(f"rediss://h?ssl_ca_certs={ca}&ssl_cert_reqs=required", None, "cfg-user", "cfg-pw")
    assert (secure.port, secure.db, secure.username, secure.password) == (6379, 0, "cfg-user", "cfg-pw")
    assert secure.tls == TlsConfig(ca_file=ca, insecure=False)
    assert secure.redis_py() == {"host": "h", "port": 6379, "username": "cfg-user", "password": "cfg-pw",
                                 "ssl": True, "ssl_ca_certs": str(ca), "ssl_certfile": None, "ssl_keyfile": None,
                                 "ssl_cert_reqs": "required", "ssl_check_hostname": True}
    insecure = parse_endpoint("rediss://h/0", TlsConfig(insecure=True))
    assert insecure.tls is not None and insecure.tls.insecure
    assert insecure.redis_py()["ssl_cert_reqs"] == "none" and insecure.redis_py()["ssl_check_hostname"] is False
    assert parse_endpoint("rediss://h/0").tls == TlsConfig()  # TLS with the system's CAs
    with pytest.raises(ValueError, match="disagree"):
        parse_endpoint("rediss://h/0?ssl_cert_reqs=none", TlsConfig(insecure=False))


def test_slot_map_and_redirects() -> None:
    reply = [[0, 5460, ["10.0.0.1", 7000, "id1"], ["10.0.0.4", 7003, "id4"]],
             [5461, 10922, ["", 7001, "id2"]],
             [10923, 16383, ["10.0.0.3", 7002, "id3"]]]
    owners = slot_map(reply, "seed.internal")
    assert len(owners) == SLOTS
    assert (owners[0], owners[5460], owners[5461], owners[16383]) == (
        ("10.0.0.1", 7000), ("10.0.0.1", 7000), ("seed.internal", 7001), ("10.0.0.3", 7002))
    assert slot_map([[0, 99, ["h", 1, "i"]]], "s")[100] is None  # an uncovered slot
    assert _redirect(hiredis.ReplyError("MOVED 3999 127.0.0.1:6381")) == ("127.0.0.1", 6381)
    assert _redirect(hiredis.ReplyError("ASK 3999 10.0.0.2:7001")) == ("10.0.0.2", 7001)
    assert _redirect(hiredis.ReplyError("WRONGTYPE Operation against a key")) is None
    assert _redirect("MOVED 1 h:1") is None  # a value, not an error reply


def test_pack_each_is_pack_keys_split() -> None:
    for keys in (["a", "bb:c"], ["é", "x"]):
        assert b"".join(pack_each(("LINDEX",), keys, ("-1",))) == pack_keys(("LINDEX",), keys, ("-1",))
        assert pack_each(("LLEN",), keys) == [pack("LLEN", k) for k in keys]
        assert pack_each(("XINFO", "GROUPS"), keys) == [pack("XINFO", "GROUPS", k) for k in keys]


def test_acl_of_ops() -> None:
    """Every command an op may send, with its real arguments: what doctor asks ACL DRYRUN about."""
    assert Llen("q").acl() == [("LLEN", "q")]
    assert Head("q", from_tail=True, fields="ts", scan=5, kind="num").acl() == [
        ("LINDEX", "q", "-1"), ("LRANGE", "q", "-5", "-1")]
    assert Head("q", scan=5).acl() == [("LINDEX", "q", "0"), ("LRANGE", "q", "0", "4")]
    assert HeadHash("bull:m:wait", from_tail=True, hash_prefix="bull:m:", fields="timestamp", scan=5).acl() == [
        ("LRANGE", "bull:m:wait", "-5", "-1"), ("HGET", "bull:m:1", "timestamp")]
    # ids that are whole keys (saq:job:<queue>:<key>): checked in the list's namespace, not as key "1"
    assert HeadGet("saq:q:queued", key_prefix="", fields="queued").acl()[1] == ("GET", "saq:q:queued:1")
    assert HeadGet("q", key_prefix="job:", fields="t").acl()[1] == ("GET", "job:1")
    assert HeadHGet("dq:q", hash="dq:q.msgs").acl()[1] == ("HGET", "dq:q.msgs", "1")
    assert ZHashes("horizon:masters", hash_prefix="horizon:", cap=50).acl() == [
        ("ZREVRANGE", "horizon:masters", "0", "49", "WITHSCORES"), ("HGETALL", "horizon:1")]
    assert XGroups("s").acl() == [("XINFO", "GROUPS", "s")]
    assert XUndelivered("s").acl() == [("XINFO", "GROUPS", "s"), ("XRANGE", "s", "(0-0", "+", "COUNT", "1")]
    assert XNext("s", group="g").acl() == [("XINFO", "GROUPS", "s"), ("XRANGE", "s", "(0-0", "+", "COUNT", "1")]
    assert ClientNames("").acl() == [("CLIENT", "LIST")]
    assert LFirst("l", n=3).acl() == [("LRANGE", "l", "0", "2")]
    assert ZExists("q", high="10", key_prefix="ip:", cap=7).acl() == [
        ("ZRANGEBYSCORE", "q", "-inf", "10", "WITHSCORES", "LIMIT", "0", "7"), ("EXISTS", "ip:1")]
    assert ZGets("st", low="5", cap=2).acl() == [
        ("ZRANGEBYSCORE", "st", "5", "+inf", "WITHSCORES", "LIMIT", "0", "2"), ("GET", "st:1")]
    each = Each(ZCount("", low="-inf", high="10"), "t_", ":q", ("a", "b"))
    assert each.acl() == [("ZCOUNT", "t_a:q", "-inf", "10")]


def test_a_cluster_with_no_reachable_node_is_unreachable() -> None:
    try:
        try:
            raise ConnectionError("Error 111 connecting to 10.0.0.1:7000")
        except ConnectionError as cause:
            raise RedisClusterException("Redis Cluster cannot be connected.") from cause
    except RedisClusterException as err:
        assert isinstance(failure(err), SourceUnreachable)
    assert type(failure(RedisClusterException("no slots"))) is SourceError


def test_a_reply_redis_py_cannot_decode_is_a_failure_of_kind_error() -> None:
    """Through Sentinel or Cluster, redis-py decodes replies (SCAN keys aside): one that is not UTF-8 raises
    UnicodeDecodeError, mapped to a failure that says why and where to read more."""
    try:
        b"tenant_\xff:q".decode()
    except UnicodeDecodeError as err:
        mapped = failure(err)
    assert type(mapped) is SourceError and mapped.kind == "error"
    assert "not UTF-8" in str(mapped) and "docs/sources/redis.md" in str(mapped)


def test_scanned_keys_are_decoded_alike_from_every_topology() -> None:
    """One function reads the SCAN keys of the lean connection (TOO_BIG for a name over 1 MiB) and of
    redis-py (the whole name): a name that is not UTF-8 or over 1 MiB is counted, not kept."""
    skipped = Skipped()
    raw = [b"t_a:q", b"t_\xff:q", TOO_BIG.encode(), b"t_" + b"x" * MAX_ITEM, b"t_\xc3\xa9:q", b"t_\xfe:q"]
    assert scanned_keys(raw, skipped) == ["t_a:q", "t_\u00e9:q"]
    assert skipped == Skipped(not_utf8=2, too_big=2, example=b"t_\xff:q")


def test_job_listing_acl() -> None:
    """The job listing's reads (jobs.read_page) are listed too, with a full page, for doctor."""
    rq = RQLayout.model_validate({"layout": "rq", "queues": ["q"]})
    assert rq.job_acl("") == [
        ("ZCARD", "rq:wip:q"), ("ZRANGE", "rq:wip:q", "0", "99"), ("HMGET", "rq:job:1", *RQ_JOB_FIELDS),
        ("LLEN", "rq:queue:q"), ("LRANGE", "rq:queue:q", "0", "99"), ("HMGET", "rq:job:1", *RQ_JOB_FIELDS),
        ("ZCARD", "rq:failed:q"), ("ZREVRANGE", "rq:failed:q", "0", "99"), ("HMGET", "rq:job:1", *RQ_JOB_FIELDS),
        ("ZCARD", "rq:finished:q"), ("ZREVRANGE", "rq:finished:q", "0", "99"), ("HMGET", "rq:job:1", *RQ_JOB_FIELDS)]
    sidekiq = SidekiqLayout.model_validate({"layout": "sidekiq", "queues": ["q"]})
    assert sidekiq.job_acl("") == [("LLEN", "queue:q"), ("LRANGE", "queue:q", "-100", "-1")]
    assert HueyLayout.model_validate({"layout": "huey"}).job_acl("") == [  # the key's type picks list or zset
        ("TYPE", "huey.redis.huey"), ("LLEN", "huey.redis.huey"), ("LRANGE", "huey.redis.huey", "-100", "-1"),
        ("ZCARD", "huey.redis.huey"), ("ZRANGE", "huey.redis.huey", "0", "99")]
