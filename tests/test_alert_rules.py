"""The bundled alert rules, their unit tests, the runbook and the Alertmanager example.

Everything runs through the real tools: promtool (Debian package prometheus) checks and
unit-tests the rules; amtool and Alertmanager itself (Debian package prometheus-alertmanager)
check the routing and the inhibitions. A missing tool fails the test: it never skips.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import exposed_metrics

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "config" / "prometheus" / "cucm-directory-exporter.rules.yml"
RULE_TESTS = ROOT / "config" / "prometheus" / "cucm-directory-exporter.rules.test.yml"
ALERTMANAGER_CONFIG = ROOT / "config" / "alertmanager" / "alertmanager.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"
# The base URL: Prometheus' external label cucm_runbook_base_url, else the scraped exporter's
# own /runbook page; then the section's anchor.
RUNBOOK_URL = (
    "{{ with $externalLabels.cucm_runbook_base_url }}{{ . }}{{ else }}"
    '{{ with query "cucm_exporter_build_info{job=\\"cucm-directory-exporter\\"}" }}'
    "http://{{ (. | first).Labels.instance }}/runbook{{ end }}{{ end }}#"
)
JOB = "cucm-directory-exporter"

# Every metric the exporter serves: what its collector declares.
EXPORTER_METRICS = exposed_metrics()

SEVERITIES = frozenset({"critical", "warning", "info"})
_METRIC = re.compile(r"\bcucm_[a-z0-9_]+\b")
_RECORDED = re.compile(r"\bcucm:[a-z0-9_:]+")


def _binary(name: str, *alternatives: str, package: str) -> str:
    for candidate in (name, *alternatives):
        if found := shutil.which(candidate):
            return found
    pytest.fail(
        f"{name} is missing: install the Debian package {package} "
        f"(sudo apt-get install --no-install-recommends {package})"
    )


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path}: not a YAML mapping"
    return data


def _rules() -> list[dict[str, Any]]:
    return [rule for group in _load(RULES)["groups"] for rule in group["rules"]]


def _alerting_rules() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def _alert_names() -> set[str]:
    return {rule["alert"] for rule in _alerting_rules()}


def _github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    anchor = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return anchor.replace(" ", "-")


def _runbook_anchors() -> set[str]:
    text = RUNBOOK.read_text(encoding="utf-8")
    return {_github_anchor(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


# --- promtool ---------------------------------------------------------------------------------


def test_promtool_check_rules() -> None:
    promtool = _binary("promtool", package="prometheus")
    checked = _run(promtool, "check", "rules", str(RULES))
    assert checked.returncode == 0, _output(checked)
    assert "SUCCESS" in checked.stdout, _output(checked)


def test_promtool_test_rules() -> None:
    promtool = _binary("promtool", package="prometheus")
    tested = _run(promtool, "test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0, _output(tested)
    assert "SUCCESS" in tested.stdout, _output(tested)


def test_promtool_test_rules_compares_annotations(tmp_path: Path) -> None:
    """A wrong expected description fails: the rule tests really pin the texts."""
    promtool = _binary("promtool", package="prometheus")
    shutil.copy(RULES, tmp_path / RULES.name)
    broken = RULE_TESTS.read_text(encoding="utf-8").replace(
        "Cisco 7962 (30), Cisco 6941 (12)", "Cisco 7962 (31), Cisco 6941 (12)"
    )
    assert broken != RULE_TESTS.read_text(encoding="utf-8")
    (tmp_path / RULE_TESTS.name).write_text(broken, encoding="utf-8")
    tested = _run(promtool, "test", "rules", str(tmp_path / RULE_TESTS.name))
    assert tested.returncode != 0, _output(tested)
    assert "CucmLegacyPhonesDirectoryAtRisk" in _output(tested)


# --- the rules themselves ---------------------------------------------------------------------


@pytest.mark.parametrize("rule", _alerting_rules(), ids=lambda rule: str(rule["alert"]))
def test_alert_is_named_labeled_and_annotated(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    assert re.fullmatch(r"Cucm[A-Z][A-Za-z0-9]+", name), f"{name}: CamelCase with prefix Cucm"
    assert rule.get("labels", {}).get("severity") in SEVERITIES, f"{name}: severity label"
    annotations = rule.get("annotations", {})
    for key in ("summary", "description", "runbook_url"):
        assert str(annotations.get(key, "")).strip(), f"{name}: {key} annotation is missing"
    assert annotations["summary"].rstrip().endswith("."), f"{name}: summary is a sentence"
    assert "$labels" in annotations["description"], f"{name}: description names where"
    url = annotations["runbook_url"]
    assert url == RUNBOOK_URL + name.lower(), f"{name}: runbook_url {url}"
    assert name.lower() in _runbook_anchors(), f"docs/runbook.md has no section '## {name}'"


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    """Each alert fires in some test case and is asserted silent in another."""
    firing: set[str] = set()
    quiet: set[str] = set()
    tested: set[str] = set()
    for group in _load(RULE_TESTS)["tests"]:
        for case in group.get("alert_rule_test", []):
            tested.add(case["alertname"])
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = _alert_names()
    assert tested <= names, f"tests of alerts that do not exist: {sorted(tested - names)}"
    assert not names - firing, f"alerts never seen firing: {sorted(names - firing)}"
    assert not names - quiet, f"alerts never asserted silent: {sorted(names - quiet)}"


def test_every_rule_test_group_sets_its_interval() -> None:
    """promtool 2.42 does not default a group's interval to evaluation_interval."""
    for group in _load(RULE_TESTS)["tests"]:
        assert "interval" in group, f"test group {group.get('name')!r} has no interval"


def test_rules_use_only_the_exporters_metrics() -> None:
    """Expressions and annotation queries name only metrics the exporter serves."""
    rules = _rules()
    recorded = {rule["record"] for rule in rules if "record" in rule}
    used: set[str] = set()
    used_recorded: set[str] = set()
    for rule in rules:
        texts = [str(rule["expr"]), *(str(v) for v in rule.get("annotations", {}).values())]
        for text in texts:
            text = re.sub(r"\$externalLabels\.\w+", "", text)  # a label of Prometheus' own
            used.update(_METRIC.findall(text))
            used_recorded.update(_RECORDED.findall(text))
    assert used, "no cucm_ metric found: the pattern is broken"
    assert not used - EXPORTER_METRICS, f"unknown metrics: {sorted(used - EXPORTER_METRICS)}"
    assert not used_recorded - recorded, f"not recorded: {sorted(used_recorded - recorded)}"
    assert all(name.startswith("cucm:") for name in recorded)


# --- Alertmanager: configuration and routing --------------------------------------------------


def test_amtool_check_config() -> None:
    amtool = _binary("amtool", package="prometheus-alertmanager")
    checked = _run(amtool, "check-config", str(ALERTMANAGER_CONFIG))
    assert checked.returncode == 0, _output(checked)
    assert "SUCCESS" in checked.stdout, _output(checked)


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=critical", "cluster=prod"], "voice-pager"),
        (["severity=critical", "cluster=prod-emea"], "voice-pager-emea"),
        (["severity=warning", "cluster=prod"], "voice-ticket"),
        (["severity=warning", "cluster=prod-emea"], "voice-ticket"),
        (["severity=info", "cluster=prod"], "default"),
        (["severity=critical", "cluster=lab"], "default"),
        (["severity=warning", "cluster=test-1"], "default"),
        (["alertname=CucmExporterDown", f"job={JOB}", "severity=warning"], "voice-ticket"),
        (["alertname=Unrelated"], "default"),
    ],
)
def test_amtool_routes(labels: list[str], receiver: str) -> None:
    amtool = _binary("amtool", package="prometheus-alertmanager")
    routed = _run(
        amtool,
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        f"--verify.receivers={receiver}",
        *labels,
    )
    assert routed.returncode == 0, _output(routed)


def test_amtool_routes_rejects_a_wrong_receiver() -> None:
    """--verify.receivers really fails on a mismatch, so the cases above mean something."""
    amtool = _binary("amtool", package="prometheus-alertmanager")
    routed = _run(
        amtool,
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        "--verify.receivers=default",
        "severity=critical",
        "cluster=prod",
    )
    assert routed.returncode != 0, _output(routed)


# --- Alertmanager: inhibitions, on a real one -------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _http(url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        raw = response.read()
    return json.loads(raw) if raw.strip() else None


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Alertmanager with the example configuration, on a free loopback port."""
    binary = _binary("prometheus-alertmanager", "alertmanager", package="prometheus-alertmanager")
    workdir = tmp_path_factory.mktemp("alertmanager")
    url = f"http://127.0.0.1:{_free_port()}"
    with (workdir / "alertmanager.log").open("w") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={ALERTMANAGER_CONFIG}",
                f"--storage.path={workdir / 'data'}",
                f"--web.listen-address={url.removeprefix('http://')}",
                "--cluster.listen-address=",  # no gossip: a single, private instance
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None, (workdir / "alertmanager.log").read_text()
                try:
                    urllib.request.urlopen(f"{url}/-/ready", timeout=1).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "Alertmanager did not become ready"
                    time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


# Each alert: its labels (with a `case` label to name it) and whether it must be inhibited.
_E1 = {"job": JOB, "instance": "exporter-1:10027"}
_E2 = {"job": JOB, "instance": "exporter-2:10027"}
_LAB = {"job": "cucm-directory-exporter-lab", "instance": "lab:10027"}
_INHIBITION_CASES: dict[str, tuple[dict[str, str], bool]] = {
    "exporter down": ({"alertname": "CucmExporterDown", "severity": "warning", **_E1}, False),
    "stale behind a down exporter": (
        {"alertname": "CucmProbeStale", "cluster": "prod", "node": "cucm-pub", "probe": "tls",
         "severity": "warning", **_E1},
        True,
    ),
    "stale on the other exporter": (
        {"alertname": "CucmProbeStale", "cluster": "prod", "node": "cucm-pub", "probe": "tls",
         "severity": "warning", **_E2},
        False,
    ),
    # No job/instance (aggregated by cluster): a down exporter must not mute it by accident.
    "cluster-level alert": (
        {"alertname": "CucmClusterTlsMinVersionMismatch", "cluster": "prod", "port": "2445",
         "service": "tvs", "severity": "warning"},
        False,
    ),
    "directory probe failing": (
        {"alertname": "CucmProbeFailing", "cluster": "prod", "node": "cucm-pub",
         "probe": "directory", "severity": "warning", **_E2},
        False,
    ),
    "directory down on the unreachable node": (
        {"alertname": "CucmDirectoryHttpDown", "cluster": "prod", "node": "cucm-pub",
         "route": "http", "severity": "critical", **_E2},
        True,
    ),
    "tls alert on the node the directory probe cannot reach": (
        {"alertname": "CucmTlsMinVersionChanged", "cluster": "prod", "node": "cucm-pub",
         "port": "2445", "service": "tvs", "severity": "warning", **_E2},
        False,
    ),
    "directory down on a reachable node, critical": (
        {"alertname": "CucmDirectoryHttpDown", "cluster": "prod", "node": "cucm-sub1",
         "route": "http", "severity": "critical", **_E2},
        False,
    ),
    "directory down on a reachable node, warning": (
        {"alertname": "CucmDirectoryHttpDown", "cluster": "prod", "node": "cucm-sub1",
         "route": "http", "severity": "warning", **_E2},
        True,
    ),
    "another alert's warning on the same node": (
        {"alertname": "CucmDirectoryNextHopNotHttp", "cluster": "prod", "node": "cucm-sub1",
         "route": "http", "result": "next_hop_not_http", "severity": "warning", **_E2},
        False,
    ),
    "certificate critical": (
        {"alertname": "CucmTlsCertificateExpiringSoon", "cluster": "prod", "node": "cucm-sub1",
         "port": "8443", "service": "tomcat", "severity": "critical", **_E2},
        False,
    ),
    "certificate warning, same port": (
        {"alertname": "CucmTlsCertificateExpiringSoon", "cluster": "prod", "node": "cucm-sub1",
         "port": "8443", "service": "tomcat", "severity": "warning", **_E2},
        True,
    ),
    "certificate warning, other port": (
        {"alertname": "CucmTlsCertificateExpiringSoon", "cluster": "prod", "node": "cucm-sub1",
         "port": "2445", "service": "tvs", "severity": "warning", **_E2},
        False,
    ),
    "exporter absent": (
        {"alertname": "CucmExporterAbsent", "job": "cucm-directory-exporter-lab",
         "severity": "warning"},
        False,
    ),
    "stale in the absent job": (
        {"alertname": "CucmProbeStale", "cluster": "lab", "node": "lab-pub", "probe": "snmp",
         "severity": "warning", **_LAB},
        True,
    ),
}  # fmt: skip


def test_inhibitions_on_a_real_alertmanager(alertmanager: str) -> None:
    _http(
        f"{alertmanager}/api/v2/alerts",
        [{"labels": {**labels, "case": case}} for case, (labels, _) in _INHIBITION_CASES.items()],
    )
    expected = {case for case, (_, inhibited) in _INHIBITION_CASES.items() if inhibited}
    # The inhibitor sees posted alerts asynchronously: poll until the answer settles.
    deadline = time.monotonic() + 15
    while True:
        alerts = _http(f"{alertmanager}/api/v2/alerts")
        seen = {a["labels"]["case"] for a in alerts}
        inhibited = {a["labels"]["case"] for a in alerts if a["status"]["inhibitedBy"]}
        settled = seen == set(_INHIBITION_CASES) and inhibited == expected
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert seen == set(_INHIBITION_CASES)
    assert inhibited == expected, (
        f"muted but should not be: {sorted(inhibited - expected)}; "
        f"not muted but should be: {sorted(expected - inhibited)}"
    )
