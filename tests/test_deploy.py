"""The files a user deploys with: Prometheus config, docker-compose stack, Dockerfile."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
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


# A short-syntax volume: SOURCE:TARGET[:MODE], where SOURCE may be ${VAR:-default}.
_VOLUME = re.compile(r"^(?P<source>\$\{[^}]*\}|[^:]+):(?P<target>/[^:]*)(?::(?P<mode>ro|rw))?$")
_DEFAULTED = re.compile(r"^\$\{(?P<name>\w+):-(?P<default>[^}]+)\}$")


def compose_services() -> dict[str, dict[str, object]]:
    services: dict[str, dict[str, object]] = yaml.safe_load(
        (REPO / "docker-compose.yml").read_text()
    )["services"]
    return services


def bind_mounts(service: dict[str, object]) -> list[tuple[str, str]]:
    """(source as Docker resolves it with no variable set, target) of each bind mount."""
    mounts = []
    volumes = service.get("volumes", [])
    assert isinstance(volumes, list)
    for volume in volumes:
        parsed = _VOLUME.match(volume)
        assert parsed, f"cannot parse the volume {volume!r}"
        source = parsed["source"]
        if source.startswith("${"):
            defaulted = _DEFAULTED.match(source)
            # ${VAR} without a default is "" when unset: Docker refuses or mounts nonsense.
            assert defaulted, f"{source} needs a default (${{VAR:-./path}})"
            source = defaulted["default"]
        if source.startswith(("./", "/", "../")):
            mounts.append((source, parsed["target"]))
    return mounts


def tracked_files() -> set[str]:
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files"], capture_output=True, text=True, check=True
    )
    return set(listed.stdout.splitlines())


def test_compose_mounts_what_a_fresh_clone_has() -> None:
    """Every bind-mount source, with no variable set, is in the repository: a missing one
    would make Docker create an empty directory in its place (a config.yml directory)."""
    services = compose_services()
    assert set(services) == {"exporter", "prometheus", "alertmanager", "grafana"}
    tracked = tracked_files()
    for name, service in services.items():
        for source, _ in bind_mounts(service):
            path = source.removeprefix("./")
            assert path in tracked or any(f.startswith(path.rstrip("/") + "/") for f in tracked), (
                f"{name} mounts {source}, which a fresh clone does not have"
            )
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


def test_the_compose_exporter_starts_from_a_fresh_clone(tmp_path: Path) -> None:
    """The exporter's mounts laid out as the container sees them, then the config checked
    there exactly as the container's command names it, with no variable set."""
    exporter = compose_services()["exporter"]
    command = exporter["command"]
    assert isinstance(command, list)
    (config_flag,) = [c for c in command if c.startswith("--config.file=")]
    config_path = config_flag.removeprefix("--config.file=")
    mounts = {target: source for source, target in bind_mounts(exporter)}
    assert set(mounts) == {config_path, "/etc/cucm-directory-exporter/secrets"}
    assert mounts[config_path] == "./config/example.yml"
    root = tmp_path / "container"
    for target, source in mounts.items():
        where = root / target.lstrip("/")
        where.parent.mkdir(parents=True, exist_ok=True)
        if (REPO / source).is_dir():
            shutil.copytree(REPO / source, where)
        else:
            shutil.copyfile(REPO / source, where)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUCM_")}
    checked = subprocess.run(
        [sys.executable, "-m", "exporter", "--config.check", config_flag.replace(
            config_path, str(root / config_path.lstrip("/")))],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )  # fmt: skip
    assert (checked.returncode, checked.stderr) == (0, ""), checked.stderr
    # The image's default command reads the same path.
    assert f'CMD ["--config.file={config_path}"]' in (REPO / "Dockerfile").read_text()


def healthcheck_command() -> list[str]:
    """The Dockerfile's HEALTHCHECK CMD, as an argument list."""
    dockerfile = (REPO / "Dockerfile").read_text()
    found = re.search(r"^HEALTHCHECK .*\\\n\s+CMD (\[.*\])$", dockerfile, flags=re.MULTILINE)
    assert found, "no HEALTHCHECK ... CMD [...] in the Dockerfile"
    command: list[str] = json.loads(found[1])
    return command


def test_the_image_checks_its_health_with_its_own_binary() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    command = healthcheck_command()
    assert command[:2] == ["cucm-directory-exporter", "healthcheck"]
    assert "--pid" not in command  # PID 1, the entry point: its flags are the ones to follow
    instructions = "\n".join(
        line for line in dockerfile.splitlines() if not line.lstrip().startswith("#")
    )
    assert not re.search(r"\b(curl|wget)\b", instructions)
    # No VOLUME: an anonymous volume on the config directory hides a single-file mount.
    assert not re.search(r"^VOLUME\b", dockerfile, flags=re.MULTILINE)


KUBERNETES = REPO / "deploy" / "kubernetes"


def _script_agrees(script: str, flag: str) -> None:
    """scripts/SCRIPT FLAG: the file it generates is what it would generate now."""
    checked = subprocess.run(
        [sys.executable, str(REPO / "scripts" / script), flag],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (checked.returncode, checked.stderr) == (0, "")


def test_the_prometheusrule_is_generated_from_the_rules_file() -> None:
    _script_agrees("prometheusrule.py", "--check")
    shipped = yaml.safe_load((KUBERNETES / "prometheusrule.yaml").read_text())
    rules = yaml.safe_load(
        (REPO / "config" / "prometheus" / "cucm-directory-exporter.rules.yml").read_text()
    )
    assert (shipped["apiVersion"], shipped["kind"]) == (
        "monitoring.coreos.com/v1",
        "PrometheusRule",
    )
    assert shipped["spec"]["groups"] == rules["groups"]


def kustomize_build() -> list[dict[str, object]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is missing: run scripts/system-deps"
    built = subprocess.run(
        [kubectl, "kustomize", str(KUBERNETES)], capture_output=True, text=True, timeout=120
    )
    assert built.returncode == 0, built.stderr
    return [d for d in yaml.safe_load_all(built.stdout) if d]


def test_kustomize_builds_every_manifest_with_the_rules() -> None:
    kinds = sorted(str(d["kind"]) for d in kustomize_build())
    assert kinds == [
        "ConfigMap", "Deployment", "PrometheusRule", "Secret", "Service", "ServiceMonitor"
    ]  # fmt: skip
    # Every manifest of the directory is in the kustomization, so none is forgotten.
    listed = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(
        p.name for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml"
    )


def _mebibytes(quantity: str) -> float:
    units = {"Mi": 1.0, "Gi": 1024.0, "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    for unit, factor in units.items():
        if quantity.endswith(unit):
            return float(quantity.removesuffix(unit)) * factor
    raise AssertionError(f"unexpected memory quantity {quantity!r}")


def test_the_deployment_is_sized_from_the_measured_rss() -> None:
    """The figures in deployment.yaml's comment: 99 MB RSS with 50 lab nodes, a 139 MB peak
    with 1000 (bench/README.md). Below them the pod would be OOM-killed or overcommitted."""
    (deployment,) = [d for d in kustomize_build() if d["kind"] == "Deployment"]
    spec = deployment["spec"]
    assert isinstance(spec, dict)
    (container,) = spec["template"]["spec"]["containers"]
    resources = container["resources"]
    assert _mebibytes(resources["requests"]["memory"]) >= 99e6 / 2**20
    assert _mebibytes(resources["limits"]["memory"]) >= 139e6 / 2**20 * 1.5
    # The container runs unprivileged, on a read-only root.
    assert spec["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def _pyproject_dependencies() -> dict[str, str]:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    found = {}
    for requirement in project["dependencies"]:
        name = re.match(r"[A-Za-z0-9._-]+", requirement)
        assert name, requirement
        found[name[0].lower().replace("_", "-")] = requirement
    return found


def test_the_image_installs_pinned_dependencies() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "--constraint constraints.txt ." in dockerfile
    assert re.search(r"^COPY .*\bconstraints\.txt\b", dockerfile, flags=re.MULTILINE)
    pinned = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep, f"constraints.txt: {line!r} is not an exact pin"
            assert version, f"constraints.txt: {line!r} has no version"
            pinned[name.lower().replace("_", "-")] = version
    missing = sorted(set(_pyproject_dependencies()) - set(pinned))
    assert missing == []


def test_the_lowest_versions_file_follows_pyproject() -> None:
    _script_agrees("constraints.py", "--check-lowest")
    assert "--constraint constraints-lowest.txt" in (REPO / ".ci" / "run").read_text()


def test_libraries_we_reach_into_are_declared_and_bounded() -> None:
    """pysnmp internals (probes/snmp.py) change between majors; pyasn1 is imported directly,
    so it is declared rather than left to pysnmp's requirements."""
    dependencies = _pyproject_dependencies()
    assert "<8" in dependencies["pysnmp"]
    assert "<4" in dependencies["apscheduler"]
    assert "pyasn1" in dependencies
    imported = subprocess.run(
        ["git", "-C", str(REPO), "grep", "-l", "-E", r"^(from|import) pyasn1", "--", "exporter"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    assert imported  # if nothing imports it any more, drop the declaration
