"""Seed 000's pure functions on literal views: tenant queues, landlord Horizon, tenant list."""

from __future__ import annotations

from exporter.facts import HorizonQueue, HorizonState, Tenants
from exporter.model import QueueStats
from exporter.web.shims.tenant import TenantShim, landlord_health, tenant_health, tenant_list
from tests.support import builders

NOW = builders.NOW
SHIM = TenantShim(system="app", source="redis")


def test_tenant_queues_with_age_and_a_missing_queue_as_zero() -> None:
    reading = builders.reading([QueueStats("events", 4, "acme", NOW - 30.7)], facts=[Tenants(("acme",))])
    v = builders.view(builders.snapshot(builders.state("redis", reading)))
    assert tenant_health(v, SHIM, "acme") == (200, {
        "status": "ok", "tenant": "acme", "redis": {"reachable": True},
        "queues": {"events": {"depth": 4, "oldest_age_seconds": 30}, "heartbeats": {"depth": 0,
                                                                                     "oldest_age_seconds": None}}})


def test_unreachable_redis_is_503_with_nulls() -> None:
    v = builders.view(builders.snapshot(builders.state("redis", None)))
    assert tenant_health(v, SHIM, "acme") == (503, {
        "status": "degraded", "tenant": "acme", "redis": {"reachable": False},
        "queues": {"events": {"depth": None, "oldest_age_seconds": None},
                   "heartbeats": {"depth": None, "oldest_age_seconds": None}}})
    assert landlord_health(v, SHIM) == (503, {"status": "degraded", "redis": {"reachable": False}, "queues": {},
                                              "failed_jobs": None})
    assert tenant_list(v, SHIM) == (503, {"tenants": None})


def test_landlord_reads_the_horizon_fact_of_its_tenant() -> None:
    horizon = HorizonState("", {"mail": HorizonQueue(12, 3), "default": HorizonQueue(0, 0)}, 2)
    other = HorizonState("acme", {"mail": HorizonQueue(99, 99)}, 50)
    v = builders.view(builders.snapshot(builders.state("redis", builders.reading(facts=[other, horizon]))))
    assert landlord_health(v, SHIM) == (200, {
        "status": "ok", "redis": {"reachable": True}, "failed_jobs": 2,
        "queues": {"default": {"pending": 0, "wait_seconds": 0}, "mail": {"pending": 12, "wait_seconds": 3}}})


def test_tenant_list_from_the_fact_or_from_the_queues() -> None:
    with_fact = builders.reading(facts=[Tenants(("b", "a"))])
    without = builders.reading([QueueStats("events", 1, "z"), QueueStats("events", 1, "y"), QueueStats("x", 1)])
    assert tenant_list(builders.view(builders.snapshot(builders.state("redis", with_fact))), SHIM) == (
        200, {"tenants": ["a", "b"]})
    assert tenant_list(builders.view(builders.snapshot(builders.state("redis", without))), SHIM) == (
        200, {"tenants": ["y", "z"]})
