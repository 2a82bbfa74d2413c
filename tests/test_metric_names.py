"""Every metric a rule or a dashboard names is one the exporter really exposes."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from exporter.collector import CucmCollector
from exporter.config import parse_config
from exporter.store import ExporterState, ResultStore
from tests.test_grafana import DASHBOARD_FILES, expressions, load

REPO = Path(__file__).resolve().parent.parent
METRIC = re.compile(r"\bcucm_[a-zA-Z0-9_]+")


def exposed() -> set[str]:
    """The collector declares every family on every scrape, even with no result yet."""
    config = parse_config("clusters: [{name: c, nodes: [{name: n, host: h}]}]", base_dir=REPO)
    collector = CucmCollector(ResultStore(), ExporterState(config, 0.0))
    return {family.name for family in collector.collect()}


def test_the_rules_name_only_exposed_metrics() -> None:
    rules = yaml.safe_load(
        (REPO / "config/prometheus/cucm-directory-exporter.rules.yml").read_text()
    )
    used = {
        name
        for group in rules["groups"]
        for rule in group["rules"]
        for text in (rule["expr"], *rule.get("annotations", {}).values())
        for name in METRIC.findall(str(text))
    }
    assert used, "the rules name no metric at all?"
    assert used - exposed() == set()


def test_the_dashboards_name_only_exposed_metrics() -> None:
    used = {
        name
        for uid in DASHBOARD_FILES
        for _, expr in expressions(load(uid))
        for name in METRIC.findall(expr)
    }
    assert used
    assert used - exposed() == set()


def test_the_contract_of_design_md_is_exposed() -> None:
    contract = {
        "cucm_tls_version_accepted", "cucm_tls_version_result", "cucm_tls_min_version",
        "cucm_tls_max_version", "cucm_tls_version_info", "cucm_tls_handshake_duration_seconds",
        "cucm_tls_cert_not_after_timestamp_seconds", "cucm_tls_cert_info", "cucm_directory_up",
        "cucm_directory_result", "cucm_directory_status_code", "cucm_directory_duration_seconds",
        "cucm_directory_entries", "cucm_phones", "cucm_phones_directory_at_risk",
        "cucm_node_registered_phones", "cucm_node_boot_time_seconds", "cucm_probe_success",
        "cucm_probe_duration_seconds", "cucm_probe_last_run_timestamp_seconds",
        "cucm_exporter_build_info", "cucm_exporter_config_last_reload_successful",
    }  # fmt: skip
    assert contract - exposed() == set()
