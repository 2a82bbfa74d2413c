"""A monitoring stack for end-to-end tests: the exporter, a real Prometheus with the bundled
rules, a real Alertmanager with the bundled routing, and a webhook receiver the test reads.

Everything listens on 127.0.0.1, on ports the kernel picks, and is stopped by `close()`.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from exporter.lab import Lab
from exporter.lab.risport import risport_exporter_config
from exporter.lab.tls import unused_port

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "config" / "prometheus" / "cucm-directory-exporter.rules.yml"
ALERTMANAGER = REPO / "config" / "alertmanager" / "alertmanager.yml"
JOB = "cucm-directory-exporter"


@dataclass
class Webhook:
    """Alertmanager's webhook notifications, as received, each tagged with its receiver."""

    server: ThreadingHTTPServer
    notifications: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def alerts(self, name: str) -> list[dict[str, Any]]:
        """Every alert of that name in every notification, oldest first."""
        return [
            {**alert, "receiver": note["receiver"]}
            for note in list(self.notifications)
            for alert in note["alerts"]
            if alert["labels"].get("alertname") == name
        ]


def start_webhook() -> Webhook:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: the test reads the notifications, not the log

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, name="webhook", daemon=True).start()
    return Webhook(server, received)


def fast_rules(directory: Path) -> Path:
    """The bundled rules with every `for:` at 1s, so a test need not wait minutes."""
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "1s"
    path = directory / "rules.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


def fast_alertmanager(directory: Path, webhook: Webhook) -> Path:
    """The bundled routing and inhibitions, every receiver pointed at the test's webhook (its
    path names the receiver) and grouping timers cut to a second."""
    config = yaml.safe_load(ALERTMANAGER.read_text())
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"{webhook.url}/{receiver['name']}"
            hook["send_resolved"] = True

    def quicken(route: dict[str, Any]) -> None:
        for key in ("group_wait", "group_interval"):
            if key in route:
                route[key] = "1s"
        for child in route.get("routes", []):
            quicken(child)

    config["route"].update(group_wait="1s", group_interval="1s")
    quicken(config["route"])
    path = directory / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class Stack:
    """Starts and owns the processes; `close()` stops every one of them."""

    def __init__(
        self,
        lab: Lab,
        directory: Path,
        probe_interval: float = 2.0,
        *,
        phoneconfig: bool = False,
        inventory: str = "snmp",
    ) -> None:
        self.directory = directory
        self.processes: list[subprocess.Popen[bytes]] = []
        self.webhook = start_webhook()
        self.exporter_port = unused_port()
        self.prometheus_port = unused_port()
        self.alertmanager_port = unused_port()
        try:
            self.config_file = lab.write_exporter_config(
                directory / "exporter.yml",
                interval=probe_interval,
                timeout=probe_interval * 0.8,
                phoneconfig=phoneconfig,
            )
            if inventory != "snmp":  # RisPort70 too (`both`) or instead: the lab's app user
                data = yaml.safe_load(self.config_file.read_text())
                data = risport_exporter_config(
                    data, lab.ca_file, inventory, interval=probe_interval
                )
                self.config_file.write_text(yaml.safe_dump(data, sort_keys=False))
            self._start(
                "exporter",
                [sys.executable, "-m", "exporter", "--config.file", str(self.config_file),
                 "--web.listen-address", f"127.0.0.1:{self.exporter_port}"],
            )  # fmt: skip
            self._start(
                "alertmanager",
                [_binary("prometheus-alertmanager"),
                 f"--config.file={fast_alertmanager(directory, self.webhook)}",
                 f"--storage.path={directory / 'alertmanager-data'}",
                 f"--web.listen-address=127.0.0.1:{self.alertmanager_port}",
                 "--cluster.listen-address="],
            )  # fmt: skip
            self._start(
                "prometheus",
                [_binary("prometheus"),
                 f"--config.file={self._prometheus_config()}",
                 f"--storage.tsdb.path={directory / 'prometheus-data'}",
                 f"--web.listen-address=127.0.0.1:{self.prometheus_port}"],
            )  # fmt: skip
            self.wait_for(self._prometheus_ready, 30, "Prometheus to be ready")
        except BaseException:
            self.close()
            raise

    def _prometheus_config(self) -> Path:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(fast_rules(self.directory))],
            "alerting": {
                "alertmanagers": [
                    {"static_configs": [{"targets": [f"127.0.0.1:{self.alertmanager_port}"]}]}
                ]
            },
            "scrape_configs": [
                {
                    "job_name": JOB,
                    "static_configs": [{"targets": [f"127.0.0.1:{self.exporter_port}"]}],
                }
            ],
        }
        path = self.directory / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def _start(self, name: str, command: list[str]) -> None:
        log = (self.directory / f"{name}.log").open("wb")
        # Files, not pipes: a pipe nobody reads fills up and blocks the process.
        self.processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
        log.close()

    def _prometheus_ready(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.prometheus_port}/-/ready", timeout=2
            ) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def query(self, expression: str) -> list[dict[str, Any]]:
        """An instant query against the real Prometheus."""
        url = f"http://127.0.0.1:{self.prometheus_port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": expression}
        )
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_for(self, condition: Callable[[], bool], seconds: float, what: str) -> float:
        started = time.monotonic()
        while not condition():
            for process in self.processes:
                if process.poll() is not None:
                    raise AssertionError(
                        f"a process of the stack died: {process.args!r}\n{self.logs()}"
                    )
            if time.monotonic() - started > seconds:
                raise AssertionError(
                    f"gave up after {seconds:g}s waiting for {what}\n{self.logs()}"
                )
            time.sleep(0.2)
        return time.monotonic() - started

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-1500:]}"
            for path in sorted(self.directory.glob("*.log"))
        )

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.webhook.server.shutdown()
        self.webhook.server.server_close()


def _binary(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing: run scripts/system-deps"
    return path
