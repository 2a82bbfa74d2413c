"""The files a user deploys with: Prometheus config, docker-compose stack, Dockerfile."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def test_the_example_prometheus_config_passes_promtool() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run scripts/system-deps"
    checked = subprocess.run(
        [promtool, "check", "config", str(REPO / "config" / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 1 rule files found" in checked.stdout  # the bundled rules are loaded too


def test_compose_mounts_what_the_repository_has() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"exporter", "prometheus", "alertmanager", "grafana"}
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./") and not source.endswith("cucm-directory-exporter.yml"):
                assert (REPO / source).exists(), f"{name} mounts {source}, which does not exist"
    prometheus = yaml.safe_load((REPO / "config" / "prometheus" / "prometheus.yml").read_text())
    targets = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == ["exporter:10027"]  # the compose service name and the exporter's port
    datasource = yaml.safe_load(
        (REPO / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"


def test_the_image_runs_unprivileged_and_checks_its_health() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    stages = re.findall(r"^FROM ", dockerfile, flags=re.MULTILINE)
    assert len(stages) == 2  # build and runtime: no compiler in the image
    user = re.search(r"^USER (\S+)", dockerfile, flags=re.MULTILINE)
    assert user is not None
    assert not user[1].startswith(("0", "root"))
    assert re.search(r"^EXPOSE 10027$", dockerfile, flags=re.MULTILINE)
    assert "HEALTHCHECK" in dockerfile
    assert "/-/healthy" in dockerfile
    assert "/etc/cucm-directory-exporter/config.yml" in dockerfile
    # No secret is baked in: no ENV or ARG carries one (comments may talk about them).
    settings = re.findall(r"^(?:ENV|ARG)\b.*(?:\n\s+.*)*", dockerfile, flags=re.MULTILINE)
    assert settings
    assert not any(re.search(r"community|password|secret", s, re.IGNORECASE) for s in settings)
