// jobqueue-exporter monitoring mixin: the bundled alerts, recording rules and Grafana dashboards,
// the same ones as alerts/jobqueue.rules.yml and grafana/dashboards/ (generated from one source,
// mixin/build.py; tests/unit/test_mixin.py keeps them equal).
//
//   jb install github.com/<you>/jobqueue-exporter/mixin@<version>
//   local jobqueue = (import 'jobqueue-exporter-mixin/mixin.libsonnet') + {
//     _config+:: { job_selector: 'job="jobqueue-exporter"', thresholds+: { queue_depth_warning: 50 } },
//   };
//   { 'jobqueue-rules.yaml': std.manifestYamlDoc(jobqueue.prometheusRules + jobqueue.prometheusAlerts) }
//
// prometheusRules holds the groups of recording rules only; prometheusAlerts the groups with alerts
// (with the recording rules they evaluate next to). Their group names differ, so the two can go into
// one PrometheusRule or one rules file.
local generated = import 'generated.libsonnet';
local hasAlert(group) = std.length([r for r in group.rules if std.objectHas(r, 'alert')]) > 0;

(import 'config.libsonnet') + {
  local rendered = generated(self._config),
  prometheusRules+:: { groups+: [g for g in rendered.groups if !hasAlert(g)] },
  prometheusAlerts+:: { groups+: [g for g in rendered.groups if hasAlert(g)] },
  grafanaDashboards+:: rendered.dashboards,
}
