"""Secrets never leave: every output of every entry point, grepped for recognisable secrets."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path

import bcrypt
import pytest
import yaml

from exporter.config import load_config
from exporter.lab import Lab
from exporter.lab.cluster import LAB_COMMUNITY
from exporter.lab.risport import LAB_RISPORT_PASSWORD, LAB_RISPORT_USER
from tests.conftest import start_daemon, stop_process
from tests.test_daemon import wait_for

V3_AUTH = "v3-auth-SECRET-2b91"
V3_PRIV = "v3-priv-SECRET-c4d7"
FILE_COMMUNITY = "file-community-SECRET-88e0"
WEB_PASSWORD = "web-password-SECRET-0f3a"
WRONG_RISPORT = "risport-wrong-SECRET-6d2e"  # a RisPort70 password the lab rejects (401)
SECRETS = (
    LAB_COMMUNITY, V3_AUTH, V3_PRIV, FILE_COMMUNITY, WEB_PASSWORD, LAB_RISPORT_PASSWORD,
    WRONG_RISPORT,
)  # fmt: skip


def write_configs(lab: Lab, directory: Path) -> tuple[Path, Path, str]:
    """The lab's config (its community is a secret too), plus a cluster polled with v3 and one
    whose community comes from a file, both pointed at the lab (they fail: more error paths)."""
    data = lab.exporter_config(interval=2.0, timeout=1.5)
    # Requests time out before the poll's deadline, so failures take the SnmpError path.
    data["probes"]["snmp"].update(interval="4s", timeout="3s", request_timeout="1s")
    (directory / "community").write_text(FILE_COMMUNITY + "\n")
    nodes = data["clusters"][0]["nodes"]
    data["clusters"] += [
        {
            "name": "v3",
            "snmp": {
                "version": "3", "username": "exporter", "auth_protocol": "SHA",
                "auth_password": V3_AUTH, "priv_protocol": "AES", "priv_password": "${V3_PRIV}",
            },
            "nodes": nodes[:1],
        },
        {
            "name": "from-file",
            "snmp": {"version": "2c", "community_file": str(directory / "community")},
            "nodes": nodes[1:],
        },
    ]  # fmt: skip
    # RisPort70 too: the lab's cluster with the right password, the v3 one with a wrong one.
    data["probes"]["risport"] = {
        "interval": "4s", "timeout": "3s", "jitter": "0s", "request_timeout": "1s",
        "ca_file": str(lab.ca_file),
    }  # fmt: skip
    for cluster, password in (
        (data["clusters"][0], LAB_RISPORT_PASSWORD),
        (data["clusters"][1], "${RIS_WRONG}"),
    ):
        cluster["inventory"] = "both"
        cluster["risport"] = {"username": LAB_RISPORT_USER, "password": password}
    config = directory / "exporter.yml"
    config.write_text(yaml.safe_dump(data))
    hashed = bcrypt.hashpw(WEB_PASSWORD.encode(), bcrypt.gensalt(10)).decode()
    web = directory / "web.yml"
    web.write_text(f"basic_auth_users:\n  prometheus: {hashed}\n")
    return config, web, hashed


def test_no_output_carries_a_secret(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("V3_PRIV", V3_PRIV)
    monkeypatch.setenv("RIS_WRONG", WRONG_RISPORT)
    config, web, hashed = write_configs(lab, tmp_path)
    outputs: dict[str, str] = {}

    # The loaded model, printed every way Python prints things.
    loaded = load_config(config)
    outputs["repr"] = (
        repr(loaded) + str(loaded) + str(loaded.model_dump()) + loaded.model_dump_json()
    )

    # The daemon, at debug level, and everything it serves.
    log_path = tmp_path / "daemon.log"
    daemon, port = start_daemon(
        config, log_path, "--web.config.file", str(web), "--log.level", "debug",
        "--web.enable-lifecycle",
    )  # fmt: skip
    auth = {"Authorization": "Basic " + b64encode(f"prometheus:{WEB_PASSWORD}".encode()).decode()}
    wrong = {"Authorization": "Basic " + b64encode(b"prometheus:nope").decode()}

    def get(path: str, headers: dict[str, str]) -> str:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                body: bytes = response.read()
        except urllib.error.HTTPError as error:
            body = error.read()
        except OSError:
            return ""  # not listening yet
        return body.decode(errors="replace")

    try:
        wait_for(lambda: "cucm_probe_success{" in get("/metrics", auth), 20, "probe results")
        wait_for(lambda: 'cluster="v3"' in get("/metrics", auth), 20, "the v3 cluster's poll")
        for path in (
            "/metrics", "/", "/-/ready",
            "/probe?target=cucm-pub&module=tls,directory,snmp&debug=true",
            "/probe?target=v3/cucm-pub&module=snmp&debug=true",
            "/probe?target=from-file/cucm-sub1&module=snmp&debug=true",
            "/probe?target=from-file/cucm-sub1&module=snmp",
            "/probe?target=cucm-pub&module=risport&debug=true",
            "/probe?target=v3/cucm-pub&module=risport&debug=true",
        ):  # fmt: skip
            outputs[path] = get(path, auth)
        outputs["unauthorised"] = get("/metrics", wrong)
        # A reload that fails, with the secrets still in the file.
        config.write_text(config.read_text() + "\nbogus: 1\n")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/-/reload", method="POST", headers=auth
        )
        try:
            urllib.request.urlopen(request, timeout=30)
        except urllib.error.HTTPError as error:
            outputs["failed reload"] = error.read().decode()
    finally:
        stop_process(daemon)
    outputs["daemon log"] = log_path.read_text()
    assert "probe=snmp cluster=v3" in outputs["daemon log"]  # the v3 polls did happen
    assert "auth_failed" in outputs["/probe?target=v3/cucm-pub&module=risport&debug=true"]

    # The change-window report, both formats, and --config.check of a broken file.
    config.write_text(config.read_text().replace("\nbogus: 1\n", "\n"))
    for form in ("text", "json"):
        run = subprocess.run(
            [sys.executable, "-m", "exporter", "check", "--config.file", str(config),
             "--format", form, "--log.level", "debug"],
            capture_output=True, text=True, timeout=120,
            env={**_environ(), "V3_PRIV": V3_PRIV, "RIS_WRONG": WRONG_RISPORT},
        )  # fmt: skip
        outputs[f"check {form}"] = run.stdout + run.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(
        config.read_text().replace("version: '3'", "version: '3'\n    communty: " + LAB_COMMUNITY)
    )
    checked = subprocess.run(
        [sys.executable, "-m", "exporter", "--config.check", "--config.file", str(broken)],
        capture_output=True, text=True, timeout=60,
        env={**_environ(), "V3_PRIV": V3_PRIV, "RIS_WRONG": WRONG_RISPORT},
    )  # fmt: skip
    assert checked.returncode == 2
    outputs["config check"] = checked.stdout + checked.stderr

    leaks = [
        f"{secret!r} in {where}"
        for where, text in outputs.items()
        for secret in (*SECRETS, hashed)
        if secret in text
    ]
    assert leaks == []
    assert all(outputs.values())  # every output was really captured


def _environ() -> dict[str, str]:
    return dict(os.environ)
