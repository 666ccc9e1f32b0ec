"""Every Redis layout against the shared Redis, with data written the way each library writes it.

Ages are exact: the source's clock is fixed at NOW.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from tests.conftest import REDIS_URL, samples
from tests.support.redis_libs import (
    NOW,
    by_queue,
    collect,
    laravel_payload,
    samples_of,
    seed_horizon,
    seed_laravel,
    seed_sidekiq,
    sidekiq_payload,
)

# ------------------------------------------------------------------------------------ plain list


async def test_list_oldest_at_head_seconds(redis_client: redis.Redis, prefix: str) -> None:
    key = f"{prefix}events"
    for ts in (NOW - 120, NOW - 60, NOW - 1):
        redis_client.rpush(key, json.dumps({"id": str(ts), "ts": ts}))
    r = await collect(REDIS_URL, [{"layout": "list", "name": "events", "key": key, "timestamp_field": "ts"}])
    q = by_queue(r)["events"]
    assert (q.depth, q.oldest_timestamp, NOW - q.oldest_timestamp, r.malformed) == (3, NOW - 120, 120, 0)


async def test_list_oldest_at_tail_ms_nested_field(redis_client: redis.Redis, prefix: str) -> None:
    key = f"{prefix}lpush"
    for ms in (1_699_999_000_000, 1_699_999_500_000):  # LPUSH: the first pushed ends at the tail
        redis_client.lpush(key, json.dumps({"meta": {"at": ms}, "body": "x"}))
    queues = [{"layout": "list", "name": "q", "key": key, "oldest": "tail", "timestamp_field": "meta.at",
               "timestamp_unit": "ms"}]
    q = by_queue(await collect(REDIS_URL, queues))["q"]
    assert (q.depth, q.oldest_timestamp) == (2, 1_699_999_000.0)


async def test_list_iso_timestamps(redis_client: redis.Redis, prefix: str) -> None:
    key = f"{prefix}iso"
    redis_client.rpush(key, json.dumps({"at": "2023-11-14T22:13:00.500000Z"}),
                       json.dumps({"at": "2023-11-14T22:13:10"}))  # naive: UTC, not local time
    redis_client.rpush(f"{key}2", json.dumps({"at": "2023-11-14T22:13:10"}))
    queues = [{"layout": "list", "name": "a", "key": key, "timestamp_field": "at", "timestamp_unit": "iso"},
              {"layout": "list", "name": "b", "key": f"{key}2", "timestamp_field": "at", "timestamp_unit": "iso"}]
    r = await collect(REDIS_URL, queues)
    assert by_queue(r)["a"].oldest_timestamp == 1_700_000_000.5 - 20
    assert by_queue(r)["b"].oldest_timestamp == 1_699_999_990.0


async def test_list_malformed_items_counted_and_skipped(redis_client: redis.Redis, prefix: str) -> None:
    key = f"{prefix}dirty"
    redis_client.rpush(key, "not json", json.dumps({"ts": "yesterday"}), json.dumps({"other": 1}),
                       json.dumps({"ts": True}), json.dumps({"ts": NOW - 30}), json.dumps({"ts": NOW - 10}))
    r = await collect(REDIS_URL, [{"layout": "list", "name": "q", "key": key, "timestamp_field": "ts"}])
    q = by_queue(r)["q"]
    assert (q.depth, q.oldest_timestamp, r.malformed) == (6, NOW - 30, 4)


async def test_list_all_malformed_within_scan_window(redis_client: redis.Redis, prefix: str) -> None:
    key = f"{prefix}bad"
    redis_client.rpush(key, *["{broken"] * 4, json.dumps({"ts": NOW - 5}))
    r = await collect(REDIS_URL, [{"layout": "list", "name": "q", "key": key, "timestamp_field": "ts", "scan": 3}])
    q = by_queue(r)["q"]
    assert (q.depth, q.oldest_timestamp, r.malformed) == (5, None, 3)


async def test_missing_key_is_depth_zero_and_wrong_type_is_not_fatal(
        redis_client: redis.Redis, prefix: str) -> None:
    redis_client.set(f"{prefix}string", "x")
    queues = [{"layout": "list", "name": "gone", "key": f"{prefix}missing", "timestamp_field": "ts"},
              {"layout": "list", "name": "str", "key": f"{prefix}string", "timestamp_field": "ts"},
              {"layout": "zset", "name": "z", "key": f"{prefix}nozset"},
              {"layout": "stream", "name": "s", "key": f"{prefix}nostream"}]
    r = await collect(REDIS_URL, queues)
    got = {q.queue: (q.depth, q.oldest_timestamp) for q in r.queues}
    assert got == {"gone": (0, None), "str": (0, None), "z": (0, None), "s": (0, None)}
    assert r.malformed == 1  # the string where a list should be


async def test_implausible_timestamps_counted_and_skipped(redis_client: redis.Redis, prefix: str) -> None:
    """Before 2000, past the allowed skew, 1e300, NaN: counted as malformed and skipped in the op (Lua and
    pipeline alike), so the next usable item gives the age."""
    bad = [{"ts": NOW + 3600}, {"ts": 1e300}, {"ts": 12}, {"ts": "NaN"}, {"ts": (NOW - 100) * 1000}]
    key = f"{prefix}q"
    redis_client.rpush(key, *(json.dumps(b) for b in bad), json.dumps({"ts": NOW - 20}))
    q = {"layout": "list", "name": "q", "key": key, "timestamp_field": "ts"}
    r = await collect(REDIS_URL, [{**q, "timestamp_unit": "s"}])
    # under `s` the millisecond item is a time in the year 55000: skipped too
    assert ([(x.depth, x.oldest_timestamp) for x in r.queues], r.malformed) == ([(6, NOW - 20)], 5)
    r = await collect(REDIS_URL, [q])  # default `auto`: the millisecond item is read by its magnitude
    assert ([(x.depth, x.oldest_timestamp) for x in r.queues], r.malformed) == ([(6, NOW - 100)], 4)
    r = await collect(REDIS_URL, [{**q, "future_skew": "2h"}])  # a wider skew accepts the item an hour ahead
    assert ([x.oldest_timestamp for x in r.queues], r.malformed) == ([NOW + 3600], 0)
    # a sorted set's first member (no scan): an implausible score is counted, no age
    redis_client.zadd(f"{prefix}z", {"a": 5, "b": NOW - 3})
    r = await collect(REDIS_URL, [{"layout": "zset", "name": "z", "key": f"{prefix}z"}])
    assert ([(x.depth, x.oldest_timestamp) for x in r.queues], r.malformed) == ([(2, None)], 1)


async def test_auto_unit_tells_seconds_from_milli_micro_and_nanoseconds(redis_client: redis.Redis,
                                                                        prefix: str) -> None:
    scale = {"s": 1, "ms": 1000, "us": 1_000_000, "ns": 1_000_000_000}
    queues = []
    for unit, factor in scale.items():
        redis_client.rpush(f"{prefix}{unit}", json.dumps({"ts": int((NOW - 30) * factor)}))
        queues.append({"layout": "list", "name": unit, "key": f"{prefix}{unit}", "timestamp_field": "ts"})
    r = await collect(REDIS_URL, queues)
    assert {x.queue: x.oldest_timestamp for x in r.queues} == {u: NOW - 30 for u in scale}
    assert r.malformed == 0


# ------------------------------------------------------------------------------------ sorted set


async def test_zset_score_and_member_timestamps(redis_client: redis.Redis, prefix: str) -> None:
    redis_client.zadd(f"{prefix}z", {"a": NOW - 300.25, "b": NOW - 10})
    redis_client.zadd(f"{prefix}zm", {json.dumps({"at": 1_699_999_400_000}): 1, json.dumps({"at": 5}): 2})
    queues = [{"layout": "zset", "name": "score", "key": f"{prefix}z"},
              {"layout": "zset", "name": "member", "key": f"{prefix}zm", "timestamp": "member",
               "timestamp_field": "at", "timestamp_unit": "ms"},
              {"layout": "zset", "name": "none", "key": f"{prefix}z", "timestamp": "none"}]
    got = {q.queue: (q.depth, q.oldest_timestamp) for q in (await collect(REDIS_URL, queues)).queues}
    assert got == {"score": (2, NOW - 300.25), "member": (2, 1_699_999_400.0), "none": (2, None)}


# ---------------------------------------------------------------------------------------- stream


async def test_stream_age_pending_lag_and_null_lag(redis_client: redis.Redis, prefix: str) -> None:
    key = f"{prefix}stream"
    base = int(NOW * 1000) - 90_000
    ids = [redis_client.xadd(key, {"n": str(i)}, id=f"{base + i * 1000}-0") for i in range(6)]
    redis_client.xgroup_create(key, "fast", id="0")
    redis_client.xgroup_create(key, "holey", id="0")
    redis_client.xreadgroup("fast", "c1", {key: ">"}, count=5)  # 5 delivered
    redis_client.xack(key, "fast", ids[0], ids[1])              # 3 still pending
    redis_client.xreadgroup("holey", "c1", {key: ">"}, count=2)
    # An entry between holey's last-delivered id and the last id goes: Redis can no longer tell
    # holey's lag (XINFO GROUPS says nil); fast has read past it, so its lag (1) is still known.
    redis_client.xdel(key, ids[3])
    redis_client.xgroup_create(key, "tail", id="$")
    r = await collect(REDIS_URL, [{"layout": "stream", "name": "s", "key": key}])
    q = by_queue(r)["s"]
    # holey's lag is unknown: XLEN (5) bounds the depth; holey was handed ids 0-1, so the oldest entry
    # not yet delivered to some group is ids[2] (ids[3] is gone)
    assert (q.depth, q.oldest_timestamp, q.states) == (5, base / 1000 + 2, (("pending", 5),))
    assert samples_of(r, "jobqueue_stream_group_pending") == {
        ("", "s", "fast"): 3, ("", "s", "holey"): 2, ("", "s", "tail"): 0}
    raw = {g["name"]: g["lag"] for g in redis_client.xinfo_groups(key)}
    assert raw == {"fast": 1, "holey": None, "tail": 0}
    # NULL lag: no series at all, never a made-up 0
    assert samples_of(r, "jobqueue_stream_group_lag") == {("", "s", "fast"): 1, ("", "s", "tail"): 0}


async def test_stream_depth_is_the_largest_lag_and_age_the_oldest_undelivered(
        redis_client: redis.Redis, prefix: str) -> None:
    key = f"{prefix}stream"
    base = int(NOW * 1000) - 90_000
    ids = [redis_client.xadd(key, {"n": str(i)}, id=f"{base + i * 1000}-0") for i in range(6)]
    redis_client.xgroup_create(key, "fast", id="0")
    redis_client.xgroup_create(key, "slow", id="0")
    redis_client.xreadgroup("fast", "c1", {key: ">"}, count=5)
    redis_client.xreadgroup("slow", "c1", {key: ">"}, count=2)  # slow lags by 4: ids[2] waits longest
    r = await collect(REDIS_URL, [{"layout": "stream", "name": "s", "key": key}])
    q = by_queue(r)["s"]
    assert (q.depth, q.oldest_timestamp, q.states) == (4, base / 1000 + 2, (("pending", 7),))
    assert samples_of(r, "jobqueue_stream_group_lag") == {("", "s", "fast"): 1, ("", "s", "slow"): 4}
    assert ids


async def test_drained_stream_has_depth_zero_and_no_oldest(redis_client: redis.Redis, prefix: str
                                                           ) -> None:
    """Every entry delivered and acknowledged: nothing waits, whatever XLEN says (JobQueueStuck must
    not fire on a healthy consumer)."""
    key = f"{prefix}stream"
    ids = [redis_client.xadd(key, {"n": str(i)}, id=f"{int(NOW * 1000) - 60_000 + i}-0") for i in range(4)]
    redis_client.xgroup_create(key, "workers", id="0")
    redis_client.xreadgroup("workers", "c1", {key: ">"}, count=10)
    redis_client.xack(key, "workers", *ids)
    r = await collect(REDIS_URL, [{"layout": "stream", "name": "s", "key": key}])
    q = by_queue(r)["s"]
    assert redis_client.xlen(key) == 4
    assert (q.depth, q.oldest_timestamp, q.states) == (0, None, (("pending", 0),))
    assert samples_of(r, "jobqueue_stream_group_lag") == {("", "s", "workers"): 0}
    # delivered but not acknowledged: still not waiting, but pending
    more = redis_client.xadd(key, {"n": "x"}, id=f"{int(NOW * 1000) - 1000}-0")
    redis_client.xreadgroup("workers", "c1", {key: ">"}, count=10)
    r = await collect(REDIS_URL, [{"layout": "stream", "name": "s", "key": key}])
    assert (by_queue(r)["s"].depth, by_queue(r)["s"].oldest_timestamp) == (0, None)
    assert samples_of(r, "jobqueue_stream_group_pending") == {("", "s", "workers"): 1} and more


async def test_stream_with_no_group_keeps_length_and_first_entry(redis_client: redis.Redis,
                                                                 prefix: str) -> None:
    redis_client.xadd(f"{prefix}s", {"a": "1"}, id="1699999990000-0")
    redis_client.xadd(f"{prefix}s", {"a": "2"}, id="1699999995000-0")
    r = await collect(REDIS_URL, [{"layout": "stream", "name": "s", "key": f"{prefix}s"}])
    q = by_queue(r)["s"]
    assert (q.depth, q.oldest_timestamp, q.states, r.samples) == (2, 1_699_999_990.0, (), ())


async def test_stream_without_groups(redis_client: redis.Redis, prefix: str) -> None:
    redis_client.xadd(f"{prefix}s", {"a": "1"}, id="1699999999000-1")
    r = await collect(REDIS_URL, [{"layout": "stream", "name": "s", "key": f"{prefix}s", "groups": False}])
    q = by_queue(r)["s"]
    assert (q.depth, q.oldest_timestamp, q.states, r.samples) == (1, 1_699_999_999.0, (), ())


# --------------------------------------------------------------------------------------- Laravel


@pytest.mark.parametrize("app_prefix", ["laravel-database-", "laravel_database_"])
async def test_laravel(redis_client: redis.Redis, prefix: str, app_prefix: str) -> None:
    p = f"{prefix}{app_prefix}"
    seed_laravel(redis_client, p, "default", [int(NOW) - 75, int(NOW) - 5], delayed=3, reserved=1)
    seed_laravel(redis_client, p, "emails", [], delayed=1, reserved=0)
    r = await collect(REDIS_URL, [{"layout": "laravel", "prefix": p, "queues": ["default", "emails", "never"]}])
    got = {q.queue: (q.depth, q.oldest_timestamp, q.states) for q in r.queues}
    assert got == {
        "default": (2, NOW - 75, (("delayed", 3), ("reserved", 1))),
        "emails": (0, None, (("delayed", 1), ("reserved", 0))),
        "never": (0, None, (("delayed", 0), ("reserved", 0))),
    }


async def test_laravel_cluster_keys_and_pause_flag(redis_client: redis.Redis, prefix: str) -> None:
    redis_client.rpush(f"{prefix}queues:{{default}}", laravel_payload("a", int(NOW) - 9))
    redis_client.set(f"{prefix}cache:illuminate:queue:paused:redis:default", "1")
    queues = [{"layout": "laravel", "prefix": prefix, "cluster": True, "queues": ["default", "other"],
               "pause_key": f"{prefix}cache:illuminate:queue:paused:redis:{{queue}}"}]
    got = {q.queue: (q.depth, q.oldest_timestamp, q.paused) for q in (await collect(REDIS_URL, queues)).queues}
    assert got == {"default": (1, NOW - 9, True), "other": (0, None, False)}


# --------------------------------------------------------------------------------------- Horizon


async def test_horizon(redis_client: redis.Redis, prefix: str) -> None:
    app, hp = f"{prefix}app_database_", f"{prefix}app_horizon:"
    seed_laravel(redis_client, app, "default", [int(NOW) - 50] * 7, delayed=2, reserved=1,
                 pushed=[f"{NOW - 42.1234:.4f}"] + [f"{NOW - 40:.4f}"] * 6)
    seed_laravel(redis_client, app, "mail", [int(NOW) - 3], delayed=0, reserved=0)
    seed_horizon(
        redis_client, hp,
        masters=[("web-1", "running", NOW - 2), ("web-2", "paused", NOW - 5), ("gone", "running", NOW - 600)],
        supervisors=[
            ("web-1:supervisor-1", "web-1", NOW - 3, {"redis:default": 2, "redis:mail": 1}),
            ("web-2:supervisor-1", "web-2", NOW - 4, {"redis:default": 1}),
            ("gone:supervisor-1", "gone", NOW - 600, {"redis:default": 50, "redis:old": 3}),
        ],
        runtimes={"default": 1234.5, "mail": 400},
        failed=[NOW - 10, NOW - 86400 * 30],
        recent_failed=[NOW - 10, NOW - 3600, NOW - 86400 * 8],
    )
    queues = [{"layout": "horizon", "prefix": app, "horizon_prefix": hp}]
    r = await collect(REDIS_URL, queues)
    got = {q.queue: (q.depth, q.oldest_timestamp, q.states, q.wait_seconds) for q in r.queues}
    # wait = round(ready x runtime / live processes / 1000): default 7 x 1234.5 / 3 = 2880.5 ms -> 3 s
    assert round(7 * 1234.5 / 3 / 1000) == 3 and round(1 * 400 / 1 / 1000) == 0
    assert got == {
        "default": (7, NOW - 42.1234, (("delayed", 2), ("reserved", 1)), 3),
        "mail": (1, NOW - 3, (("delayed", 0), ("reserved", 0)), 0),
    }
    assert samples_of(r, "jobqueue_horizon_masters") == {("", "running"): 1, ("", "paused"): 1}
    assert samples_of(r, "jobqueue_library_jobs") == {("", "failed_recent"): 2, ("", "failed"): 2}
    detail = r.details["horizon"][""]
    assert detail["queues"] == {"default": {"pending": 7, "wait_seconds": 3}, "mail": {"pending": 1, "wait_seconds": 0}}
    assert [m["name"] for m in detail["masters"]] == ["web-1", "web-2", "gone"]  # freshest heartbeat first


async def test_horizon_configured_queue_without_supervisors(redis_client: redis.Redis, prefix: str) -> None:
    app, hp = f"{prefix}db-", f"{prefix}hz:"
    seed_laravel(redis_client, app, "reports", [int(NOW)] * 4, delayed=0, reserved=0, pushed=[f"{NOW - 8:.4f}"] * 4)
    redis_client.hset(f"{hp}queue:reports", "runtime", "2500")
    r = await collect(REDIS_URL, [{"layout": "horizon", "prefix": app, "horizon_prefix": hp, "queues": ["reports"]}])
    q = by_queue(r)["reports"]
    assert (q.depth, q.oldest_timestamp, q.wait_seconds) == (4, NOW - 8, 10)  # no processes: 4 x 2.5 s


async def test_horizon_completed_last_hour_from_its_snapshots(redis_client: redis.Redis,
                                                               prefix: str) -> None:
    """`horizon:snapshot` (RedisMetricsRepository::snapshot) ZADDs {throughput, runtime, wait, time} per
    queue and resets the live counter: the hour is the snapshots in it plus the live counter; a queue
    with no snapshot in the hour has an unknown count (null), never 0."""
    app, hp = f"{prefix}db-", f"{prefix}hz:"
    for at, throughput in ((NOW - 4000, 99), (NOW - 1800, 30), (NOW - 300, 10)):
        member = json.dumps({"throughput": throughput, "runtime": 120.5, "wait": 0, "time": int(at)})
        redis_client.zadd(f"{hp}snapshot:queue:mail", {member: int(at)})
    redis_client.hset(f"{hp}queue:mail", mapping={"throughput": "5", "runtime": "120.5"})
    redis_client.hset(f"{hp}queue:idle", mapping={"throughput": "500", "runtime": "10"})  # never snapshotted
    queues = [{"layout": "horizon", "prefix": app, "horizon_prefix": hp, "queues": ["mail", "idle"]}]
    r = await collect(REDIS_URL, queues)
    assert {q.queue: q.completed_last_hour for q in r.queues} == {"mail": 45, "idle": None}


# --------------------------------------------------------------------------------------- Sidekiq


async def test_sidekiq_seconds_and_milliseconds(redis_client: redis.Redis, prefix: str) -> None:
    seed_sidekiq(redis_client, prefix, "default", [NOW - 61.5, NOW - 1.25])               # 7.x floats
    seed_sidekiq(redis_client, prefix, "critical", [int(NOW * 1000) - 4500, int(NOW * 1000)])  # 8.x ms
    redis_client.sadd(f"{prefix}queues", "empty")
    redis_client.zadd(f"{prefix}schedule", {sidekiq_payload("s1", "default", NOW): NOW + 60})
    redis_client.zadd(f"{prefix}retry", {sidekiq_payload("r1", "default", NOW): NOW + 30,
                                          sidekiq_payload("r2", "default", NOW): NOW + 90})
    redis_client.zadd(f"{prefix}dead", {sidekiq_payload("d1", "default", NOW): NOW - 5})
    redis_client.sadd(f"{prefix}paused", "critical")
    r = await collect(REDIS_URL, [{"layout": "sidekiq", "prefix": prefix}])
    got = {q.queue: (q.depth, q.oldest_timestamp, q.paused) for q in r.queues}
    assert got == {"critical": (2, NOW - 4.5, True), "default": (2, NOW - 61.5, False), "empty": (0, None, False)}
    assert samples_of(r, "jobqueue_library_jobs") == {("", "scheduled"): 1, ("", "retry"): 2, ("", "dead"): 1}


async def test_sidekiq_queue_cap(redis_client: redis.Redis, prefix: str) -> None:
    redis_client.sadd(f"{prefix}queues", *[f"q{i:02d}" for i in range(12)])
    r = await collect(REDIS_URL, [{"layout": "sidekiq", "prefix": prefix, "cap": 5}])
    assert [q.queue for q in r.queues] == ["q00", "q01", "q02", "q03", "q04"]


async def test_horizon_queue_groups(redis_client: redis.Redis, prefix: str) -> None:
    """With `balance: false` a supervisor serves "default,emails" as one group: Horizon sums the group."""
    app, hp = f"{prefix}db_", f"{prefix}hz:"
    seed_laravel(redis_client, app, "default", [int(NOW)] * 6, delayed=0, reserved=0)
    seed_laravel(redis_client, app, "emails", [int(NOW)] * 2, delayed=0, reserved=0)
    seed_horizon(redis_client, hp, [("m", "running", NOW)],
                 [("m:grouped", "m", NOW, {"redis:default,emails": 4}), ("m:solo", "m", NOW, {"redis:default": 1})],
                 {"default": 1000, "emails": 3000}, [], [])
    r = await collect(REDIS_URL, [{"layout": "horizon", "prefix": app, "horizon_prefix": hp}])
    # group: (6 x 1000 + 2 x 3000) / 4 / 1000 = 3 s; default alone: 6 x 1000 / 1 / 1000 = 6 s
    assert {q.queue: (q.depth, q.wait_seconds) for q in r.queues} == {"default": (6, 6), "emails": (2, 3)}


async def test_malformed_items_reach_the_exposition(redis_client: redis.Redis, prefix: str,
                                                    make_scheduler: Any) -> None:
    key = f"{prefix}dirty"
    redis_client.rpush(key, "{not json", json.dumps({"ts": "soon"}), json.dumps({"ts": 1_600_000_000}))
    scheduler = make_scheduler(f"""
sources:
  - name: r
    type: redis
    url: {REDIS_URL}
    queues:
      - {{layout: list, name: q, key: "{key}", timestamp_field: ts}}
      - {{layout: list, name: gone, key: "{prefix}missing", timestamp_field: ts}}
""")
    await scheduler.collect_once()
    got = samples(scheduler)
    assert got['jobqueue_malformed_items{source="r"}'] == 2
    assert got['jobqueue_depth{source="r",tenant="",queue="q"}'] == 3
    assert got['jobqueue_oldest_timestamp_seconds{source="r",tenant="",queue="q"}'] == 1_600_000_000
    assert got['jobqueue_depth{source="r",tenant="",queue="gone"}'] == 0
    assert got['jobqueue_oldest_age_seconds{source="r",tenant="",queue="gone"}'] == 0
    assert 'jobqueue_oldest_timestamp_seconds{source="r",tenant="",queue="gone"}' not in got
