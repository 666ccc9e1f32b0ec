"""Generates alerts/jobqueue.rules.yml from alerts/config.yml (run: python3 alerts/build.py).

The Python generator is the one source: grafana/build.py writes the dashboards from the same
config, and mixin/build.py turns both into the jsonnet mixin (mixin/mixin.libsonnet with a _config
users override) for teams that vendor mixins; tests keep the rules, dashboards and mixin equal.

    python3 alerts/build.py [--config my.yml] [--out DIR]   # DIR/jobqueue.rules.yml
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "config.yml"
OUT = HERE / "jobqueue.rules.yml"

DEFAULTS: dict[str, Any] = {
    "job_selector": 'job=~".*jobqueue.*"',
    "runbook_base_url": "",
    "thresholds": {
        "queue_depth_warning": 100, "queue_depth_critical": 1000, "failed_jobs_critical": 10,
        "oldest_age_warning_seconds": 900, "oldest_age_critical_seconds": 3600, "worker_stale_factor": 2.5,
        "worker_expected_interval_seconds": 600, "queue_stuck_seconds": 300, "collection_stale_seconds": 300,
        "worker_saturation_ratio": 0.9, "failure_ratio_warning": 0.05, "failure_ratio_rise_factor": 2,
    },
    "windows": {
        "no_workers_for": "5m", "throughput_stalled": "15m", "saturation_for": "15m", "failure_ratio": "15m",
        "failure_ratio_baseline": "6h", "tenants_dropped_for": "15m", "overdue_for": "5m",
        "abandoned_for": "15m",
    },
    "slo": {
        "target": 0.99, "objective_seconds": 300, "objectives": [], "budget_window": "28d",
        "page_fast": {"burn_rate": 14.4, "long": "1h", "short": "5m"},
        "page_slow": {"burn_rate": 6, "long": "6h", "short": "30m"},
        "ticket": {"burn_rate": 1, "long": "3d", "short": "6h"},
    },
    "queues": [],
}

# Thresholds a queue may override in `queues` (a payments queue and a nightly batch queue do not share
# a backlog limit); the alerts compare each queue against its own recorded value.
QUEUE_THRESHOLDS = {  # name -> the queue series it is compared with (and recorded on)
    "queue_depth_warning": "jobqueue_depth", "queue_depth_critical": "jobqueue_depth",
    "failed_jobs_critical": "jobqueue_failed_jobs",
    "oldest_age_warning_seconds": "jobqueue_oldest_timestamp_seconds",
    "oldest_age_critical_seconds": "jobqueue_oldest_timestamp_seconds",
}

DURATION = re.compile(r"^[0-9]+(ms|s|m|h|d|w|y)$")
# The labels of one queue series; joins between queue metrics are on these.
QUEUE = "job, instance, source, tenant, queue"
TENANT = "job, instance, source, tenant"


def merge(base: dict[str, Any], override: dict[str, Any], where: str = "") -> dict[str, Any]:
    """`override` on top of `base`, refusing keys `base` does not know (a typo must not pass silently)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if key not in base:
            raise SystemExit(f"alerts config: unknown key {where}{key!r} (known: {', '.join(base)})")
        out[key] = merge(base[key], value, f"{where}{key}.") if isinstance(base[key], dict) else value
    return out


def load(path: Path | None = None) -> dict[str, Any]:
    """The knobs: DEFAULTS with the config file on top; errors name the file and the key."""
    path = path or CONFIG
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise SystemExit(f"{path}: expected a mapping")
    config = merge(DEFAULTS, raw)
    for name, value in config["thresholds"].items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SystemExit(f"{path}: thresholds.{name} must be a number, not {value!r}")
    durations = {f"windows.{k}": v for k, v in config["windows"].items()}
    durations["slo.budget_window"] = config["slo"]["budget_window"]
    for tier in ("page_fast", "page_slow", "ticket"):
        durations |= {f"slo.{tier}.{k}": config["slo"][tier][k] for k in ("long", "short")}
    for name, value in durations.items():
        if not DURATION.match(str(value)):
            raise SystemExit(f"{path}: {name} must be a Prometheus duration such as 15m, not {value!r}")
    if not 0 < float(config["slo"]["target"]) < 1:
        raise SystemExit(f"{path}: slo.target must be between 0 and 1")
    for i, objective in enumerate(config["slo"]["objectives"]):
        if set(objective) != {"selector", "objective_seconds"}:
            raise SystemExit(f"{path}: slo.objectives[{i}] needs exactly selector and objective_seconds")
    if not isinstance(config["queues"], list):
        raise SystemExit(f"{path}: queues must be a list of {{selector, <threshold>: <number>, ...}}")
    for i, override in enumerate(config["queues"]):
        if not isinstance(override, dict) or not isinstance(override.get("selector"), str):
            raise SystemExit(f"{path}: queues[{i}] needs a selector (PromQL label matchers, e.g. queue=\"payments\")")
        unknown = sorted(set(override) - {"selector", *QUEUE_THRESHOLDS})
        if unknown:
            raise SystemExit(f"{path}: queues[{i}]: unknown key {unknown[0]!r} (known: selector, "
                             f"{', '.join(QUEUE_THRESHOLDS)})")
        for name in QUEUE_THRESHOLDS:
            value = override.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise SystemExit(f"{path}: queues[{i}].{name} must be a number, not {value!r}")
    return config


def runbook(config: dict[str, Any], alert: str) -> str:
    base = str(config["runbook_base_url"]).rstrip("/")
    return f"{base + '/' if base else ''}docs/runbook.md#{alert.lower()}"


def dedent(expr: str) -> str:
    text = textwrap.dedent(expr).strip("\n")
    return text + "\n" if "\n" in text else text


def number(value: float) -> str:
    return f"{value:g}"


def threshold(name: str) -> str:
    return f"scalar(jobqueue:threshold:{name})"


def queue_threshold(name: str) -> str:
    """A per-queue threshold (alerts/config.yml `queues`, else the default). Matched on all labels: it is
    recorded from the queue's own series, so it carries exactly its labels, and an `on (...)` narrower
    than them fails the comparison for every queue when two series share job and instance."""
    return f"jobqueue:queue_threshold:{name}"


class Rules:
    """Rule groups in order; each rule may carry a comment written above it."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.groups: list[dict[str, Any]] = []

    def group(self, name: str) -> list[dict[str, Any]]:
        self.groups.append({"name": name, "rules": []})
        rules: list[dict[str, Any]] = self.groups[-1]["rules"]
        return rules

    def alert(self, rules: list[dict[str, Any]], name: str, severity: str, expr: str, for_: str, summary: str,
              description: str, comment: str = "") -> None:
        rules.append({"#": comment, "alert": name, "expr": dedent(expr), "for": for_,
                      "labels": {"severity": severity},
                      "annotations": {"summary": summary, "description": description,
                                      "runbook_url": runbook(self.config, name)}})


def record(rules: list[dict[str, Any]], name: str, expr: str, comment: str = "") -> None:
    rules.append({"#": comment, "record": name, "expr": dedent(expr)})


THRESHOLD_NOTES = {
    "queue_depth_warning": 'Waiting items: warning at >= this many (the seeds\' "warning: waiting 100-1000").',
    "queue_depth_critical": 'Waiting items: critical above this many ("critical: waiting > 1000").',
    "failed_jobs_critical": 'Recently failed jobs: critical above this many ("critical: failures > 10").',
    "oldest_age_warning_seconds": "Age of the oldest waiting item: warning, then critical, above these many seconds.",
    "worker_stale_factor": "A worker is stale when not seen for this many times its expected interval.",
    "worker_expected_interval_seconds": "Expected worker interval when the exporter does not export\n"
                                        "jobqueue_worker_expected_interval_seconds for that worker "
                                        "(seed default: 10 minutes).",
    "queue_stuck_seconds": "A queue is stuck when its oldest item has waited this long with no progress and no "
                           "job running.",
    "collection_stale_seconds": "A source's collection is stale when its last success is older than this, or "
                                "than three of its\nintervals when the exporter exports "
                                "jobqueue_source_interval_seconds and that is longer.",
    "worker_saturation_ratio": "Busy slots / capacity of a queue's live workers: saturated above this share.",
    "failure_ratio_warning": "Failed / processed jobs of a queue: a ticket above this share, when rising.",
    "failure_ratio_rise_factor": "Rising: the recent failure ratio is this many times its baseline.",
    "slo_latency_target": "Queue-latency SLO: the share of collections whose oldest item is within its objective.",
    "slo_burn_rate_page_fast": "Burn rates of the multi-window, multi-burn-rate SLO alerts (SRE workbook).",
}


def thresholds(r: Rules) -> None:
    rules = r.group("jobqueue.thresholds")
    slo = r.config["slo"]
    values = {**r.config["thresholds"], "slo_latency_target": slo["target"],
              **{f"slo_burn_rate_{tier}": slo[tier]["burn_rate"] for tier in ("page_fast", "page_slow", "ticket")}}
    for name, value in values.items():
        record(rules, f"jobqueue:threshold:{name}", f"vector({number(value)})", THRESHOLD_NOTES.get(name, ""))


def recordings(r: Rules) -> None:
    rules = r.group("jobqueue.rules")
    record(rules, "jobqueue:worker_expected_interval_seconds", """
        jobqueue_worker_expected_interval_seconds
        or
        (jobqueue_worker_last_run_timestamp_seconds * 0 + scalar(jobqueue:threshold:worker_expected_interval_seconds))
        """, "Expected run interval of each worker: the exporter's own value when it exports one,\n"
             "otherwise the default threshold above.")
    record(rules, "jobqueue:source_stale_after_seconds", """
        clamp_min(3 * jobqueue_source_interval_seconds, scalar(jobqueue:threshold:collection_stale_seconds))
        or
        (jobqueue_last_success_timestamp_seconds * 0 + scalar(jobqueue:threshold:collection_stale_seconds))
        """, "How old a source's last success may get: three intervals, at least the stale threshold.")
    for i, (name, series) in enumerate(QUEUE_THRESHOLDS.items()):
        parts = [f"{series}{{{o['selector']}}} * 0 + {number(o[name])}"
                 for o in r.config["queues"] if o.get(name) is not None]
        parts.append(f"{series} * 0 + {threshold(name)}")
        record(rules, f"jobqueue:queue_threshold:{name}",
               "\nor\n".join(f"({p})" for p in parts) if len(parts) > 1 else parts[0],
               "" if i else "Per queue: the first of alerts/config.yml `queues` whose selector matches the queue and\n"
               "sets the threshold, else the default above (one series per queue, on the queue's labels).")


def flow_recordings(r: Rules) -> list[dict[str, Any]]:
    """Flow recording rules; the flow alerts follow in the same group, which Prometheus evaluates in
    order, so that an alert reads this evaluation's recorded value (groups run concurrently)."""
    w = r.config["windows"]
    rules = r.group("jobqueue.flow")
    for kind in ("processed", "failed"):
        for window in dict.fromkeys([w["failure_ratio"], w["failure_ratio_baseline"]]):
            record(rules, f"jobqueue:jobs_{kind}:rate{window}",
                   f"sum by ({QUEUE}) (rate(jobqueue_jobs_{kind}_total[{window}]))",
                   "Jobs finished (processed) and failed per second, from the libraries' own counters."
                   if (kind, window) == ("processed", w["failure_ratio"]) else "")
    for window in dict.fromkeys([w["failure_ratio"], w["failure_ratio_baseline"]]):
        record(rules, f"jobqueue:jobs_failure_ratio:rate{window}",
               f"jobqueue:jobs_failed:rate{window} / jobqueue:jobs_processed:rate{window}",
               "Share of finished jobs that failed (processed counts successes and failures)."
               if window == w["failure_ratio"] else "")
    record(rules, "jobqueue:worker_utilisation:ratio", f"""
        sum by ({QUEUE}) (jobqueue_worker_busy_slots)
        / sum by ({QUEUE}) (jobqueue_worker_capacity > 0)
        """, "Busy job slots / slots the live workers offer, where the library records both.")
    record(rules, "jobqueue:workers_serving:count", f"""
        sum by ({QUEUE}) (jobqueue_workers{{state!="paused"}})
        """, "Live workers that take jobs from the queue (a paused worker takes none); queue=\"\" for\n"
             "libraries whose workers do not say which queues they serve.")
    return rules


def slo_recordings(r: Rules) -> list[dict[str, Any]]:
    """SLO recording rules; the burn-rate alerts follow in the same group (see flow_recordings)."""
    slo = r.config["slo"]
    rules = r.group("jobqueue.slo")
    parts = [f"jobqueue_oldest_age_seconds{{{o['selector']}}} * 0 + {number(o['objective_seconds'])}"
             for o in slo["objectives"]]
    parts.append(f"jobqueue_oldest_age_seconds * 0 + {number(slo['objective_seconds'])}")
    record(rules, "jobqueue:slo_latency:objective_seconds",
           "\nor\n".join(f"({p})" for p in parts) if len(parts) > 1 else parts[0],
           "How old a queue's oldest waiting item may be in a good collection: the first of alerts/config.yml\n"
           "slo.objectives whose selector matches the queue, else slo.objective_seconds (`or` keeps the first).")
    record(rules, "jobqueue:slo_latency:good", """
        jobqueue_oldest_age_seconds <= bool jobqueue:slo_latency:objective_seconds
        """, "The SLI, one sample per evaluation: 1 when the queue's oldest item is within its objective\n"
             "(an empty queue is good), 0 when not. Its average over a window is the share of good collections.")
    windows = dict.fromkeys(
        [slo[t][k] for t in ("page_fast", "page_slow", "ticket") for k in ("short", "long")] + [slo["budget_window"]])
    for window in sorted(windows, key=seconds):
        record(rules, f"jobqueue:slo_latency:error_ratio{window}",
               f"1 - avg_over_time(jobqueue:slo_latency:good[{window}])",
               "Share of bad collections over each window the burn-rate alerts and the budget panels read."
               if window == min(windows, key=seconds) else "")
    budget = slo["budget_window"]
    record(rules, "jobqueue:slo_latency:budget_remaining_ratio",
           f"1 - jobqueue:slo_latency:error_ratio{budget} / scalar(1 - jobqueue:threshold:slo_latency_target)",
           f"Share of the error budget of the last {budget} still unspent (negative: overspent).")
    return rules


def seconds(duration: str) -> float:
    unit = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    match = re.fullmatch(r"([0-9]+)(ms|s|m|h|d|w|y)", duration)
    assert match, duration
    return int(match.group(1)) * unit[match.group(2)]


def alerts(r: Rules) -> None:
    c, w = r.config, r.config["windows"]
    rules = r.group("jobqueue.alerts")
    a = r.alert
    job = c["job_selector"]
    a(rules, "JobQueueExporterDown", "critical", f"(up{{{job}}} == 0) or absent(up{{{job}}})", "2m",
      "The jobqueue exporter cannot be scraped.",
      "{{ if $labels.instance }}Prometheus has failed to scrape {{ $labels.instance }} (job {{ $labels.job }}) "
      "for 2 minutes{{ else }}Prometheus has had no jobqueue exporter target for 2 minutes{{ end }}; no queue, "
      "source or health metric from it is fresh.",
      "Down, or gone: no target of the job at all (a removed target or a broken service discovery).\n"
      "The job selector is alerts/config.yml job_selector.")
    a(rules, "JobQueueWatchdog", "none", "vector(1)", "0m",
      "Always firing, so that a dead man's switch notices when alerts stop arriving.",
      "This alert fires always{{ with $externalLabels.cluster }} (cluster {{ . }}){{ end }}, as long as "
      "Prometheus evaluates the jobqueue rules and Alertmanager "
      "delivers them. Route it to a dead man's switch (alerts/alertmanager.example.yml `heartbeat`) that pages "
      "when it stops: an Alertmanager that cannot be reached cannot page about itself.",
      "Issue 21 item 8: an unreachable Alertmanager must page. The exporter's own Alertmanager reads\n"
      "(the platform shim's ALERTMANAGER_UNAVAILABLE) page through an http source probing it (JobQueueSourceDown,\n"
      "docs/shims.md); an Alertmanager that is down delivers nothing, so this heartbeat pages from outside.")
    a(rules, "JobQueueShardsMismatch", "critical", """
        (
          sum by (job) (2 ^ jobqueue_exporter_shard_ordinal)
          != on (job) (2 ^ max by (job) (jobqueue_exporter_total_shards) - 1)
        )
        or on (job)
        (
          max by (job) (jobqueue_exporter_total_shards) != on (job) min by (job) (jobqueue_exporter_total_shards)
        )
        """, "5m", "The exporter replicas do not cover every shard of the tenants exactly once.",
      'The replicas of job {{ $labels.job }} report {{ with printf "count(jobqueue_exporter_shard_ordinal{job=%q})"'
      ' $labels.job | query }}{{ . | first | value }}{{ end }} shards of {{ with printf '
      '"max(jobqueue_exporter_total_shards{job=%q})" $labels.job | query }}{{ . | first | value }}{{ end }}, or '
      'disagree on the total or on an ordinal; some tenants are not monitored or are monitored twice.',
      "Sharded replicas (`shard: i/N`): the replicas of a job must agree on N and their ordinals must\n"
      "cover 0..N-1 exactly once (sum of 2^ordinal = 2^N - 1), or some tenants are read by nobody.")
    a(rules, "JobQueueConfigReloadFailed", "warning", "jobqueue_exporter_config_last_reload_successful == 0", "10m",
      "The exporter refused its new config and still runs the previous one.",
      "The last config reload of {{ $labels.instance }} (job {{ $labels.job }}) failed; the previous config keeps "
      "running and the next restart will fail on the same error.",
      "A reload (SIGHUP, POST /-/reload) refused a bad config: the old one still runs, so nothing is\n"
      "blind yet, but the change someone made is not in force and the next restart will fail.")
    a(rules, "JobQueueSourceDown", "critical", "jobqueue_source_up == 0", "1m",
      "A job queue backend cannot be read.",
      "Source {{ $labels.source }} ({{ $labels.backend }}) on {{ $labels.instance }} has failed every collection "
      "for 1 minute; its queue series are dropped.")
    a(rules, "JobQueueCollectionStale", "critical", """
        (time() - jobqueue_last_success_timestamp_seconds > jobqueue:source_stale_after_seconds)
        unless on (source, job, instance) (jobqueue_source_up == 0)
        """, "2m", "A source has not been collected recently although it is not reported down.",
      "Source {{ $labels.source }} on {{ $labels.instance }} last collected successfully "
      "{{ $value | humanizeDuration }} ago; the numbers it serves are frozen.")
    a(rules, "JobQueueCheckFailing", "warning", "jobqueue_check_up == 0", "5m",
      "An operator SQL check cannot run.",
      "Check {{ $labels.check }} of source {{ $labels.source }} on {{ $labels.instance }} has not run for 5 minutes "
      "(missing table, SQL error, or a result that does not fit); every rule and JSON field that reads it is blind.",
      "A check that cannot run must not read as healthy: the systems whose rules read it are degraded\n"
      "(issue check_failed:<check>, JobQueueSystemDegraded); this ticket also covers checks no system reads.")
    a(rules, "JobQueueSystemUnhealthy", "critical", 'jobqueue_health_status{status="unhealthy"} == 1', "1m",
      "A monitored system is unhealthy.",
      "System {{ $labels.system }} on {{ $labels.instance }} is unhealthy: a critical issue the JSON health "
      "endpoints bound to it report in their own words (503 from /api/health/status, `unhealthy` from "
      "/api/ops/plannings, `critical` queues, `down` services). "
      'Active issues: {{ range printf "jobqueue_health_issue{system=%q,instance=%q} == 1" $labels.system '
      "$labels.instance | query }}{{ .Labels.issue }} {{ end }}")
    a(rules, "JobQueueSystemDegraded", "warning", 'jobqueue_health_status{status="degraded"} == 1', "5m",
      "A monitored system is degraded.",
      "System {{ $labels.system }} on {{ $labels.instance }} has been degraded for 5 minutes. "
      'Active issues: {{ range printf "jobqueue_health_issue{system=%q,instance=%q} == 1" $labels.system '
      "$labels.instance | query }}{{ .Labels.issue }} {{ end }}")
    where = WHERE
    for severity, expr in (("warning", f"jobqueue_depth >= {queue_threshold('queue_depth_warning')}"),
                           ("critical", f"jobqueue_depth > {queue_threshold('queue_depth_critical')}")):
        a(rules, "JobQueueDepthHigh", severity, expr, "5m", "A queue has a large backlog.",
          f"Queue {{{{ $labels.queue }}}} {where} has {{{{ $value }}}} waiting items.")
    for severity, name in (("warning", "oldest_age_warning_seconds"), ("critical", "oldest_age_critical_seconds")):
        a(rules, "JobQueueOldestItemTooOld", severity,
          f"time() - jobqueue_oldest_timestamp_seconds > {queue_threshold(name)}", "5m",
          "The oldest waiting item of a queue is too old.",
          f"The oldest item of queue {{{{ $labels.queue }}}} {where} has waited {{{{ $value | humanizeDuration }}}}.")
    a(rules, "JobQueueDepthGrowing", "warning", """
        (jobqueue_depth > jobqueue_depth offset 5m)
        and (jobqueue_depth offset 5m > jobqueue_depth offset 10m)
        and (resets(jobqueue_depth[10m]) == 0)
        """, "5m", "A queue's backlog keeps growing.",
      f"Queue {{{{ $labels.queue }}}} {where} has grown at every scrape for 10 minutes, to {{{{ $value }}}} items.",
      "Rising across consecutive scrapes: never fell during the last 10 minutes and rose in both halves.")
    a(rules, "JobQueueOldestAgeGrowing", "warning", """
        (jobqueue_oldest_age_seconds > jobqueue_oldest_age_seconds offset 5m)
        and (jobqueue_oldest_age_seconds offset 5m > jobqueue_oldest_age_seconds offset 10m)
        and (resets(jobqueue_oldest_age_seconds[10m]) == 0)
        """, "5m", "The oldest item of a queue keeps getting older.",
      f"The oldest item of queue {{{{ $labels.queue }}}} {where} has aged at every scrape for 10 minutes, to "
      "{{ $value | humanizeDuration }}: consumers are falling behind.")
    a(rules, "JobQueueJobsFailing", "warning", "(jobqueue_failed_jobs > 0) and (delta(jobqueue_failed_jobs[15m]) > 0)",
      "1m", "Jobs of a queue are failing.",
      f"Queue {{{{ $labels.queue }}}} {where} counts {{{{ $value }}}} recently failed jobs, more than "
      "15 minutes ago.")
    a(rules, "JobQueueJobsFailing", "critical", f"jobqueue_failed_jobs > {queue_threshold('failed_jobs_critical')}",
      "5m",
      "Jobs of a queue are failing.",
      f"Queue {{{{ $labels.queue }}}} {where} counts {{{{ $value }}}} recently failed jobs.")
    a(rules, "JobQueueWorkerStale", "critical", """
        (time() - jobqueue_worker_last_run_timestamp_seconds)
        > scalar(jobqueue:threshold:worker_stale_factor) * jobqueue:worker_expected_interval_seconds
        """, "1m", "A background worker has not run for 2.5 times its interval.",
      "Worker {{ $labels.worker }} of system {{ $labels.system }} last ran {{ $value | humanizeDuration }} ago.",
      "At any hour: seed 004 makes no quiet-hours exception (the exporter's health rules neither);\n"
      "mute night tickets in Alertmanager instead (alerts/alertmanager.example.yml quiet-hours).")
    a(rules, "JobQueueStuck", "critical", """
        (
          (jobqueue_depth > 0)
          and (time() - jobqueue_oldest_timestamp_seconds > scalar(jobqueue:threshold:queue_stuck_seconds))
          and (changes(jobqueue_oldest_timestamp_seconds[5m]) == 0)
          unless (sum without (state) (jobqueue_jobs{state=~"active|reserved|started|locked|running"}) > 0)
          unless (jobqueue_queue_paused == 1)
        )
        or (jobqueue_health_issue{issue=~"queue_stuck(:.+)?"} == 1)
        """, "5m", "A queue has waiting items but nothing takes them.",
      "{{ if $labels.queue }}Queue {{ $labels.queue }} (tenant \"{{ $labels.tenant }}\", source "
      "{{ $labels.source }}) has {{ $value }} waiting items, no running job, and its oldest item has not moved "
      "for 5 minutes.{{ else }}System {{ $labels.system }} on {{ $labels.instance }} has ready items while the "
      "worker that drains them is idle.{{ end }}",
      "Stuck, seen in the queue metrics: items wait, the oldest has waited long and has not changed for\n"
      "5 minutes (nothing was taken), no job of the queue is running (when the layout reports one), and\n"
      "the queue is not paused. Or, seen by the exporter: a system's stuck rule (ready items while the\n"
      "worker that drains them reports idle) raised the `queue_stuck` issue.")
    a(rules, "JobQueuePaused", "warning", "(jobqueue_queue_paused == 1) and (jobqueue_depth > 0)", "15m",
      "A queue with waiting items is paused.",
      f"Queue {{{{ $labels.queue }}}} {where} has been paused for 15 minutes with items waiting.")
    a(rules, "JobQueueDisabledShareHigh", "warning",
      'jobqueue_health_issue{issue=~"disabled_share(:.+)?|high_disabled(:.+)?"} == 1', "5m",
      "More than 10% of a system's items are disabled.",
      "System {{ $labels.system }} on {{ $labels.instance }} reports a disabled share over its threshold "
      "(10% by default) for 5 minutes.",
      "The disabled share is computed by the exporter from its checks (no raw metric carries it); the\n"
      "issue id is `disabled_share` (or `high_disabled`, a share rule's default label, with a suffix).")
    a(rules, "JobQueueTenantsDropped", "warning", "jobqueue_tenants_dropped > 0", w["tenants_dropped_for"],
      "Tenant discovery found more tenants than its cap allows; some are not monitored.",
      "Source {{ $labels.source }} on {{ $labels.instance }} leaves {{ $value }} tenants out of its discovery "
      "cap: no replica reads them.",
      "Tenants discovery found (after include/exclude and shard) beyond `cap`: read by nobody.")
    overdue = 'sum without (state) (jobqueue_jobs{state="overdue"}) > 0'
    for severity, expr, extra in (
        ("warning", overdue, ""),
        ("critical", f"({overdue})\nand on (job, instance, source) "
                     "(min by (job, instance, source) (jobqueue_postgres_schedulers) == 0)\n",
         " and the library reports no live scheduler"),
    ):
        a(rules, "JobQueueSchedulerStalled", severity, expr, w["overdue_for"],
          "Scheduled jobs are past due: the process that releases them is not running.",
          f"Queue {{{{ $labels.queue }}}} {where} has {{{{ $value }}}} scheduled jobs past their time by more than "
          f"the source's grace for {w['overdue_for']}{extra}; depth stays low because nothing makes them ready.",
          "" if severity == "critical" else
          "PostgreSQL libraries whose scheduled jobs a leader, stager or dispatcher moves to ready (River,\n"
          "Oban, Solid Queue): jobs past due by more than the source's `overdue_after` are counted in state\n"
          "`overdue` (a ticket); a page when, at the same time, a preset of the source reports no live\n"
          "scheduler (jobqueue_postgres_schedulers: River's and Oban's leader, Solid Queue's dispatchers).")
    a(rules, "JobQueueJobsAbandoned", "warning",
      'sum without (state) (jobqueue_jobs{state=~"stalled|orphaned|lock_expired"}) > 0', w["abandoned_for"],
      "Jobs are held by a worker that is gone: the library does not run them until it frees them.",
      f"Queue {{{{ $labels.queue }}}} {where} has {{{{ $value }}}} jobs held by a dead worker for "
      f"{w['abandoned_for']}.",
      "The libraries' own states of a job whose worker died holding it (docs/sources/postgres.md):\n"
      "Procrastinate `stalled` (no heartbeat for 30 s), Solid Queue `orphaned` (claimed by a process past\n"
      "`process_alive_threshold`), graphile-worker `lock_expired` (locked more than 4 h ago).")


WHERE = '(tenant "{{ $labels.tenant }}", source {{ $labels.source }})'


def flow_alerts(r: Rules, rules: list[dict[str, Any]], where: str = WHERE) -> None:
    w = r.config["windows"]
    a = r.alert
    a(rules, "JobQueueNoWorkers", "critical", f"""
        (jobqueue_depth > 0)
        and on ({QUEUE}) (jobqueue:workers_serving:count == 0)
        """, w["no_workers_for"], "A queue has waiting items and no live worker serves it.",
      f"Queue {{{{ $labels.queue }}}} {where} has {{{{ $value }}}} waiting items and no live worker "
      "(busy, idle or unknown) for it; nothing will take them.",
      "Only where the library reports workers per queue (the series exists, at 0 when none is live): a\n"
      "queue of a library that keeps no workers, or only workers that name no queue (Celery), is never\n"
      "judged. Workers under queue=\"\" do not count for a queue: on a shared Redis they may be another\n"
      "library's (a live Celery worker serves no RQ queue).")
    tw = w["throughput_stalled"]
    a(rules, "JobQueueThroughputStalled", "critical", f"""
        (min_over_time(jobqueue_depth[{tw}]) > 0)
        and on ({QUEUE}) (sum by ({QUEUE}) (increase(jobqueue_jobs_processed_total[{tw}])) == 0)
        and on ({QUEUE}) (jobqueue_jobs_processed_total offset {tw})
        or
        (
          (min_over_time(jobqueue_depth[{tw}]) > 0)
          and on ({TENANT}) (sum by ({TENANT}) (increase(jobqueue_jobs_processed_total{{queue=""}}[{tw}])) == 0)
          and on ({TENANT}) (jobqueue_jobs_processed_total{{queue=""}} offset {tw})
          unless on ({QUEUE}) jobqueue_jobs_processed_total
        )
        or
        (
          (min_over_time(jobqueue_depth[{tw}]) > 0)
          and on ({QUEUE}) (sum by ({QUEUE}) (jobqueue_jobs_finished_window) == 0)
          and on ({QUEUE}) (jobqueue_jobs_finished_window{{outcome="completed"}} offset {tw})
        )
        """, "1m", "A queue has had waiting items and processed nothing.",
      f"Queue {{{{ $labels.queue }}}} {where} has had waiting items for {tw} and its library counted no "
      "finished job in that time.",
      f"Waiting items throughout {tw} and no job finished: per queue where the library counts per queue,\n"
      "else from its global count (queue=\"\", Sidekiq, RQ, Celery) for every queue of the tenant without\n"
      f"a count of its own. PostgreSQL libraries: no job finished within the preset's window\n"
      "(jobqueue_jobs_finished_window, where the library indexes completions). Only for libraries that\n"
      f"count finished jobs, and only once the count has existed for {tw} (no page in the first window\n"
      "after the exporter or Prometheus starts).")
    a(rules, "JobQueueWorkersSaturated", "warning",
      f"jobqueue:worker_utilisation:ratio > {threshold('worker_saturation_ratio')}", w["saturation_for"],
      "The workers of a queue have almost no free job slot.",
      f"The live workers of queue {{{{ $labels.queue }}}} {where} have run {{{{ $value | humanizePercentage }}}} "
      f"of their job slots for {w['saturation_for']}; add workers or concurrency before the backlog grows.")
    fr, base = w["failure_ratio"], w["failure_ratio_baseline"]
    a(rules, "JobQueueFailureRatioRising", "warning", f"""
        (jobqueue:jobs_failure_ratio:rate{fr} > {threshold('failure_ratio_warning')})
        and
        (
          jobqueue:jobs_failure_ratio:rate{fr}
          > {threshold('failure_ratio_rise_factor')} * jobqueue:jobs_failure_ratio:rate{base}
        )
        """, "15m", "The share of failing jobs of a queue is rising.",
      f"{{{{ $value | humanizePercentage }}}} of the jobs queue {{{{ $labels.queue }}}} {where} finished in the "
      f"last {fr} failed, more than {number(r.config['thresholds']['failure_ratio_rise_factor'])} times the "
      f"share of the last {base}.",
      f"Failed / processed over {fr} above the warning share and above the rise factor times its {base}\n"
      "baseline: a new failure, not a queue that always fails some jobs.")


def slo_alerts(r: Rules, rules: list[dict[str, Any]], where: str = WHERE) -> None:
    slo = r.config["slo"]

    def burn(tier: str) -> str:
        t = slo[tier]
        factor = f"scalar(jobqueue:threshold:slo_burn_rate_{tier}) * scalar(1 - jobqueue:threshold:slo_latency_target)"
        return (f"(jobqueue:slo_latency:error_ratio{t['long']} > {factor})\n"
                f"and (jobqueue:slo_latency:error_ratio{t['short']} > {factor})")

    description = (f"Queue {{{{ $labels.queue }}}} {where} spends its latency error budget too fast: "
                   "{{ $value | humanizePercentage }} of its recent collections had the oldest item past "
                   "its objective (target {{ with query \"jobqueue:threshold:slo_latency_target\" }}"
                   "{{ . | first | value | humanizePercentage }}{{ end }}).")
    a = r.alert
    def wrap(expr: str) -> str:
        return "(\n" + textwrap.indent(expr, "  ") + "\n)"

    a(rules, "JobQueueLatencyBudgetBurn", "critical", f"{wrap(burn('page_fast'))}\nor\n{wrap(burn('page_slow'))}",
      "2m", "A queue is burning its latency error budget.", description,
      "Multi-window, multi-burn-rate alerts on the queue-latency SLO (SRE workbook, chapter 5): page\n"
      f"when {number(slo['page_fast']['burn_rate'])}x the budget burns over {slo['page_fast']['long']} "
      f"(and {slo['page_fast']['short']}) or {number(slo['page_slow']['burn_rate'])}x over "
      f"{slo['page_slow']['long']} (and {slo['page_slow']['short']}); ticket at "
      f"{number(slo['ticket']['burn_rate'])}x over {slo['ticket']['long']} (and {slo['ticket']['short']}).")
    a(rules, "JobQueueLatencyBudgetBurn", "warning", burn("ticket"), "15m",
      "A queue is burning its latency error budget.", description)


def build(config: dict[str, Any]) -> Rules:
    r = Rules(config)
    thresholds(r)
    recordings(r)
    alerts(r)
    flow_alerts(r, flow_recordings(r))
    slo_alerts(r, slo_recordings(r))
    return r


class _Dumper(yaml.SafeDumper):
    """Block lists indented under their key; multi-line strings as literal blocks."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else ("'" if "{{" in value or '"' in value else None)
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)

HEADER = """\
# jobqueue-exporter: recording rules and alerts (monitoring-mixin conventions).
# GENERATED by alerts/build.py from alerts/config.yml: edit those and run `python3 alerts/build.py`.
#
# Severity: `critical` pages (a health shim would answer 503: the system is unhealthy),
# `warning` makes a ticket (the system is degraded). See docs/alerting.md and docs/runbook.md.
#
# THRESHOLDS: every number an alert compares against is a label-less recording rule
# `jobqueue:threshold:<name>` in the group `jobqueue.thresholds` (alerts/config.yml `thresholds`).
"""


def render(config: dict[str, Any]) -> str:
    """The rules file's text: groups, with each rule's comment above it."""
    lines = [HEADER.rstrip("\n"), "groups:"]
    for gi, group in enumerate(build(config).groups):
        if gi:
            lines.append("")
        lines += [f"  - name: {group['name']}", "    rules:"]
        for i, rule in enumerate(group["rules"]):
            body = {k: v for k, v in rule.items() if k != "#"}
            if i and (rule["#"] or "alert" in rule):
                lines.append("")
            lines += [f"      # {c}" for c in rule["#"].splitlines()]
            dumped = yaml.dump([body], Dumper=_Dumper, sort_keys=False, width=100000, allow_unicode=True)
            lines += [f"      {line}" if line else line for line in dumped.rstrip("\n").splitlines()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=CONFIG, help="knobs (default: alerts/config.yml)")
    parser.add_argument("--out", type=Path, default=OUT.parent, help="directory for jobqueue.rules.yml")
    args = parser.parse_args(argv)
    text = render(load(args.config))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / OUT.name).write_text(text)
    print(f"wrote {args.out / OUT.name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
