"""deploy/kubernetes: both kustomizations render with the real `kubectl kustomize`, every built-in
object validates (kubernetes-validate, strict), the PrometheusRule holds exactly the bundled rules,
the pods are locked down and probed, and each shard of the StatefulSet derives `shard: i/N`."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from exporter.config import parse_config

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
CRDS = {"ServiceMonitor", "PrometheusRule"}


def kustomize(directory: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl not found: apt-get install kubernetes-client"
    result = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


@pytest.fixture(scope="module", params=["single", "sharded"])
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, kustomize(KUBE if request.param == "single" else KUBE / "sharded")


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_committed_manifests_are_what_build_py_generates() -> None:
    spec = importlib.util.spec_from_file_location("kube_build", KUBE / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for path, text in module.rendered().items():
        assert path.read_text() == text, f"{path.name} is stale: run python3 deploy/kubernetes/build.py"


def test_every_builtin_object_is_valid(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, docs = rendered
    kinds = sorted(d["kind"] for d in docs)
    workload = "Deployment" if name == "single" else "StatefulSet"
    expected = ["ConfigMap", "PrometheusRule", "Service", "ServiceMonitor", workload]
    assert kinds == sorted(expected + (["Service"] if name == "sharded" else []))
    version = latest_version()
    for doc in docs:
        if doc["kind"] in CRDS:
            continue  # no schema in kubernetes-validate; their contents are checked below
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_pod_is_locked_down_probed_and_sized(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    (workload,) = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    pod = workload["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert (sc["readOnlyRootFilesystem"], sc["allowPrivilegeEscalation"], sc["capabilities"]) == \
        (True, False, {"drop": ["ALL"]})
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["resources"] == {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
    (configmap,) = by_kind(docs, "ConfigMap")
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == configmap["metadata"]["name"]  # the generated, hashed name
    env = {e["name"]: e for e in container["env"]}
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "jobqueue-exporter", "key": "redis-password", "optional": True}
    assert env["JOBQUEUE_EXPORTER_CONFIG"]["value"] == "/etc/jobqueue-exporter/config.yaml"


def pod_env(container: dict[str, Any], pod_name: str) -> dict[str, str]:
    """The environment the kubelet would give the container (fieldRef metadata.name resolved)."""
    out = {"HOSTNAME": pod_name}
    for e in container["env"]:
        if "value" in e:
            out[e["name"]] = e["value"]
        elif e["valueFrom"].get("fieldRef", {}).get("fieldPath") == "metadata.name":
            out[e["name"]] = pod_name
    return out


def test_each_pod_derives_its_shard(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, docs = rendered
    (configmap,) = by_kind(docs, "ConfigMap")
    text = configmap["data"]["config.yaml"]
    (workload,) = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    if name == "single":
        env = pod_env(container, "jobqueue-exporter-7d9f8c6b5-x2x4q")
        assert parse_config(text, "config.yaml", env).shard == "0/1"
        return
    replicas = workload["spec"]["replicas"]
    assert replicas == 3
    base = workload["metadata"]["name"]
    (headless,) = [s for s in by_kind(docs, "Service") if s["spec"].get("clusterIP") == "None"]
    assert workload["spec"]["serviceName"] == headless["metadata"]["name"]
    shards = [parse_config(text, "config.yaml", pod_env(container, f"{base}-{i}")).shard for i in range(replicas)]
    assert shards == ["0/3", "1/3", "2/3"]


def test_servicemonitor_scrapes_the_service_port(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    (monitor,) = by_kind(docs, "ServiceMonitor")
    (service,) = [s for s in by_kind(docs, "Service") if s["spec"].get("clusterIP") != "None"]
    labels = service["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())
    ports = {p["name"] for p in service["spec"]["ports"]}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"] and "metrics" in ports
    # the job label the operator gives is the Service name, which the rules' selector matches
    assert "jobqueue" in service["metadata"]["name"]
    pods = next(d for d in docs if d["kind"] in ("Deployment", "StatefulSet"))["spec"]["template"]["metadata"]
    assert all(pods["labels"].get(k) == v for k, v in service["spec"]["selector"].items())


def test_prometheusrule_holds_exactly_the_bundled_rules(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    (rule,) = by_kind(docs, "PrometheusRule")
    bundled = yaml.safe_load((ROOT / "alerts" / "jobqueue.rules.yml").read_text())["groups"]
    assert rule["spec"]["groups"] == bundled
    assert sum(1 for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r) >= 5
