"""deploy/kubernetes: the base with every combination of the components renders with the real
`kubectl kustomize`; every built-in object validates (kubernetes-validate, strict) and every
ServiceMonitor and PrometheusRule against the prometheus-operator CRD schemas (tests/unit/crds/:
example/prometheus-operator-crd/ of prometheus-operator v0.93.0, commit 6adcebc5076c); each pod is
scraped exactly once; the probes reach their plain-HTTP port; the PrometheusRule holds exactly the
bundled rules; each shard of the StatefulSet derives `shard: i/N`."""

from __future__ import annotations

import functools
import importlib.util
import itertools
import json
import os
import shutil
import subprocess
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from exporter.config import parse_config, parse_listen
from exporter.web.webconfig import parse_web_config

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
CRDS = Path(__file__).resolve().parent / "crds"
# The order a kustomization lists them in (the README's, and each component's comment, say so).
COMPONENTS = ("servicemonitor", "prometheusrule", "release-label", "sharded", "web-tls", "existing-configmap")
COMBINATIONS = [c for n in range(len(COMPONENTS) + 1) for c in itertools.combinations(COMPONENTS, n)]
WORKLOADS = ("Deployment", "StatefulSet")


def kustomize(directory: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl not found: apt-get install kubernetes-client"
    result = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def render(components: tuple[str, ...]) -> list[dict[str, Any]]:
    """What a team's own overlay of the base plus `components` renders to."""
    with tempfile.TemporaryDirectory() as tmp:
        kube = os.path.relpath(KUBE, tmp)  # kustomize refuses absolute paths to a base
        (Path(tmp) / "kustomization.yaml").write_text(yaml.safe_dump({
            "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "resources": [f"{kube}/base"], "components": [f"{kube}/components/{c}" for c in components]}))
        return kustomize(Path(tmp))


@pytest.fixture(scope="module")
def renders() -> dict[tuple[str, ...], list[dict[str, Any]]]:
    with ThreadPoolExecutor(4) as pool:  # kubectl is a process each: 64 of them, a few at a time
        return dict(zip(COMBINATIONS, pool.map(render, COMBINATIONS), strict=True))


@pytest.fixture(scope="module", params=["single", "sharded"])
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    """The two ready-made overlays, deploy/kubernetes and deploy/kubernetes/sharded."""
    return request.param, kustomize(KUBE if request.param == "single" else KUBE / "sharded")


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in kind.split("|")]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@functools.cache
def crd_schema(kind: str) -> dict[str, Any]:
    crd = yaml.safe_load((CRDS / f"monitoring.coreos.com_{kind.lower()}s.yaml").read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def unknown_fields(doc: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Fields the schema does not declare: the API server would prune them silently (a misspelled
    `tlsconfig` simply vanishes), so kubectl's strict validation refuses them; so does this."""
    if isinstance(doc, dict) and "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        out = [f"{path}.{k}" for k in doc if k not in schema["properties"]]
        for k, v in doc.items():
            if k in schema["properties"]:
                out += unknown_fields(v, schema["properties"][k], f"{path}.{k}")
        return out
    if isinstance(doc, list) and "items" in schema:
        return [e for i, item in enumerate(doc) for e in unknown_fields(item, schema["items"], f"{path}[{i}]")]
    return []


_valid: set[str] = set()


def validate(doc: dict[str, Any]) -> None:
    key = json.dumps(doc, sort_keys=True)
    if key in _valid:  # the same Service or PDB comes out of most combinations
        return
    if doc["apiVersion"].startswith("monitoring.coreos.com/"):
        schema = crd_schema(doc["kind"])
        jsonschema.Draft7Validator(schema).validate(doc)
        assert unknown_fields(doc, schema) == [], doc["kind"]
    else:
        kubernetes_validate.validate(doc, latest_version(), strict=True)
    _valid.add(key)


def pods(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, str], list[dict[str, Any]]]]:
    """(pod name, labels, container ports) of every pod the workloads would run."""
    out = []
    for workload in by_kind(docs, "|".join(WORKLOADS)):
        template = workload["spec"]["template"]
        name = workload["metadata"]["name"]
        ports = template["spec"]["containers"][0]["ports"]
        for i in range(workload["spec"]["replicas"]):
            out.append((f"{name}-{i}", template["metadata"]["labels"], ports))
    return out


def scrape_targets(docs: list[dict[str, Any]]) -> Counter[str]:
    """How many times Prometheus would scrape each pod: per ServiceMonitor endpoint, every Service
    it selects (same namespace) that has the port, and behind it every pod with that port."""
    targets: Counter[str] = Counter()
    for monitor in by_kind(docs, "ServiceMonitor"):
        services = [s for s in by_kind(docs, "Service")
                    if selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])]
        for endpoint in monitor["spec"]["endpoints"]:
            for service in services:
                port = next((p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]), None)
                if port is None:
                    continue
                for pod, labels, ports in pods(docs):
                    if selects(service["spec"]["selector"], labels) and \
                            any(p["name"] == port["targetPort"] for p in ports):
                        targets[pod] += 1
    return targets


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (workload,) = by_kind(docs, "|".join(WORKLOADS))
    (one,) = workload["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = one
    return result


def test_no_kustomization_uses_the_deprecated_bases_field() -> None:
    for path in KUBE.rglob("kustomization.yaml"):
        assert "bases" not in yaml.safe_load(path.read_text()), path


def test_committed_manifests_are_what_build_py_generates() -> None:
    spec = importlib.util.spec_from_file_location("kube_build", KUBE / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for path, text in module.rendered().items():
        assert path.read_text() == text, f"{path.name} is stale: run python3 deploy/kubernetes/build.py"


def test_every_combination_renders_and_validates(renders: dict[tuple[str, ...], list[dict[str, Any]]]) -> None:
    assert len(renders) == 64
    for components, docs in renders.items():
        on = set(components)
        kinds = Counter(d["kind"] for d in docs)
        assert kinds == Counter({
            "StatefulSet" if "sharded" in on else "Deployment": 1, "PodDisruptionBudget": 1,
            "Service": 2 if "sharded" in on else 1,
            "ConfigMap": ("existing-configmap" not in on) + ("web-tls" in on),
            "ServiceMonitor": "servicemonitor" in on, "PrometheusRule": "prometheusrule" in on,
        }) - Counter(), components
        for doc in docs:
            validate(doc)


def test_each_pod_is_scraped_exactly_once(renders: dict[tuple[str, ...], list[dict[str, Any]]],
                                          rendered: tuple[str, list[dict[str, Any]]]) -> None:
    # the sharded overlay's headless Service carries the same name label and port: selected too, it
    # made Prometheus scrape every pod twice
    _, docs = rendered
    assert sorted(scrape_targets(docs).items()) == sorted((pod, 1) for pod, _, _ in pods(docs))
    for components, docs in renders.items():
        expected = [(pod, 1) for pod, _, _ in pods(docs)] if "servicemonitor" in components else []
        assert sorted(scrape_targets(docs).items()) == sorted(expected), components


def test_probes_use_their_own_plain_port_in_every_combination(
        renders: dict[tuple[str, ...], list[dict[str, Any]]]) -> None:
    for components, docs in renders.items():
        one = container(docs)
        env = {e["name"]: e.get("value") for e in one["env"]}
        ports = {p["name"]: p["containerPort"] for p in one["ports"]}
        assert ports == {"metrics": parse_listen(env["JOBQUEUE_EXPORTER_LISTEN"])[1],
                         "health": parse_listen(env["JOBQUEUE_EXPORTER_HEALTH_LISTEN"])[1]}
        assert one["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}, components
        assert one["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}, components
        # no scheme: the kubelet speaks plain HTTP, which that port serves whatever the web config says
        assert ("JOBQUEUE_EXPORTER_WEB_CONFIG_FILE" in env) == ("web-tls" in components)


def test_volumes_name_what_the_render_or_the_user_provides(
        renders: dict[tuple[str, ...], list[dict[str, Any]]]) -> None:
    for components, docs in renders.items():
        (workload,) = by_kind(docs, "|".join(WORKLOADS))
        pod = workload["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        configmaps = {c["metadata"]["name"]: c for c in by_kind(docs, "ConfigMap")}
        config = volumes["config"]["configMap"]["name"]
        if "existing-configmap" in components:
            assert config == "jobqueue-exporter-config" and not any(n.startswith("jobqueue-exporter-")
                                                                     and "config.yaml" in c["data"]
                                                                     for n, c in configmaps.items())
        else:
            assert "config.yaml" in configmaps[config]["data"]  # the generated, hashed name
        mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        assert len(set(mounts.values())) == len(mounts) and set(mounts) == set(volumes)
        if "web-tls" not in components:
            continue
        env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
        web_file = Path(env["JOBQUEUE_EXPORTER_WEB_CONFIG_FILE"])
        assert mounts["web-config"] == str(web_file.parent)
        text = configmaps[volumes["web-config"]["configMap"]["name"]]["data"][web_file.name]
        tls = parse_web_config(text, web_file).tls
        assert tls is not None
        assert volumes["web-tls"]["secret"] == {"secretName": "jobqueue-exporter-web-tls"}
        secret = Path(mounts["web-tls"])
        assert {tls.cert_file, tls.key_file} == {secret / "tls.crt", secret / "tls.key"}
        for monitor in by_kind(docs, "ServiceMonitor"):
            (endpoint,) = monitor["spec"]["endpoints"]
            assert endpoint["scheme"] == "https"
            assert endpoint["tlsConfig"] == {"ca": {"secret": {"name": "jobqueue-exporter-web-tls", "key": "ca.crt"}},
                                             "serverName": "jobqueue-exporter"}


def test_release_label_and_disruption_budget(renders: dict[tuple[str, ...], list[dict[str, Any]]]) -> None:
    for components, docs in renders.items():
        for doc in by_kind(docs, "ServiceMonitor|PrometheusRule"):
            assert (doc["metadata"]["labels"].get("release") == "kube-prometheus-stack") == \
                ("release-label" in components)
        (pdb,) = by_kind(docs, "PodDisruptionBudget")
        assert pdb["spec"]["maxUnavailable"] == 1  # never minAvailable: 1, which blocks drains of one replica
        assert all(selects(pdb["spec"]["selector"]["matchLabels"], labels) for _, labels, _ in pods(docs))


def test_the_pod_is_locked_down_and_sized(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    (workload,) = by_kind(docs, "|".join(WORKLOADS))
    pod = workload["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert pod["automountServiceAccountToken"] is False
    one = container(docs)
    sc = one["securityContext"]
    assert (sc["readOnlyRootFilesystem"], sc["allowPrivilegeEscalation"], sc["capabilities"]) == \
        (True, False, {"drop": ["ALL"]})
    assert one["resources"] == {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
    env = {e["name"]: e for e in one["env"]}
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "jobqueue-exporter", "key": "redis-password", "optional": True}
    assert env["JOBQUEUE_EXPORTER_CONFIG"]["value"] == "/etc/jobqueue-exporter/config.yaml"


def pod_env(one: dict[str, Any], pod_name: str) -> dict[str, str]:
    """The environment the kubelet would give the container (fieldRef metadata.name resolved)."""
    out = {"HOSTNAME": pod_name}
    for e in one["env"]:
        if "value" in e:
            out[e["name"]] = e["value"]
        elif e["valueFrom"].get("fieldRef", {}).get("fieldPath") == "metadata.name":
            out[e["name"]] = pod_name
    return out


def test_each_pod_derives_its_shard(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, docs = rendered
    (configmap,) = by_kind(docs, "ConfigMap")
    text = configmap["data"]["config.yaml"]
    (workload,) = by_kind(docs, "|".join(WORKLOADS))
    one = container(docs)
    if name == "single":
        env = pod_env(one, "jobqueue-exporter-7d9f8c6b5-x2x4q")
        assert parse_config(text, "config.yaml", env).shard == "0/1"
        return
    replicas = workload["spec"]["replicas"]
    assert replicas == 3
    base = workload["metadata"]["name"]
    (headless,) = [s for s in by_kind(docs, "Service") if s["spec"].get("clusterIP") == "None"]
    assert workload["spec"]["serviceName"] == headless["metadata"]["name"]
    shards = [parse_config(text, "config.yaml", pod_env(one, f"{base}-{i}")).shard for i in range(replicas)]
    assert shards == ["0/3", "1/3", "2/3"]


def test_prometheusrule_holds_exactly_the_bundled_rules(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    (rule,) = by_kind(docs, "PrometheusRule")
    bundled = yaml.safe_load((ROOT / "alerts" / "jobqueue.rules.yml").read_text())["groups"]
    assert rule["spec"]["groups"] == bundled
    assert sum(1 for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r) >= 5
    # the job label the operator gives is the Service name, which the rules' selector matches
    (monitor,) = by_kind(docs, "ServiceMonitor")
    (service,) = [s for s in by_kind(docs, "Service") if selects(monitor["spec"]["selector"]["matchLabels"],
                                                                  s["metadata"]["labels"])]
    assert "jobqueue" in service["metadata"]["name"]
