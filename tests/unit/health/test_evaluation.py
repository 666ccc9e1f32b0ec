"""Health rules on literal snapshots: every rule kind, the status it yields, ids and texts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from exporter.config import parse_config
from exporter.facts import CheckRecord
from exporter.health.config import QueueRule, SystemConfig
from exporter.health.evaluation import HealthMonitor, evaluate
from exporter.health.history import History
from exporter.health.rules import ago, in_quiet_hours, queue_level
from exporter.metrics import Renderer
from exporter.model import QueueStats, Reading, Snapshot, SourceState, SourceStatus
from exporter.sources.postgres.checks import CheckResult
from exporter.values import as_time, dig, iso
from tests.support import builders

NOW = datetime(2026, 3, 2, 10, 30, tzinfo=UTC).timestamp()


def state(name: str, read: Reading | None, up: bool | None = None, collections: int = 1) -> SourceState:
    return builders.state(name, read, up, at=NOW, collections=collections)


def snap(**sources: SourceState) -> Snapshot:
    return builders.snapshot(*sources.values(), at=NOW)


def system(**fields: Any) -> SystemConfig:
    return SystemConfig.model_validate({"name": "sys", **fields})


def run(sysconf: SystemConfig, snapshot: Snapshot, history: History | None = None):
    return evaluate(sysconf, snapshot, history or History(), NOW)


class TestSmallFunctions:
    @pytest.mark.parametrize("seconds,text", [(0, "0s"), (45, "45s"), (2700, "45m"), (3600, "1h"), (8100, "2h15m")])
    def test_ago(self, seconds: float, text: str) -> None:
        assert ago(seconds) == text

    @pytest.mark.parametrize("window,hhmm,inside", [
        ("21:00-06:00", "22:15", True), ("21:00-06:00", "05:59", True), ("21:00-06:00", "06:00", False),
        ("21:00-06:00", "12:00", False), ("09:00-17:00", "09:00", True), ("09:00-17:00", "17:00", False),
        (None, "22:00", False), ("10:00-10:00", "10:00", False),
    ])
    def test_quiet_hours(self, window: str | None, hhmm: str, inside: bool) -> None:
        h, m = map(int, hhmm.split(":"))
        now = datetime(2026, 3, 2, h, m, tzinfo=UTC).timestamp()
        assert in_quiet_hours(window, "UTC", now) is inside

    def test_quiet_hours_follow_the_timezone(self) -> None:
        now = datetime(2026, 3, 2, 20, 30, tzinfo=UTC).timestamp()  # 21:30 in Paris (CET)
        assert in_quiet_hours("21:00-06:00", "Europe/Paris", now) is True
        assert in_quiet_hours("21:00-06:00", "UTC", now) is False

    @pytest.mark.parametrize("waiting,failed,level", [
        (0, 0, "healthy"), (99, 10, "healthy"), (100, 0, "warning"), (1000, 0, "warning"), (1001, 0, "critical"),
        (5, 11, "critical"), (None, None, "healthy"),
    ])
    def test_queue_level_follows_the_platform_seed(self, waiting: int | None, failed: int | None, level: str) -> None:
        assert queue_level(waiting, failed, QueueRule(source="r")) == level

    def test_dig_and_times(self) -> None:
        details = {"checks": {"q": {"rows": [{"depth": 15}]}}}
        assert dig(details, "checks.q.rows.0.depth") == 15
        assert dig(details, "checks.q.rows.1.depth") is None
        assert dig(details, "checks.missing.rows") is None
        assert as_time("2026-03-02T10:30:00.000Z") == NOW
        assert as_time(NOW * 1000) == NOW
        assert iso(NOW, millis=True) == "2026-03-02T10:30:00.000Z"

    def test_check_records_keep_consistency_severities_and_mark_data_checks(self) -> None:
        warn = CheckResult("stale_processing", "warn", rows=({"file_name": "v.mp4"},), count=1)
        data = CheckResult("queue", None, rows=({"depth": 3},), count=1)
        assert warn.record() == CheckRecord("stale_processing", "warn", 1, ({"file_name": "v.mp4"},), None)
        assert data.record().severity is None


class TestRules:
    def test_all_well_is_ok(self) -> None:
        reading = Reading(queues=(QueueStats("events", 3),))
        health = run(system(queues=[{"source": "r", "queue": "events"}]), snap(r=state("r", reading)))
        assert (health.status, health.issues) == ("ok", ())

    def test_unreachable_source_is_unhealthy_or_as_configured(self) -> None:
        s = snap(r=state("r", None))
        health = run(system(sources=["r"]), s)
        assert health.status == "unhealthy"
        assert [(i.id, i.text) for i in health.issues] == [("source_down:r", "r unreachable (unreachable)")]
        assert run(system(sources=["r"], down="degraded"), s).status == "degraded"

    def test_a_source_not_yet_collected_is_no_issue(self) -> None:
        assert run(system(sources=["r"]), snap(r=state("r", None, collections=0))).status == "ok"

    @pytest.mark.parametrize("depth,failed,status,ids", [
        (99, None, "ok", []),
        (100, None, "degraded", ["queue_warning:events"]),
        (1001, None, "unhealthy", ["queue_critical:events"]),
        (5, 11, "unhealthy", ["queue_failed:events"]),
    ])
    def test_queue_thresholds(self, depth: int, failed: int | None, status: str, ids: list[str]) -> None:
        reading = Reading(queues=(QueueStats("events", depth, failed=failed),))
        health = run(system(queues=[{"source": "r", "queue": "events"}]), snap(r=state("r", reading)))
        assert (health.status, [i.id for i in health.issues]) == (status, ids)

    def test_the_worst_tenant_counts_and_is_named(self) -> None:
        reading = Reading(queues=(QueueStats("events", 5, "t1"), QueueStats("events", 2000, "t2")))
        health = run(system(queues=[{"source": "r", "queue": "events", "tenant": "*"}]), snap(r=state("r", reading)))
        assert [i.text for i in health.issues] == ["Queue events (tenant t2): 2000 waiting (> 1000)"]

    def test_depth_rising_over_consecutive_polls(self) -> None:
        conf = system(queues=[{"source": "r", "queue": "events", "rising_polls": 3}])
        monitor = HealthMonitor([conf], clock=lambda: NOW)
        for i, depth in enumerate((1, 2, 3)):
            status = SourceStatus("r", "redis", True, NOW + i, 0.0, NOW + i, collections=i + 1)
            monitor(Snapshot({"r": SourceState(status, Reading(queues=(QueueStats("events", depth),)))}, NOW + i))
        assert monitor.get("sys").status == "ok"
        status = SourceStatus("r", "redis", True, NOW + 9, 0.0, NOW + 9, collections=4)
        monitor(Snapshot({"r": SourceState(status, Reading(queues=(QueueStats("events", 4),)))}, NOW + 9))
        assert [(i.id, i.text) for i in monitor.get("sys").issues] == [
            ("depth_rising:events", "Queue events: depth rising over 3 polls (1 -> 4)")]

    def _planning(self, **overrides: Any) -> tuple[SystemConfig, Snapshot]:
        details = {"jobs": {"run": True, "paused": False},
                   "workers": {"backfill_at": NOW - 45 * 60, "refresh_at": NOW - 10, "refresh_state": "idle"},
                   "queue": {"ready": 100}, "backups": {"total": 127, "disabled": 15}}
        for key, value in overrides.items():
            details[key] = value
        conf = system(
            workers=[{"name": "backfill", "source": "pg", "last_run": "workers.backfill_at", "interval": "10m"},
                     {"name": "refreshWorker", "source": "pg", "last_run": "workers.refresh_at", "interval": "30s",
                      "state": "workers.refresh_state"}],
            stuck=[{"source": "pg", "ready": "queue.ready", "worker": "refreshWorker"}],
            shares=[{"source": "pg", "total": "backups.total", "part": "backups.disabled"}],
            jobs={"source": "pg", "enabled": "jobs.run", "paused": "jobs.paused"},
        )
        return conf, snap(pg=state("pg", Reading(details=details)))

    def test_planning_seed_issue_texts(self) -> None:
        health = run(*self._planning())
        assert health.status == "unhealthy"
        assert [i.text for i in health.issues] == [
            "Backfill stale (45m ago)", "Queue stuck: 100 ready but worker idle", "High disabled: 15/127 (12%)"]
        assert [i.id for i in health.issues] == ["worker_stale:backfill", "queue_stuck:refreshWorker",
                                                 "high_disabled"]
        assert health.workers["refreshWorker"].state == "idle"
        assert health.workers["backfill"].state is None

    def test_jobs_not_started_and_paused(self) -> None:
        health = run(*self._planning(jobs={"run": False, "paused": False}))
        assert health.issues[0].text == "Jobs not started"
        health = run(*self._planning(jobs={"run": True, "paused": True}, backups={"total": 10, "disabled": 0},
                                     workers={"backfill_at": NOW, "refresh_at": NOW, "refresh_state": "working"}))
        assert (health.status, [i.text for i in health.issues]) == ("degraded", ["Jobs paused"])

    def test_only_disabled_share_is_degraded(self) -> None:
        health = run(*self._planning(workers={"backfill_at": NOW, "refresh_at": NOW, "refresh_state": "working"}))
        assert (health.status, [i.id for i in health.issues]) == ("degraded", ["high_disabled"])

    def test_quiet_hours_silence_nothing(self) -> None:
        """Seed 004: "If either worker hasn't run in 2.5x its expected interval, mark as stale", with no
        quiet-hours exception (backfill 45 min late, in quiet hours, used to read healthy)."""
        conf, s = self._planning()
        quiet = conf.model_copy(update={"quiet_hours": "10:00-11:00"})
        health = run(quiet, s)
        assert health.in_quiet_hours is True
        assert [i.id for i in health.issues] == ["worker_stale:backfill", "queue_stuck:refreshWorker",
                                                 "high_disabled"]
        assert health.status == "unhealthy"

    @pytest.mark.parametrize("ready,stuck", [(1, False), (99, False), (100, True), (5000, True)])
    def test_many_ready_items_default_to_100(self, ready: int, stuck: bool) -> None:
        """Seed 004's "many ready items but worker idle": 100 by default (its own example issue), so a few
        items a 30 s poller has not reached yet are not a stuck queue."""
        conf, s = self._planning(queue={"ready": ready})
        assert ("queue_stuck:refreshWorker" in [i.id for i in run(conf, s).issues]) is stuck

    def test_a_check_the_system_reads_that_cannot_run_degrades_it(self) -> None:
        """Issue 22 item 7: the example's plannings system read ok while the checks feeding its rules were
        jobqueue_check_up 0. A check a rule reads (`checks.<name>.…`) or a `checks` rule names, that
        cannot run, is `check_failed:<name>` (degraded); a failing check nobody reads changes nothing."""
        missing = 'relation "planning_worker_runs" does not exist'
        facts = (CheckResult("workers", None, error=missing).record(),
                 CheckResult("last_backup", None, error="relation missing").record(),
                 CheckResult("unread", None, error="boom").record(),
                 CheckResult("backups", None, rows=({"total": 10, "disabled": 0},), count=1).record())
        details = {"checks": {"workers": {"rows": [], "error": missing},
                              "backups": {"rows": [{"total": 10, "disabled": 0}]}}}
        conf = system(
            workers=[{"name": "backfill", "source": "pg", "last_run": "checks.workers.rows.0.backfill_at",
                      "interval": "10m"}],
            shares=[{"source": "pg", "total": "checks.backups.rows.0.total", "part": "checks.backups.rows.0.disabled"}],
            checks=[{"source": "pg", "checks": ["last_backup"]}])
        health = run(conf, snap(pg=state("pg", Reading(details=details, facts=facts))))
        assert health.status == "degraded"
        assert [(i.id, i.text) for i in health.issues] == [
            ("check_failed:workers", f"Check workers cannot run: {missing}"),
            ("check_failed:last_backup", "Check last_backup cannot run: relation missing")]
        assert run(system(), snap(pg=state("pg", Reading(details=details, facts=facts)))).status == "ok"

    def test_components_and_consistency_checks(self) -> None:
        details = {"agents": {"agents": [{"hostname": "web-01", "status": "Ready"},
                                         {"hostname": "web-02", "status": "NotReady"}]}}
        checks = (CheckRecord("stale", "warn", 3), CheckRecord("residue", "info", 2))
        conf = system(components=[{"name": "agents", "source": "n", "path": "agents.agents"}],
                      checks=[{"source": "n"}])
        health = run(conf, snap(n=state("n", Reading(details=details, facts=checks))))
        assert [(i.id, i.severity) for i in health.issues] == [
            ("component_unhealthy:agents:web-02", "unhealthy"), ("check:stale", "degraded"), ("check:residue", "info")]
        assert health.status == "unhealthy"


class TestMonitor:
    def test_stateset_issue_and_worker_lines(self) -> None:
        conf = system(sources=["r"], workers=[{"name": "w", "source": "r", "last_run": "w", "interval": 60}])
        monitor = HealthMonitor([conf], clock=lambda: NOW)
        monitor(snap(r=state("r", None)))
        assert Renderer().samples(monitor.samples(snap())) == {
            "jobqueue_health_status": b'jobqueue_health_status{system="sys",status="ok"} 0\n'
                                      b'jobqueue_health_status{system="sys",status="degraded"} 0\n'
                                      b'jobqueue_health_status{system="sys",status="unhealthy"} 1\n',
            "jobqueue_health_issue": b'jobqueue_health_issue{system="sys",issue="source_down:r"} 1\n',
            "jobqueue_health_quiet_hours": b'jobqueue_health_quiet_hours{system="sys"} 0\n',
            "jobqueue_worker_expected_interval_seconds":
                b'jobqueue_worker_expected_interval_seconds{system="sys",worker="w"} 60\n',
        }
        monitor(snap(r=state("r", Reading(details={"w": NOW - 5}))))
        lines = Renderer().samples(monitor.samples(snap()))
        assert b'status="ok"} 1' in lines["jobqueue_health_status"]
        assert "jobqueue_health_issue" not in lines
        assert lines["jobqueue_worker_last_run_timestamp_seconds"] == (
            f'jobqueue_worker_last_run_timestamp_seconds{{system="sys",worker="w"}} {int(NOW - 5)}\n'.encode())

    def test_events_record_raise_and_resolve(self) -> None:
        clock = [NOW]
        monitor = HealthMonitor([system(sources=["r"])], clock=lambda: clock[0])
        monitor(snap(r=state("r", None)))
        clock[0] += 60
        monitor(snap(r=state("r", Reading())))
        [event] = monitor.events
        assert (event.number, event.issue.id, event.at, event.resolved_at) == (1, "source_down:r", NOW, NOW + 60)


class TestConfig:
    BASE = """
sources:
  - {name: r, type: redis, queues: [{layout: list, name: events, key: k}]}
"""

    @pytest.mark.parametrize("extra,message", [
        ("systems: [{name: s, sources: [nope]}]", "<test>:4: systems[0].sources[0]: unknown source 'nope'"),
        ("systems: [{name: s, queues: [{source: q}]}]", "<test>:4: systems[0].queues[0].source: unknown source 'q'"),
        ("shims: {ops: {system: x}}", "<test>:4: shims.ops.system: unknown system 'x'"),
        ("systems: [{name: s, quiet_hours: '25:00-01:00'}]",
         "<test>:4: systems[0].quiet_hours: quiet_hours must be HH:MM-HH:MM, got '25:00-01:00'"),
        ("systems: [{name: s, queues: [{source: r, warning: 10, critical: 5}]}]",
         "<test>:4: systems[0].queues[0]: warning (10) must not exceed critical (5)"),
    ])
    def test_errors_name_the_key_path(self, extra: str, message: str) -> None:
        from exporter.config import ConfigError

        with pytest.raises(ConfigError) as err:
            parse_config(self.BASE + extra, "<test>", {})
        assert err.value.lines() == [message]
