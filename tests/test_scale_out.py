"""The scale-out examples: Prometheus configs that promtool accepts, Kubernetes manifests
that hang together and carry a config the exporter loads."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from exporter.config import parse_config
from exporter.metrics.exposition import RegistryBodies
from exporter.server import ExporterApp
from exporter.store import ResultStore

REPO = Path(__file__).resolve().parent.parent
KUBERNETES = REPO / "deploy" / "kubernetes"


@pytest.mark.parametrize("name", ["prometheus-shards.yml", "prometheus-probe-hashmod.yml"])
def test_scale_out_prometheus_configs_pass_promtool(name: str) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run scripts/system-deps"
    path = REPO / "config" / "prometheus" / "scale-out" / name
    checked = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 1 rule files found" in checked.stdout  # the bundled rules load from there
    config = yaml.safe_load(path.read_text())
    assert "cucm-directory-exporter" in {job["job_name"] for job in config["scrape_configs"]}


def test_the_hashmod_relabeling_covers_every_replica() -> None:
    config = yaml.safe_load(
        (REPO / "config/prometheus/scale-out/prometheus-probe-hashmod.yml").read_text()
    )
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "cucm-directory-exporter")
    hashmod = next(r for r in job["relabel_configs"] if r.get("action") == "hashmod")
    shards = {
        r["regex"] for r in job["relabel_configs"] if r.get("source_labels") == ["__tmp_replica"]
    }
    assert shards == {str(i) for i in range(hashmod["modulus"])}


def manifests() -> dict[str, dict[str, Any]]:
    documents = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        documents[document["kind"]] = document
    return documents


def test_kubernetes_manifests_hang_together(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = manifests()
    assert {
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "ServiceMonitor",
        "Kustomization",
    } <= set(docs)
    listed = set(docs["Kustomization"]["resources"])
    assert listed == {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}

    pod = docs["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e for e in container["env"]}
    secret_ref = env["CUCM_SNMP_COMMUNITY"]["valueFrom"]["secretKeyRef"]
    assert secret_ref["name"] == docs["Secret"]["metadata"]["name"]
    assert secret_ref["key"] in docs["Secret"]["stringData"]

    # The probes point at routes the exporter really serves.
    routes = {
        resource.canonical
        for resource in ExporterApp(RegistryBodies(CollectorRegistry()), ResultStore(), _no_reload)
        .build()
        .router.resources()
    }
    assert container["readinessProbe"]["httpGet"]["path"] in routes
    assert container["livenessProbe"]["httpGet"]["path"] in routes

    # The Service and the ServiceMonitor agree on the port; the job label fits the rules.
    service_ports = {p["name"] for p in docs["Service"]["spec"]["ports"]}
    assert docs["ServiceMonitor"]["spec"]["endpoints"][0]["port"] in service_ports
    label = docs["ServiceMonitor"]["spec"]["jobLabel"]
    assert docs["Service"]["metadata"]["labels"][label] == "cucm-directory-exporter"

    # The ConfigMap's config is one the exporter loads (the community from the Secret's env).
    monkeypatch.setenv("CUCM_SNMP_COMMUNITY", "from-the-secret")
    config = parse_config(docs["ConfigMap"]["data"]["config.yml"], base_dir=Path("/"))
    snmp = config.clusters[0].nodes[0].snmp
    assert snmp is not None
    assert snmp.community_value is not None
    assert snmp.community_value.get_secret_value() == "from-the-secret"


async def _no_reload() -> str | None:
    return None
