"""End to end: redis-server -> exporter -> Prometheus (bundled rules) -> Alertmanager (example config)
-> webhook; and every dashboard query answered by that Prometheus.

All processes are real and the test's own (free ports, temporary directories). The rules are the
bundled file with every `for:` shortened to 2s (see support.scaled_rules); nothing else changes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.e2e import seed
from tests.e2e.support import (
    ROOT,
    Prometheus,
    Webhook,
    exporter_args,
    monitoring,
    process,
    wait_until,
)
from tests.support.nats import NatsServer
from tests.support.postgres import scratch_database
from tests.support.servers import RedisServer, free_port

pytestmark = pytest.mark.e2e

DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
NOT_RUN: set[str] = set()  # dashboards whose backends the stack does not run (none)


@dataclass
class Stack:
    redis: RedisServer
    prometheus: Prometheus
    webhook: Webhook
    started: float
    outage_done: bool = False
    timings: dict[str, float] = field(default_factory=dict)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("e2e")
    started = time.time()
    server, broker = RedisServer(tmp), NatsServer(tmp / "nats")
    try:
        server.start()
        broker.start()
        with scratch_database(prefix="jqe2e") as dsn:
            seed.redis_data(server.url)
            seed.nats_data(broker.url)
            seed.postgres_data(dsn, tmp / "migrations")
            exporter_port = free_port()
            config = tmp / "exporter.yaml"
            config.write_text(seed.exporter_config(tmp, server.url, broker.url, dsn, exporter_port))
            with seed.heartbeats(server.url), seed.celery_worker(server.url, tmp), \
                    process(exporter_args(config, exporter_port), tmp, "exporter", exporter_port,
                            env={"PYTHONPATH": str(ROOT)}), monitoring(tmp, exporter_port) as (prometheus, webhook):
                wait_until("every source up in Prometheus",
                           lambda: len(prometheus.query("jobqueue_source_up == 1")) == 6, timeout=30)
                # the exporter hears Celery's events only once it listens: send the tasks after the
                # worker's heartbeat reached it
                wait_until("the Celery worker live in Prometheus",
                           lambda: prometheus.query('jobqueue_workers{source="cache",queue="",state="idle"} == 1'),
                           timeout=60)
                seed.celery_tasks(server.url)
                wait_until("the Celery tasks counted in Prometheus",
                           lambda: prometheus.query('jobqueue_celery_tasks_total{outcome="failed"} == 1')
                           and prometheus.query('jobqueue_celery_tasks_total{outcome="succeeded"} == 3'),
                           timeout=60)
                yield Stack(server, prometheus, webhook, started)
    finally:
        broker.stop()
        server.stop()


def outage(stack: Stack) -> None:
    """Stop Redis until the source-down page arrives, restart it until the resolved notification arrives."""
    if stack.outage_done:
        return
    t0 = time.monotonic()
    stack.redis.stop()
    wait_until("JobQueueSourceDown and JobQueueSystemUnhealthy firing at the pager receiver",
               lambda: stack.webhook.alerts("/pager", "JobQueueSourceDown", "firing")
               and stack.webhook.alerts("/pager", "JobQueueSystemUnhealthy", "firing"), timeout=40)
    stack.timings["page"] = time.monotonic() - t0
    t1 = time.monotonic()
    stack.redis.start()  # the same object, port and directory: the fixture stops it at the end
    seed.redis_data(stack.redis.url)
    wait_until("JobQueueSourceDown and JobQueueSystemUnhealthy resolved at the pager receiver",
               lambda: stack.webhook.alerts("/pager", "JobQueueSourceDown", "resolved")
               and stack.webhook.alerts("/pager", "JobQueueSystemUnhealthy", "resolved"), timeout=40)
    stack.timings["resolve"] = time.monotonic() - t1
    stack.outage_done = True
    print(f"redis stopped -> page in {stack.timings['page']:.1f}s; restarted -> resolved in "
          f"{stack.timings['resolve']:.1f}s")


def test_source_down_pages_through_alertmanager_and_resolves(stack: Stack) -> None:
    assert not stack.webhook.alerts("/pager", "JobQueueSourceDown", "firing"), "paged before the outage"
    outage(stack)
    (firing,) = stack.webhook.alerts("/pager", "JobQueueSourceDown", "firing")[:1]
    assert firing["labels"]["source"] == "cache"
    assert firing["labels"]["backend"] == "redis"
    assert firing["labels"]["severity"] == "critical"
    assert firing["annotations"]["runbook_url"] == "docs/runbook.md#jobqueuesourcedown"
    assert "Source cache (redis)" in firing["annotations"]["description"]
    resolved = stack.webhook.alerts("/pager", "JobQueueSourceDown", "resolved")
    assert resolved[0]["labels"]["source"] == "cache"
    # The other sources never went down, so nothing paged for them; no ticket carried a page.
    assert all(a["labels"]["source"] == "cache" for a in stack.webhook.alerts("/pager", "JobQueueSourceDown",
                                                                                "firing"))
    assert not stack.webhook.alerts("/ticket", "JobQueueSourceDown", "firing")
    # The exporter's health verdict on the system that uses the source paged too, and resolved.
    (system,) = stack.webhook.alerts("/pager", "JobQueueSystemUnhealthy", "firing")[:1]
    assert system["labels"]["system"] == "shop"
    assert "source_down" in system["annotations"]["description"] or \
        "backend_unreachable" in system["annotations"]["description"]
    assert stack.webhook.alerts("/pager", "JobQueueSystemUnhealthy", "resolved")


def test_a_backlog_without_a_live_worker_pages_and_served_queues_do_not(stack: Stack) -> None:
    """The RQ queue holds a job and no RQ worker runs: JobQueueNoWorkers pages for it. Sidekiq's and
    Horizon's queues have live workers (their heartbeats), Celery's workers name no queue: quiet."""
    def no_workers() -> list[dict[str, Any]]:
        return stack.webhook.alerts("/pager", "JobQueueNoWorkers", "firing")

    (alert,) = wait_until("JobQueueNoWorkers for the RQ queue at the pager", no_workers, timeout=40)[:1]
    assert (alert["labels"]["source"], alert["labels"]["queue"]) == ("cache", "emails")
    assert alert["annotations"]["runbook_url"] == "docs/runbook.md#jobqueuenoworkers"
    assert {a["labels"]["queue"] for a in no_workers()} == {"emails"}


def test_overdue_jobs_with_no_live_scheduler_page(stack: Stack) -> None:
    """Solid Queue's `billing` holds a job past due and its dispatcher is silent: the stalled-scheduler
    page reaches the pager; `reports`, with nothing overdue, does not."""
    def stalled() -> list[dict[str, Any]]:
        return stack.webhook.alerts("/pager", "JobQueueSchedulerStalled", "firing")

    (alert,) = wait_until("JobQueueSchedulerStalled at the pager", stalled, timeout=40)[:1]
    assert (alert["labels"]["source"], alert["labels"]["queue"], alert["labels"]["severity"]) == \
        ("db", "billing", "critical")
    assert "no live scheduler" in alert["annotations"]["description"]
    assert {a["labels"]["queue"] for a in stalled()} == {"billing"}


def test_tenants_dropped_by_the_discovery_cap_raise_a_ticket(stack: Stack) -> None:
    """Tenant discovery finds acme and zeta under a cap of 1: zeta is read by nobody and the ticket
    fires in Prometheus (tickets are muted in quiet hours, so Prometheus is asked, not the receiver)."""
    def dropped() -> list[dict[str, Any]]:
        return [a for a in stack.prometheus.alerts() if a["labels"]["alertname"] == "JobQueueTenantsDropped"
                and a["state"] == "firing"]

    (alert,) = wait_until("JobQueueTenantsDropped firing", dropped, timeout=40)
    assert (alert["labels"]["source"], alert["labels"]["severity"]) == ("cache", "warning")
    assert "leaves 1 tenants out of its discovery cap" in alert["annotations"]["description"]


def substitute(expr: str) -> str:
    """A dashboard query as Grafana sends it with every variable at All."""
    for name, value in {"$__rate_interval": "5s", "$__interval": "1s", "$__range": "1m", "$job": ".+",
                        "$instance": ".+", "$source": ".+", "$queue": ".+"}.items():
        expr = expr.replace(name, value)
    return expr


def dashboard_queries() -> list[Any]:
    out = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                marks = [pytest.mark.skip(reason=f"{path.name}: its backend does not run end to end")] \
                    if path.name in NOT_RUN else []
                out.append(pytest.param(path.name, panel["title"], target, marks=marks,
                                        id=f"{path.stem}:{panel['title']}:{target['refId']}"))
    return out


@pytest.mark.parametrize(("board", "title", "target"), dashboard_queries())
def test_every_dashboard_query_returns_data(stack: Stack, board: str, title: str, target: dict[str, Any]) -> None:
    outage(stack)  # the collection-errors panel needs a failure to show
    expr = substitute(target["expr"])
    if target["instant"]:
        result = wait_until(f"{board} {title!r}: {expr}", lambda: stack.prometheus.query(expr), timeout=15)
    else:
        result = wait_until(f"{board} {title!r}: {expr}",
                            lambda: stack.prometheus.query_range(expr, stack.started, time.time()), timeout=15)
    assert result


def variable_queries() -> list[Any]:
    out = []
    for path in DASHBOARDS:
        for var in json.loads(path.read_text())["templating"]["list"]:
            if var["type"] == "query":
                marks = [pytest.mark.skip(reason=f"{path.name}: its backend does not run end to end")] \
                    if path.name in NOT_RUN and var["name"] in ("source", "queue") else []
                out.append(pytest.param(path.name, var, marks=marks, id=f"{path.stem}:{var['name']}"))
    return out


@pytest.mark.parametrize(("board", "var"), variable_queries())
def test_every_dashboard_variable_has_values(stack: Stack, board: str, var: dict[str, Any]) -> None:
    selector, _, label = substitute(var["definition"]).removeprefix("label_values(").removesuffix(")").rpartition(",")
    label = label.strip()
    values = wait_until(f"{board} variable {var['name']}",
                        lambda: {s[label] for s in stack.prometheus.series(selector, stack.started) if label in s},
                        timeout=15)
    assert values
