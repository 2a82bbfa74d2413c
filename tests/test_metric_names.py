"""The metric contract of DESIGN.md is what the collector exposes. (That every metric a rule
or a dashboard names exists is checked in test_alert_rules.py and test_grafana.py.)"""

from __future__ import annotations

from tests.conftest import exposed_metrics


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
        "cucm_exporter_probe_interval_seconds",
    }  # fmt: skip
    assert contract - exposed_metrics() == set()
