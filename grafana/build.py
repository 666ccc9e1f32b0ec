"""Generates the Grafana dashboards in grafana/dashboards/ (run: python3 grafana/build.py).

Plain dicts rather than a dashboard library (grafanalib is unmaintained; the foundation SDK is
pinned to Grafana branches): the output is the classic JSON model, committed next to this script
and linted by tests/unit/test_dashboards.py with the grafana/dashboard-linter rules.

Every query selects `job=~"$job", instance=~"$instance"`; every rate uses `$__rate_interval`;
every panel has a description and a unit; uids are stable.

The knobs users adapt (the job selector of the `job` variable, the thresholds drawn on the backlog
and utilisation panels, the SLO windows the budget panels read) come from alerts/config.yml, the
one place the rules read them from too (alerts/build.py `load`):

    python3 grafana/build.py [--config my.yml] [--out DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
ALERTS_BUILD = Path(__file__).resolve().parent.parent / "alerts" / "build.py"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SCHEMA_VERSION = 39
TAGS = ["jobqueue", "jobqueue-exporter"]


def alerts_build() -> ModuleType:
    """alerts/build.py, which owns the config file and its defaults."""
    spec = importlib.util.spec_from_file_location("jobqueue_alerts_build", ALERTS_BUILD)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sel(metric: str, *matchers: str) -> str:
    """`metric{job=~"$job",instance=~"$instance",...}`: the job and instance the dashboard shows."""
    return metric + "{" + ",".join(['job=~"$job"', 'instance=~"$instance"', *matchers]) + "}"


SRC = 'source=~"$source"'
QUEUE = 'queue=~"$queue"'
# Flow and workers: also the counts a library keeps for no queue in particular (queue="").
QUEUE_OR_GLOBAL = 'queue=~"$queue|"'
DEGRADED = 'status="degraded"'
UNHEALTHY = 'status="unhealthy"'


class Board:
    """One dashboard: panels laid out left to right, top to bottom, on Grafana's 24-column grid."""

    def __init__(self, knobs: dict[str, Any], uid: str, title: str, description: str,
                 extra_vars: list[dict[str, Any]]) -> None:
        self.knobs = knobs
        self.uid, self.title, self.description = uid, title, description
        self.extra_vars = extra_vars
        self.panels: list[dict[str, Any]] = []
        self.x = self.y = self.row_h = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append({"type": "row", "title": title, "collapsed": False, "panels": [],
                            "id": len(self.panels) + 1, "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1}})
        self.y += 1

    def _newline(self) -> None:
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0

    def add(self, kind: str, title: str, description: str, unit: str, targets: list[tuple[str, str]],
            w: int = 12, h: int = 8, instant: bool = False, mappings: list[dict[str, Any]] | None = None,
            options: dict[str, Any] | None = None, thresholds: tuple[float, ...] = (),
            colors: tuple[str, ...] = ("green", "orange", "red")) -> None:
        """A panel; `thresholds` are drawn as lines, `colors` from below the first to above the last."""
        if self.x + w > 24:
            self._newline()
        panel: dict[str, Any] = {
            "id": len(self.panels) + 1,
            "type": kind,
            "title": title,
            "description": description,
            "datasource": DATASOURCE,
            "gridPos": {"x": self.x, "y": self.y, "w": w, "h": h},
            "fieldConfig": {"defaults": {"unit": unit, "mappings": mappings or [],
                                         **threshold_steps(thresholds, colors)}, "overrides": []},
            "options": options or {},
            "targets": [
                {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend,
                 "range": not instant, "instant": instant, **({"format": "table"} if kind == "table" else {})}
                for i, (expr, legend) in enumerate(targets)
            ],
        }
        if kind == "table":
            panel["transformations"] = [{"id": "organize", "options": {
                "excludeByName": {"Time": True, "__name__": True, "job": True, "instance": True}}}]
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)

    def json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": TAGS,
            "timezone": "utc",
            "editable": False,
            "graphTooltip": 1,
            "time": {"from": "now-6h", "to": "now"},
            "timepicker": {},
            "refresh": "1m",
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "id": None,
            "links": [{"type": "dashboards", "tags": ["jobqueue"], "asDropdown": True, "title": "Job queues",
                       "includeVars": True, "keepTime": True}],
            "annotations": {"list": []},
            "templating": {"list": [*common_vars(self.knobs), *self.extra_vars]},
            "panels": self.panels,
        }


def query_var(name: str, label: str, query: str, all_value: str | None = ".+") -> dict[str, Any]:
    """A multi-select Prometheus query variable, reloaded on time range change.

    job and instance use `.+` for All (the linter's rule); source and queue leave it unset so that
    All means the listed values only (the sources of this dashboard's backend).
    """
    var: dict[str, Any] = {
        "name": name, "label": label, "type": "query", "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-var"}, "definition": query,
        "refresh": 2, "multi": True, "includeAll": True, "sort": 1,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "hide": 0, "options": [],
    }
    if all_value is not None:
        var["allValue"] = all_value
    return var


def threshold_steps(values: tuple[float, ...], colors: tuple[str, ...]) -> dict[str, Any]:
    """Grafana thresholds: colors[0] below the first value, colors[i] from the i-th value on."""
    if not values:
        return {}
    steps = [{"color": colors[0], "value": None},
             *({"color": c, "value": v} for c, v in zip(colors[1:], values, strict=False))]
    return {"thresholds": {"mode": "absolute", "steps": steps},
            "custom": {"thresholdsStyle": {"mode": "line+area"}}}


def common_vars(knobs: dict[str, Any]) -> list[dict[str, Any]]:
    job = knobs["job_selector"]
    return [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
         "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": []},
        query_var("job", "job", f"label_values(jobqueue_exporter_build_info{{{job}}}, job)"),
        query_var("instance", "instance", 'label_values(jobqueue_exporter_build_info{job=~"$job"}, instance)'),
    ]


def source_var(backend: str) -> dict[str, Any]:
    up = sel("jobqueue_source_up", f'backend=~"{backend}"')
    return query_var("source", "Source", f"label_values({up}, source)", all_value=None)


def queue_var() -> dict[str, Any]:
    return query_var("queue", "Queue", f'label_values({sel("jobqueue_depth", SRC)}, queue)', all_value=None)


UP_MAPPINGS = [{"type": "value", "options": {
    "0": {"text": "Down", "color": "red", "index": 0}, "1": {"text": "Up", "color": "green", "index": 1}}}]
STATUS_MAPPINGS = [{"type": "value", "options": {
    "0": {"text": "OK", "color": "green", "index": 0},
    "1": {"text": "Degraded", "color": "orange", "index": 1},
    "2": {"text": "Unhealthy", "color": "red", "index": 2}}}]
STAT = {"colorMode": "background", "graphMode": "none", "textMode": "value_and_name",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
BARS = {"displayMode": "gradient", "orientation": "horizontal", "showUnfilled": True,
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}


def source_health(board: Board, backend_matcher: str) -> None:
    """The panels every backend dashboard starts with: up, ping latency, collection time and freshness."""
    m = [backend_matcher, SRC] if backend_matcher else [SRC]
    board.row("Sources")
    board.add("stat", "Source up", "1 when the last collection of the source succeeded (jobqueue_source_up).",
              "none", [(f"max by (source) ({sel('jobqueue_source_up', *m)})", "{{source}}")],
              w=6, instant=True, mappings=UP_MAPPINGS, options=STAT)
    board.add("timeseries", "Ping latency", "Round trip of the source's ping in each collection "
              "(jobqueue_source_latency_seconds).", "s",
              [(f"max by (source) ({sel('jobqueue_source_latency_seconds', SRC)})", "{{source}}")], w=6)
    board.add("timeseries", "Collection duration", "How long each collection of the source took "
              "(jobqueue_collect_duration_seconds).", "s",
              [(f"max by (source) ({sel('jobqueue_collect_duration_seconds', SRC)})", "{{source}}")], w=6)
    board.add("timeseries", "Since last successful collection", "Seconds since the source last collected "
              "successfully; grows while the backend is down (jobqueue_last_success_timestamp_seconds).", "s",
              [(f"max by (source) (time() - {sel('jobqueue_last_success_timestamp_seconds', SRC)})", "{{source}}")],
              w=6)


def queue_panels(board: Board, with_queue_var: bool = True) -> None:
    """Depth, age, states and failures of the selected sources' queues."""
    q = [SRC, QUEUE] if with_queue_var else [SRC]
    by = "source, tenant, queue"
    board.row("Queues")
    t = board.knobs["thresholds"]
    board.add("timeseries", "Waiting items", "Items waiting (ready) per queue (jobqueue_depth); the lines are the "
              "default warning and critical thresholds of the alerts (a queue given its own in alerts/config.yml "
              "`queues` is judged by jobqueue:queue_threshold:*).", "short",
              [(f"max by ({by}) ({sel('jobqueue_depth', *q)})", "{{source}} {{tenant}} {{queue}}")],
              thresholds=(t["queue_depth_warning"], t["queue_depth_critical"]))
    board.add("timeseries", "Oldest waiting item age", "Age of the oldest waiting item per queue, from its "
              "enqueue time (time() - jobqueue_oldest_timestamp_seconds); absent when the queue is empty. The lines "
              "are the warning and critical thresholds of the alerts.", "s",
              [(f"max by ({by}) (time() - {sel('jobqueue_oldest_timestamp_seconds', *q)})",
                "{{source}} {{tenant}} {{queue}}")],
              thresholds=(t["oldest_age_warning_seconds"], t["oldest_age_critical_seconds"]))
    board.add("timeseries", "Jobs by state", "Items of each queue per state as the backend keeps them: delayed, "
              "reserved, active, failed, ... (jobqueue_jobs).", "short",
              [(f"sum by (source, queue, state) ({sel('jobqueue_jobs', *q)})", "{{source}} {{queue}} {{state}}")])
    board.add("timeseries", "Failed jobs", "Recently failed jobs per queue, as the backend counts them "
              "(jobqueue_failed_jobs).", "short",
              [(f"max by (source, tenant, queue) ({sel('jobqueue_failed_jobs', *q)})",
                "{{source}} {{tenant}} {{queue}}")])


def flow_panels(board: Board, q: list[str]) -> None:
    """Throughput, failure ratio, workers, utilisation and runtime from what the libraries keep
    (FLOW_METRICS), for the series `q` selects; queue="" is a count the library keeps globally."""
    by, legend = "source, tenant, queue", "{{source}} {{tenant}} {{queue}}"
    board.row("Flow and workers")

    def rate(metric: str) -> str:
        return f"sum by ({by}) (rate({sel(metric, *q)}[$__rate_interval]))"

    board.add("timeseries", "Throughput", "Jobs finished per second (success or failure), from the library's own "
              "count (rate of jobqueue_jobs_processed_total); queue \"\" where it counts globally.", "ops",
              [(rate("jobqueue_jobs_processed_total"), legend)], w=8)
    board.add("timeseries", "Failure ratio", "Share of the finished jobs that failed (rate of "
              "jobqueue_jobs_failed_total / rate of jobqueue_jobs_processed_total).", "percentunit",
              [(f"{rate('jobqueue_jobs_failed_total')} / {rate('jobqueue_jobs_processed_total')}", legend)],
              w=8, thresholds=(board.knobs["thresholds"]["failure_ratio_warning"],))
    board.add("timeseries", "Job runtime", "Average job runtime as the library keeps it "
              "(jobqueue_job_runtime_seconds).", "s",
              [(f"max by ({by}) ({sel('jobqueue_job_runtime_seconds', *q)})", legend)], w=8)
    board.add("timeseries", "Workers", "Live workers by state: busy, idle, paused, or unknown where the library "
              "shows only that a worker is there (jobqueue_workers). 0 for a queue: nothing takes its jobs.",
              "short", [(f"sum by ({by}, state) ({sel('jobqueue_workers', *q)})", f"{legend} {{{{state}}}}")], w=8)
    board.add("timeseries", "Worker utilisation", "Busy job slots / slots the live workers offer "
              "(jobqueue_worker_busy_slots / jobqueue_worker_capacity); the line is the saturation threshold.",
              "percentunit",
              [(f"sum by ({by}) ({sel('jobqueue_worker_busy_slots', *q)})"
                f" / sum by ({by}) ({sel('jobqueue_worker_capacity', *q)} > 0)", legend)],
              w=8, thresholds=(board.knobs["thresholds"]["worker_saturation_ratio"],))
    board.add("timeseries", "Job slots", "Job slots (threads, concurrency) the live workers offer, and those "
              "running a job now (jobqueue_worker_capacity, jobqueue_worker_busy_slots).", "short",
              [(f"sum by ({by}) ({sel('jobqueue_worker_capacity', *q)})", f"{legend} capacity"),
               (f"sum by ({by}) ({sel('jobqueue_worker_busy_slots', *q)})", f"{legend} busy")], w=8)


def slo_panels(board: Board) -> None:
    """The queue-latency SLO from the recording rules of alerts/jobqueue.rules.yml (jobqueue.slo)."""
    slo = board.knobs["slo"]
    fast, budget = slo["page_fast"]["long"], slo["budget_window"]
    legend = "{{source}} {{tenant}} {{queue}}"
    board.row("Queue-latency SLO")
    board.add("timeseries", f"Collections within objective ({fast})", "Share of the collections of the last "
              f"{fast} in which the queue's oldest waiting item was within its objective (1 - "
              f"jobqueue:slo_latency:error_ratio{fast}); the line is the SLO target.", "percentunit",
              [(f"1 - max by (source, tenant, queue) ({sel(f'jobqueue:slo_latency:error_ratio{fast}')})", legend)],
              w=8, thresholds=(slo["target"],), colors=("red", "green"))
    board.add("timeseries", f"Burn rate ({fast})", "How fast each queue spends its latency error budget: the "
              f"bad share of the last {fast} / (1 - target). 1 spends it exactly over the SLO window; the lines "
              "are the paging burn rates.", "short",
              [(f"max by (source, tenant, queue) ({sel(f'jobqueue:slo_latency:error_ratio{fast}')})"
                " / scalar(1 - jobqueue:threshold:slo_latency_target)", legend)],
              w=8, thresholds=(slo["page_slow"]["burn_rate"], slo["page_fast"]["burn_rate"]))
    board.add("bargauge", f"Error budget remaining ({budget})", "The ten queues with the least latency error "
              f"budget left over the last {budget} (jobqueue:slo_latency:budget_remaining_ratio; below 0: "
              "overspent).", "percentunit",
              [(f"bottomk(10, max by (source, tenant, queue) "
                f"({sel('jobqueue:slo_latency:budget_remaining_ratio')}))", legend)],
              w=8, instant=True, options=BARS)


def overview(k: dict[str, Any]) -> Board:
    b = Board(k, "jobqueue-overview", "Job queues / Overview",
              "Systems' health, sources, the deepest and oldest queues, and failures across every source.", [])
    b.row("Health")
    b.add("stat", "System status", "Health of each monitored system as the exporter's health endpoints report "
          "it: OK, Degraded (ticket) or Unhealthy (page, endpoints answer 503) (jobqueue_health_status).", "none",
          [(f"max by (system) ({sel('jobqueue_health_status', DEGRADED)})"
            f" + 2 * max by (system) ({sel('jobqueue_health_status', UNHEALTHY)})", "{{system}}")],
          w=8, instant=True, mappings=STATUS_MAPPINGS, options=STAT)
    b.add("table", "Active issues", "Every active issue of every system, by stable issue id "
          "(jobqueue_health_issue == 1).", "none",
          [(f"max by (system, issue) ({sel('jobqueue_health_issue')} == 1)", "")], w=8, instant=True)
    b.add("stat", "Sources up", "1 when the last collection of the source succeeded (jobqueue_source_up).", "none",
          [(f"max by (source, backend) ({sel('jobqueue_source_up')})", "{{source}} ({{backend}})")],
          w=8, instant=True, mappings=UP_MAPPINGS, options=STAT)
    b.row("Backlog")
    b.add("bargauge", "Deepest backlogs", "The ten queues with the most waiting items (jobqueue_depth).", "short",
          [(f"topk(10, max by (source, tenant, queue) ({sel('jobqueue_depth')}))", "{{source}} {{tenant}} {{queue}}")],
          w=8, instant=True, options=BARS)
    b.add("bargauge", "Oldest waiting items", "The ten queues whose oldest waiting item has waited longest "
          "(time() - jobqueue_oldest_timestamp_seconds).", "s",
          [(f"topk(10, max by (source, tenant, queue) (time() - {sel('jobqueue_oldest_timestamp_seconds')}))",
            "{{source}} {{tenant}} {{queue}}")], w=8, instant=True, options=BARS)
    b.add("bargauge", "Most failed jobs", "The ten queues with the most recently failed jobs "
          "(jobqueue_failed_jobs).", "short",
          [(f"topk(10, max by (source, tenant, queue) ({sel('jobqueue_failed_jobs')}))",
            "{{source}} {{tenant}} {{queue}}")],
          w=8, instant=True, options=BARS)
    b.add("timeseries", "Waiting items per source", "All waiting items of each source (sum of jobqueue_depth).",
          "short", [(f"sum by (source) ({sel('jobqueue_depth')})", "{{source}}")])
    b.add("timeseries", "Collection errors", "Failed collections per second by source and kind "
          "(rate of jobqueue_collect_errors_total).", "ops",
          [(f"sum by (source, kind) (rate({sel('jobqueue_collect_errors_total')}[$__rate_interval]))",
            "{{source}} {{kind}}")])
    b.row("Workers and freshness")
    b.add("bargauge", "Workers: since last run", "Seconds since each background worker last ran "
          "(time() - jobqueue_worker_last_run_timestamp_seconds); stale at 2.5 times its interval.", "s",
          [(f"max by (system, worker) (time() - {sel('jobqueue_worker_last_run_timestamp_seconds')})",
            "{{system}} {{worker}}")], instant=True, options=BARS)
    b.add("timeseries", "Since last successful collection", "Seconds since each source last collected "
          "successfully (time() - jobqueue_last_success_timestamp_seconds).", "s",
          [(f"max by (source) (time() - {sel('jobqueue_last_success_timestamp_seconds')})", "{{source}}")])
    flow_panels(b, [])
    slo_panels(b)
    return b


def redis(k: dict[str, Any]) -> Board:
    b = Board(k, "jobqueue-redis", "Job queues / Redis", "Redis queues of every supported library: depth, age, "
              "states, failures, stream consumer groups, Horizon and the Redis sources themselves.",
              [source_var("redis"), queue_var()])
    source_health(b, 'backend="redis"')
    queue_panels(b)
    b.add("timeseries", "Estimated wait (Horizon)", "Estimated wait before a new job starts: ready jobs x average "
          "runtime / processes, Horizon's definition (jobqueue_wait_seconds).", "s",
          [(f"max by (source, tenant, queue) ({sel('jobqueue_wait_seconds', SRC, QUEUE)})",
            "{{source}} {{tenant}} {{queue}}")])
    b.add("timeseries", "Paused queues", "1 while the queue is paused (jobqueue_queue_paused).", "short",
          [(f"max by (source, tenant, queue) ({sel('jobqueue_queue_paused', SRC, QUEUE)})",
            "{{source}} {{tenant}} {{queue}}")])
    flow_panels(b, [SRC, QUEUE_OR_GLOBAL])
    tasks = "sum by (source, tenant, task{}) (rate({}[$__rate_interval]))"
    b.add("timeseries", "Celery tasks", "Celery tasks finished per second by task name and outcome, heard from "
          "the workers' events (rate of jobqueue_celery_tasks_total; layout `celery` with `events: true`).", "ops",
          [(tasks.format(", outcome", sel("jobqueue_celery_tasks_total", SRC)),
            "{{source}} {{tenant}} {{task}} {{outcome}}")])
    b.add("timeseries", "Celery task runtime", "Mean runtime of the Celery tasks that succeeded, by task name "
          "(rate of jobqueue_celery_task_runtime_seconds_total / rate of succeeded "
          "jobqueue_celery_tasks_total).", "s",
          [(tasks.format("", sel("jobqueue_celery_task_runtime_seconds_total", SRC)) + " / "
            + tasks.format("", sel("jobqueue_celery_tasks_total", SRC, 'outcome="succeeded"')),
            "{{source}} {{tenant}} {{task}}")])
    b.row("Streams and libraries")
    b.add("timeseries", "Stream groups: pending", "Entries delivered to each consumer group but not acknowledged "
          "(jobqueue_stream_group_pending).", "short",
          [(f"max by (source, queue, group) ({sel('jobqueue_stream_group_pending', SRC, QUEUE)})",
            "{{source}} {{queue}} {{group}}")], w=8)
    b.add("timeseries", "Stream groups: lag", "Entries not yet delivered to each consumer group "
          "(jobqueue_stream_group_lag).", "short",
          [(f"max by (source, queue, group) ({sel('jobqueue_stream_group_lag', SRC, QUEUE)})",
            "{{source}} {{queue}} {{group}}")], w=8)
    b.add("timeseries", "Library jobs", "Jobs kept outside any one queue: Sidekiq retry, dead and scheduled; "
          "Horizon failed; Celery unacked (jobqueue_library_jobs).", "short",
          [(f"sum by (source, state) ({sel('jobqueue_library_jobs', SRC)})", "{{source}} {{state}}")], w=8)
    b.add("stat", "Horizon masters", "Live Horizon masters by status (jobqueue_horizon_masters).", "short",
          [(f"sum by (source, status) ({sel('jobqueue_horizon_masters', SRC)})", "{{source}} {{status}}")],
          w=8, instant=True, options=STAT)
    b.add("stat", "Tenants read", "Tenants each source currently reads (jobqueue_tenants).", "short",
          [(f"max by (source) ({sel('jobqueue_tenants', SRC)})", "{{source}}")], w=8, instant=True, options=STAT)
    b.add("timeseries", "Malformed items", "Queue items the last collection could not parse and skipped "
          "(jobqueue_malformed_items).", "short",
          [(f"max by (source) ({sel('jobqueue_malformed_items', SRC)})", "{{source}}")], w=8)
    b.add("stat", "Tenants dropped by the cap", "Tenants discovery found but the scan `cap` left out: read by no "
          "replica (jobqueue_tenants_dropped).", "short",
          [(f"max by (source) ({sel('jobqueue_tenants_dropped', SRC)})", "{{source}}")], w=8, instant=True,
          options=STAT)
    b.add("timeseries", "Series produced twice", "Series two layouts claimed in the last collection, emitted once "
          "(jobqueue_series_collisions): give the layouts their own `tenant`.", "short",
          [(f"max by (source) ({sel('jobqueue_series_collisions', SRC)})", "{{source}}")], w=8)
    return b


def host(k: dict[str, Any]) -> Board:
    b = Board(k, "jobqueue-host", "Job queues / Host", "The host the exporter runs on, the components' processes, "
              "file checks, HTTP probes and the exporter process.", [source_var("system|files|http")])
    source_health(b, 'backend=~"system|files|http"')
    b.row("Host")
    b.add("timeseries", "CPU used", "Host CPU in use between two collections (jobqueue_host_cpu_used_ratio).",
          "percentunit", [(f"max by (source) ({sel('jobqueue_host_cpu_used_ratio', SRC)})", "{{source}}")], w=8)
    b.add("timeseries", "Memory used", "Host memory in use (jobqueue_host_memory_used_ratio).", "percentunit",
          [(f"max by (source) ({sel('jobqueue_host_memory_used_ratio', SRC)})", "{{source}}")], w=8)
    b.add("timeseries", "Memory available", "Host memory available to new processes "
          "(jobqueue_host_memory_available_bytes).", "bytes",
          [(f"max by (source) ({sel('jobqueue_host_memory_available_bytes', SRC)})", "{{source}}")], w=8)
    b.row("Components")
    b.add("stat", "Components ready", "1 when the component runs at least its minimum number of processes "
          "(jobqueue_process_ready).", "none",
          [(f"max by (process) ({sel('jobqueue_process_ready', SRC)})", "{{process}}")],
          w=8, instant=True, mappings=UP_MAPPINGS, options=STAT)
    b.add("timeseries", "Component processes", "Live (non-zombie) processes of each component by type "
          "(jobqueue_process_running).", "short",
          [(f"sum by (process, type) ({sel('jobqueue_process_running', SRC)})", "{{process}} {{type}}")], w=8)
    b.add("timeseries", "Component uptime", "Seconds since the oldest process of each component started "
          "(time() - jobqueue_process_start_time_seconds).", "s",
          [(f"max by (process) (time() - {sel('jobqueue_process_start_time_seconds', SRC)})", "{{process}}")], w=8)
    b.add("timeseries", "Component CPU", "CPU the component's processes used, in cores "
          "(jobqueue_process_cpu_cores).", "short",
          [(f"max by (process) ({sel('jobqueue_process_cpu_cores', SRC)})", "{{process}}")])
    b.add("timeseries", "Component memory", "Resident memory of the component's processes "
          "(jobqueue_process_resident_memory_bytes).", "bytes",
          [(f"max by (process) ({sel('jobqueue_process_resident_memory_bytes', SRC)})", "{{process}}")])
    b.row("Files and HTTP")
    b.add("stat", "File checks", "1 when the check passed: directory, path or binary present, variable set, "
          "manifest matched, glob matched (jobqueue_files_check_ok).", "none",
          [(f"max by (check, kind) ({sel('jobqueue_files_check_ok', SRC)})", "{{check}} ({{kind}})")],
          w=8, instant=True, mappings=UP_MAPPINGS, options=STAT)
    b.add("timeseries", "Files matched", "Files matching each check's glob, and manifest files whose SHA-256 "
          "matches out of those listed (jobqueue_files_matched, jobqueue_files_integrity_*).", "short",
          [(f"max by (check) ({sel('jobqueue_files_matched', SRC)})", "{{check}} matched"),
           (f"max by (check) ({sel('jobqueue_files_integrity_matched', SRC)})", "{{check}} intact"),
           (f"max by (check) ({sel('jobqueue_files_integrity_expected', SRC)})", "{{check}} listed")], w=8)
    b.add("stat", "HTTP probes", "1 when the probed service answered with an expected status "
          "(jobqueue_http_probe_success); the status code in the name.", "none",
          [(f"max by (source) ({sel('jobqueue_http_probe_success', SRC)})", "{{source}}"),
           (f"max by (source) ({sel('jobqueue_http_status_code', SRC)})", "{{source}} HTTP status")],
          w=8, instant=True, mappings=UP_MAPPINGS, options=STAT)
    b.row("Exporter process")
    b.add("timeseries", "Exporter CPU", "CPU seconds per second used by the exporter process "
          "(rate of process_cpu_seconds_total).", "percentunit",
          [(f"rate({sel('process_cpu_seconds_total')}[$__rate_interval])", "{{instance}}")], w=8)
    b.add("timeseries", "Exporter memory", "Resident memory of the exporter process "
          "(process_resident_memory_bytes).", "bytes",
          [(f"max by (instance) ({sel('process_resident_memory_bytes')})", "{{instance}}")], w=8)
    b.add("stat", "Exporter version", "Version and revision of the running exporter "
          "(jobqueue_exporter_build_info).", "none",
          [(f"count by (version, revision) ({sel('jobqueue_exporter_build_info')})", "{{version}} {{revision}}")],
          w=8, instant=True, options={**STAT, "textMode": "name", "colorMode": "none"})
    return b


def postgres(k: dict[str, Any]) -> Board:
    b = Board(k, "jobqueue-postgres", "Job queues / PostgreSQL", "Job tables, pgmq and job libraries on PostgreSQL, "
              "operator SQL checks, migrations, connections, and the PostgreSQL sources themselves.",
              [source_var("postgres"), queue_var()])
    source_health(b, 'backend="postgres"')
    queue_panels(b)
    b.row("Flow, workers and schedulers")
    b.add("timeseries", "Finished in the window", "Jobs of each library preset that finished within its window "
          "(1 hour by default), by outcome, through the library's own finished-at index "
          "(jobqueue_jobs_finished_window); divided by the window it is the mean throughput.", "short",
          [(f"max by (source, tenant, queue, outcome, window) ({sel('jobqueue_jobs_finished_window', SRC, QUEUE)})",
            "{{source}} {{tenant}} {{queue}} {{outcome}} ({{window}})")], w=8)
    b.add("timeseries", "Workers", "Live workers of the job libraries by state, by each library's own expiry "
          "(jobqueue_workers; PostgreSQL libraries do not say which queue a worker serves).", "short",
          [(f"sum by (source, tenant, state) ({sel('jobqueue_workers', SRC)})", "{{source}} {{tenant}} {{state}}")],
          w=8)
    b.add("timeseries", "Job slots", "Job slots the live workers offer and those running a job now, where the "
          "library records them (Solid Queue: thread_pool_size and claimed executions) "
          "(jobqueue_worker_capacity, jobqueue_worker_busy_slots).", "short",
          [(f"sum by (source, tenant) ({sel('jobqueue_worker_capacity', SRC)})", "{{source}} {{tenant}} capacity"),
           (f"sum by (source, tenant) ({sel('jobqueue_worker_busy_slots', SRC)})", "{{source}} {{tenant}} busy")],
          w=8)
    b.add("stat", "Schedulers", "Live processes that move due scheduled jobs to ready: River's and Oban's leader, "
          "Solid Queue's dispatchers (jobqueue_postgres_schedulers). 0 while jobs are overdue: a stalled scheduler "
          "(JobQueueSchedulerStalled pages).", "short",
          [(f"max by (source, query) ({sel('jobqueue_postgres_schedulers', SRC)})", "{{source}} {{query}}")],
          w=8, instant=True, options=STAT, thresholds=(1,), colors=("red", "green"))
    b.row("Server")
    b.add("timeseries", "Connections by state", "Client connections of the server by state (pg_stat_activity), "
          "and max_connections (jobqueue_postgres_connections, jobqueue_postgres_max_connections).", "short",
          [(f"sum by (source, state) ({sel('jobqueue_postgres_connections', SRC)})", "{{source}} {{state}}"),
           (f"max by (source) ({sel('jobqueue_postgres_max_connections', SRC)})", "{{source}} max")], w=8)
    b.add("timeseries", "Connections used", "Client connections in use / max_connections "
          "(jobqueue_postgres_connections_used_ratio).", "percentunit",
          [(f"max by (source) ({sel('jobqueue_postgres_connections_used_ratio', SRC)})", "{{source}}")], w=8)
    b.add("timeseries", "Built-in query duration", "How long each built-in query (queue preset, migrations, "
          "connections, tenants) took (jobqueue_postgres_query_duration_seconds).", "s",
          [(f"max by (source, query) ({sel('jobqueue_postgres_query_duration_seconds', SRC)})",
            "{{source}} {{query}}")], w=8)
    b.add("stat", "Built-in queries up", "1 when the built-in query succeeded in the last collection "
          "(jobqueue_postgres_query_up).", "none",
          [(f"max by (source, query) ({sel('jobqueue_postgres_query_up', SRC)})", "{{source}} {{query}}")],
          w=8, instant=True, mappings=UP_MAPPINGS, options=STAT)
    b.add("stat", "Tables never analyzed", "Job tables of 8 MB or more that PostgreSQL has no statistics for "
          "(jobqueue_postgres_tables_unanalyzed): their plans are guesses until ANALYZE runs "
          "(`jobqueue-exporter doctor` names the tables).", "short",
          [(f"max by (source, query) ({sel('jobqueue_postgres_tables_unanalyzed', SRC)})", "{{source}} {{query}}")],
          w=8, instant=True, options=STAT, thresholds=(1,), colors=("green", "orange"))
    b.add("stat", "Schema up to date", "1 when every required migration is applied (jobqueue_schema_ok).", "none",
          [(f"max by (source) ({sel('jobqueue_schema_ok', SRC)})", "{{source}}")],
          w=8, instant=True, mappings=UP_MAPPINGS, options=STAT)
    b.add("timeseries", "Migrations", "Schema migrations applied, required (files) and missing "
          "(jobqueue_schema_migrations).", "short",
          [(f"max by (source, state) ({sel('jobqueue_schema_migrations', SRC)})", "{{source}} {{state}}")], w=8)
    b.row("SQL checks")
    b.add("stat", "Checks up", "1 when the operator SQL check ran and its result fit (jobqueue_check_up).", "none",
          [(f"max by (source, check) ({sel('jobqueue_check_up', SRC)})", "{{source}} {{check}}")],
          w=8, instant=True, mappings=UP_MAPPINGS, options=STAT)
    b.add("timeseries", "Check findings", "Rows each SQL check returned, by severity: the findings of a "
          "consistency check (jobqueue_check_rows).", "short",
          [(f"max by (source, check, severity) ({sel('jobqueue_check_rows', SRC)})",
            "{{source}} {{check}} {{severity}}")], w=8)
    b.add("timeseries", "Check values", "The value column of each SQL check per row (jobqueue_check_value).",
          "short", [(f"max by (source, check, key) ({sel('jobqueue_check_value', SRC)})",
                     "{{source}} {{check}} {{key}}")], w=8)
    b.add("timeseries", "Check duration", "How long the last run of each SQL check took "
          "(jobqueue_check_duration_seconds).", "s",
          [(f"max by (source, check) ({sel('jobqueue_check_duration_seconds', SRC)})", "{{source}} {{check}}")])
    b.add("timeseries", "Since check last ran", "Seconds since each SQL check last ran "
          "(time() - jobqueue_check_last_run_timestamp_seconds).", "s",
          [(f"max by (source, check) (time() - {sel('jobqueue_check_last_run_timestamp_seconds', SRC)})",
            "{{source}} {{check}}")])
    return b


def nats(k: dict[str, Any]) -> Board:
    b = Board(k, "jobqueue-nats", "Job queues / NATS", "NATS JetStream account, streams, consumers, KV buckets, "
              "object stores and agents, and the NATS sources themselves.", [source_var("nats")])
    source_health(b, 'backend="nats"')
    b.row("Server and account")
    b.add("stat", "Server", "The NATS server each source is connected to, with its version "
          "(jobqueue_nats_server_info).", "none",
          [(f"count by (source, url, version) ({sel('jobqueue_nats_server_info', SRC)})",
            "{{source}}: {{url}} {{version}}")],
          w=8, instant=True, options={**STAT, "textMode": "name", "colorMode": "none"})
    b.add("stat", "Streams and consumers", "Streams and consumers in the JetStream account "
          "(jobqueue_nats_account_streams, jobqueue_nats_account_consumers).", "short",
          [(f"max by (source) ({sel('jobqueue_nats_account_streams', SRC)})", "{{source}} streams"),
           (f"max by (source) ({sel('jobqueue_nats_account_consumers', SRC)})", "{{source}} consumers")],
          w=8, instant=True, options=STAT)
    b.add("timeseries", "Account storage", "File and memory storage the JetStream account uses "
          "(jobqueue_nats_account_storage_bytes, jobqueue_nats_account_memory_bytes).", "bytes",
          [(f"max by (source) ({sel('jobqueue_nats_account_storage_bytes', SRC)})", "{{source}} file"),
           (f"max by (source) ({sel('jobqueue_nats_account_memory_bytes', SRC)})", "{{source}} memory")], w=8)
    queue_panels(b, with_queue_var=False)
    b.row("Streams and consumers")
    b.add("timeseries", "Stream size", "Bytes stored in each stream (jobqueue_nats_stream_bytes).", "bytes",
          [(f"max by (source, stream) ({sel('jobqueue_nats_stream_bytes', SRC)})", "{{source}} {{stream}}")], w=8)
    b.add("timeseries", "Stream consumers", "Consumers of each stream (jobqueue_nats_stream_consumers).", "short",
          [(f"max by (source, stream) ({sel('jobqueue_nats_stream_consumers', SRC)})", "{{source}} {{stream}}")],
          w=8)
    for title, metric, what in (
        ("Consumer pending", "jobqueue_nats_consumer_pending",
         "Messages of the stream not yet delivered to each consumer"),
        ("Consumer ack pending", "jobqueue_nats_consumer_ack_pending",
         "Messages delivered to each consumer and not yet acknowledged"),
        ("Consumer redelivered", "jobqueue_nats_consumer_redelivered",
         "Messages redelivered and not yet acknowledged"),
        ("Consumer waiting pulls", "jobqueue_nats_consumer_waiting", "Pull requests waiting on each consumer"),
    ):
        b.add("timeseries", title, f"{what} ({metric}).", "short",
              [(f"max by (source, stream, consumer) ({sel(metric, SRC)})", "{{stream}}/{{consumer}}")], w=8)
    b.add("timeseries", "Dead letters", "Messages that hit max deliveries, per stream and consumer "
          "(jobqueue_nats_dead_letters).", "short",
          [(f"max by (source, stream, consumer) ({sel('jobqueue_nats_dead_letters', SRC)})",
            "{{stream}}/{{consumer}}")])
    b.row("Flow")
    b.add("timeseries", "Processed (ack floors)", "Messages of each stream processed per second: the consumers' "
          "ack floors added up (rate of jobqueue_jobs_processed_total; NATS keeps no count of failures).", "ops",
          [(f"sum by (source, queue) (rate({sel('jobqueue_jobs_processed_total', SRC)}[$__rate_interval]))",
            "{{source}} {{queue}}")])
    b.add("timeseries", "Consumer deliveries", "Deliveries per second to each consumer, redeliveries included, and "
          "deliveries acknowledged (rate of jobqueue_nats_consumer_delivered_total, _acked_total).", "ops",
          [(f"sum by (source, stream, consumer) (rate({sel('jobqueue_nats_consumer_delivered_total', SRC)}"
            "[$__rate_interval]))", "{{stream}}/{{consumer}} delivered"),
           (f"sum by (source, stream, consumer) (rate({sel('jobqueue_nats_consumer_acked_total', SRC)}"
            "[$__rate_interval]))", "{{stream}}/{{consumer}} acked")])
    b.row("KV, object stores and agents")
    b.add("timeseries", "KV keys", "Live keys in each KV bucket (jobqueue_nats_kv_keys).", "short",
          [(f"max by (source, bucket) ({sel('jobqueue_nats_kv_keys', SRC)})", "{{source}} {{bucket}}")], w=8)
    b.add("timeseries", "KV and object store size", "Bytes stored in each KV bucket (all revisions) and "
          "object store (jobqueue_nats_kv_bytes, jobqueue_nats_object_store_bytes).", "bytes",
          [(f"max by (source, bucket) ({sel('jobqueue_nats_kv_bytes', SRC)})", "kv {{bucket}}"),
           (f"max by (source, bucket) ({sel('jobqueue_nats_object_store_bytes', SRC)})", "obj {{bucket}}")], w=8)
    b.add("stat", "Agents", "Agents in the agent registry by readiness (jobqueue_nats_agents).", "short",
          [(f"sum by (source, ready) ({sel('jobqueue_nats_agents', SRC)})", "{{source}} ready={{ready}}")],
          w=8, instant=True, options=STAT)
    b.add("bargauge", "Agents: since last heartbeat", "Seconds since each registered agent's last heartbeat "
          "(time() - jobqueue_nats_agent_heartbeat_timestamp_seconds).", "s",
          [(f"max by (source, agent) (time() - {sel('jobqueue_nats_agent_heartbeat_timestamp_seconds', SRC)})",
            "{{source}} {{agent}}")], w=24, instant=True, options=BARS)
    return b


BOARDS = {"overview": overview, "redis": redis, "postgres": postgres, "nats": nats, "host": host}


def render(config: Path | None = None) -> dict[str, str]:
    """File name -> JSON text of every dashboard, with the knobs of `config` (default alerts/config.yml)."""
    knobs = alerts_build().load(config)
    return {f"{name}.json": json.dumps(make(knobs).json(), indent=2) + "\n" for name, make in BOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the Grafana dashboards.")
    parser.add_argument("--config", type=Path, default=None, help="knobs (default: alerts/config.yml)")
    parser.add_argument("--out", type=Path, default=OUT, help="directory for the dashboards' JSON")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in render(args.config).items():
        (args.out / name).write_text(text)
    print(f"wrote {len(BOARDS)} dashboards to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
