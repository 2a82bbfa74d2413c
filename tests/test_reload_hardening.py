"""Reloads that must fail loudly and never hang (issue 14, items 6 and 8), and the lifecycle API
behind --web.enable-lifecycle as Prometheus has it.

Each test reproduces an attack or a mistake against the real code: files on disk (a FIFO,
/dev/zero, a huge file), YAML that crashed the loader, and the daemon as a process on loopback.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.config import ConfigError, load_config, load_config_async, parse_config
from exporter.config import base as config_base
from exporter.config import load as config_load
from tests.conftest import start_daemon, stop_process
from tests.test_daemon import wait_for

# Probes off: these tests are about loading, and must not wait on any network.
QUIET = """\
probes:
  tls: {enabled: false}
  directory: {enabled: false}
  snmp: {enabled: false}
"""


def config_text(nodes: int = 2, community_file: Path | None = None) -> str:
    snmp = (
        f"    snmp: {{version: 2c, community_file: {community_file}}}\n" if community_file else ""
    )
    listed = "".join(f"      - {{name: n{i}, host: 127.0.0.1}}\n" for i in range(nodes))
    return QUIET + "clusters:\n  - name: c\n" + snmp + "    nodes:\n" + listed


def problems(text: str) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as raised:
        parse_config(text, base_dir=Path("/nonexistent"))
    return raised.value.problems


# --- loading: every failure is a ConfigError that says where ------------------------------


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("? [a, b]\n: 1\n" + config_text(), "line 1, column 3: a list or mapping cannot be a key"),
        ("? {a: 1}\n: 2\n" + config_text(), "line 1, column 3: a list or mapping cannot be a key"),
        (
            config_text().replace("host: 127.0.0.1}", "host: 127.0.0.1, port_map: {? [1]: 2}}", 1),
            "a list or mapping cannot be a key",
        ),
        ("clusters: " + "[" * 20000 + "]" * 20000, "nested too deeply"),
        ("clusters: " + "{a: " * 5000 + "1" + "}" * 5000, "nested too deeply"),
    ],
)
def test_keys_and_nesting_that_crashed_the_loader_are_config_errors(text: str, where: str) -> None:
    (problem,) = problems(text)
    assert where in problem


def test_nesting_is_refused_past_its_limit_naming_the_field() -> None:
    # The top-level mapping is one level: clusters and 99 lists are 100, the most allowed.
    (allowed,) = problems("clusters: " + "[" * 99 + "]" * 99)
    assert "nested too deeply" not in allowed  # it reached the models
    (refused,) = problems("clusters: " + "[" * 100 + "]" * 100)
    assert refused == "<config>: clusters[0][0][0]…: nested too deeply (more than 100 levels)"
    deep = "{a: " * 200 + "1" + "}" * 200
    (mapping,) = problems(QUIET + "clusters:\n  - name: c\n    nodes: " + deep)
    assert mapping == "<config>: clusters[0].nodes.a…: nested too deeply (more than 100 levels)"


def test_nesting_gets_the_same_error_from_the_pure_python_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PyYAML without libyaml: the same message, not a RecursionError's."""
    text = "clusters: " + "[" * 20000 + "]" * 20000
    expected = "<config>: clusters[0][0][0]…: nested too deeply (more than 100 levels)"
    monkeypatch.setattr(config_base, "_FastLoader", config_base._StrictLoader)
    assert problems(text) == (expected,)


def test_complex_keys_get_a_message_from_config_check_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("? [a, b]\n: 1\n" + config_text())
    run = subprocess.run(
        [sys.executable, "-m", "exporter", "--config.file", str(path), "--config.check"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert "a list or mapping cannot be a key" in run.stderr


def test_merge_keys_work_and_duplicates_are_still_refused() -> None:
    text = config_text().replace(
        QUIET,
        "probes:\n"
        "  tls: &common {enabled: false, interval: 30s, timeout: 10s}\n"
        "  directory: {<<: *common, request_timeout: 4s}\n"
        "  snmp: {<<: *common, timeout: 20s}\n",
    )
    config = parse_config(text, base_dir=Path("/"))
    assert (config.probes.directory.interval, config.probes.directory.timeout) == (30.0, 10.0)
    assert not config.probes.directory.enabled
    assert config.probes.snmp.timeout == 20.0  # an explicit key overrides the merged one
    (problem,) = problems(text.replace("timeout: 20s}", "timeout: 20s, timeout: 25s}"))
    assert "duplicate key 'timeout'" in problem


@pytest.mark.parametrize("zone", ["eth0\nX", "eth0 injected", "a<b>", ""])
def test_an_ipv6_zone_is_an_interface_name(zone: str) -> None:
    text = config_text(1).replace("host: 127.0.0.1", f'host: "fe80::1%{zone}"'.replace("\n", "\\n"))
    (problem,) = problems(text)
    assert problem.startswith("clusters[0].nodes[0].host: ")


def test_an_ipv6_zone_that_names_an_interface_is_fine() -> None:
    text = config_text(1).replace("host: 127.0.0.1", 'host: "fe80::1%eth0"')
    assert parse_config(text, base_dir=Path("/")).clusters[0].nodes[0].host == "fe80::1%eth0"


def test_a_secret_file_that_is_a_device_or_huge_is_refused_by_name(tmp_path: Path) -> None:
    huge = tmp_path / "huge"
    huge.write_bytes(b"x" * (1024 * 1024))
    for secret, reason in ((Path("/dev/zero"), "not a regular file"), (huge, "larger than")):
        path = tmp_path / "c.yml"
        path.write_text(config_text(community_file=secret))
        with pytest.raises(ConfigError) as raised:
            load_config(path)
        (problem,) = raised.value.problems
        assert problem.startswith("clusters[0].snmp.community_file: cannot read ")
        assert reason in problem


def test_a_fifo_secret_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "community"
    os.mkfifo(fifo)  # nobody ever writes it: opening it for reading would block forever
    path = tmp_path / "c.yml"
    path.write_text(config_text(community_file=fifo))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        loading = pool.submit(load_config, path)
        try:
            concurrent.futures.wait([loading], timeout=20)
            if not loading.done():
                pytest.fail("loading a config with a FIFO secret blocked")
        finally:
            if not loading.done():
                with fifo.open("wb"):  # let the stuck open finish so the test can end
                    pass
        with pytest.raises(ConfigError, match="not a regular file"):
            loading.result()


def test_the_config_file_itself_must_be_a_regular_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(Path("/dev/zero"))
    assert raised.value.problems == ("/dev/zero: cannot read the config file: not a regular file",)


async def test_a_reload_loads_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 10,000-node file takes seconds to validate: that must not happen on the loop."""
    path = tmp_path / "c.yml"
    path.write_text(config_text())
    threads: list[threading.Thread] = []
    real = config_load.load_config

    def recording(file: Path) -> object:
        threads.append(threading.current_thread())
        return real(file)

    monkeypatch.setattr(config_load, "load_config", recording)
    config = await load_config_async(path)
    assert config.node_count == 2
    assert threads
    assert threads[0] is not threading.main_thread()


# --- the daemon: failed reloads are exported, and it keeps answering ----------------------


class Running:
    def __init__(self, process: subprocess.Popen[bytes], port: int, config: Path) -> None:
        self.process, self.base, self.config = process, f"http://127.0.0.1:{port}", config

    def request(
        self, path: str, method: str = "GET", headers: dict[str, str] | None = None, **kw: bytes
    ) -> tuple[int, str]:
        request = urllib.request.Request(
            self.base + path, method=method, headers=headers or {}, data=kw.get("data")
        )
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def sample(self, name: str, labels: str = "") -> str | None:
        _, text = self.request("/metrics")
        prefix = f"{name}{{{labels}}} " if labels else f"{name} "
        return next(
            (line[len(prefix) :] for line in text.splitlines() if line.startswith(prefix)), None
        )


def _start(tmp_path: Path, *flags: str) -> Iterator[Running]:
    config = tmp_path / "exporter.yml"
    config.write_text(config_text())
    process, port = start_daemon(config, tmp_path / "daemon.log", *flags)
    running = Running(process, port, config)

    def ready() -> bool:
        if process.poll() is not None:
            pytest.fail((tmp_path / "daemon.log").read_text()[-2000:])
        try:
            return running.request("/-/ready")[0] == 200
        except OSError:
            return False

    try:
        wait_for(ready, 20, "the daemon")
        yield running
    finally:
        stop_process(process)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Running]:
    yield from _start(tmp_path, "--web.enable-lifecycle")


@pytest.fixture
def daemon_without_lifecycle(tmp_path: Path) -> Iterator[Running]:
    yield from _start(tmp_path)


def test_a_reload_with_a_fifo_secret_fails_and_health_keeps_answering(
    daemon: Running, tmp_path: Path
) -> None:
    fifo = tmp_path / "community"
    os.mkfifo(fifo)
    daemon.config.write_text(config_text(community_file=fifo))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        reload = pool.submit(daemon.request, "/-/reload", "POST")
        health = pool.submit(daemon.request, "/-/healthy")
        assert health.result(timeout=30) == (200, "Healthy.\n")
        status, body = reload.result(timeout=30)
    assert status == 500
    assert "clusters[0].snmp.community_file: cannot read" in body
    assert "not a regular file" in body
    assert daemon.sample("cucm_exporter_config_last_reload_successful") == "0.0"


@pytest.mark.parametrize(
    "broken",
    [
        "? [a, b]\n: 1\n",  # an unhashable key
        "bogus: " + "[" * 20000 + "]" * 20000 + "\n",  # deep nesting
        "dev-zero",  # a secret file that never ends
    ],
)
def test_every_failed_reload_is_exported(daemon: Running, broken: str) -> None:
    if broken == "dev-zero":
        daemon.config.write_text(config_text(community_file=Path("/dev/zero")))
    else:
        daemon.config.write_text(broken + config_text())
    status, body = daemon.request("/-/reload", "POST")
    assert status == 500, body
    assert "Traceback" not in body
    assert daemon.sample("cucm_exporter_config_last_reload_successful") == "0.0"
    assert daemon.request("/-/healthy")[0] == 200


def test_the_configured_nodes_gauge_shows_a_truncated_config(daemon: Running) -> None:
    assert daemon.sample("cucm_exporter_configured_nodes", 'cluster="c"') == "2.0"
    daemon.config.write_text(config_text(nodes=1))  # valid, but a node went missing
    assert daemon.request("/-/reload", "POST")[0] == 200
    assert daemon.sample("cucm_exporter_config_last_reload_successful") == "1.0"
    assert daemon.sample("cucm_exporter_configured_nodes", 'cluster="c"') == "1.0"


@pytest.mark.parametrize(
    ("headers", "data"),
    [
        ({"Content-Type": "application/x-www-form-urlencoded"}, b"a=1"),  # an HTML form
        ({"Content-Type": "multipart/form-data; boundary=x"}, b"--x--\r\n"),
        ({"Content-Type": "text/plain"}, b"x"),  # fetch() without a preflight
        ({"Origin": "http://attacker.example"}, b""),
        ({"Sec-Fetch-Site": "cross-site"}, b""),
    ],
)
def test_a_cross_site_post_cannot_reload(
    daemon: Running, headers: dict[str, str], data: bytes
) -> None:
    daemon.config.write_text("bogus: 1\n" + config_text())  # a reload would fail: it must not run
    status, body = daemon.request("/-/reload", "POST", headers, data=data)
    assert status == 403, body
    assert daemon.sample("cucm_exporter_config_last_reload_successful") == "1.0"


def test_a_same_origin_post_reloads(daemon: Running) -> None:
    origin = {"Origin": daemon.base, "Sec-Fetch-Site": "same-origin"}
    assert daemon.request("/-/reload", "POST", origin)[0] == 200
    assert daemon.request("/-/reload")[0] == 405  # POST only, as Prometheus


def test_without_the_lifecycle_flag_only_sighup_reloads(daemon_without_lifecycle: Running) -> None:
    daemon = daemon_without_lifecycle
    daemon.config.write_text("bogus: 1\n" + config_text())
    assert daemon.request("/-/reload", "POST") == (403, "Lifecycle API is not enabled.\n")
    assert daemon.sample("cucm_exporter_config_last_reload_successful") == "1.0"
    daemon.process.send_signal(signal.SIGHUP)
    wait_for(
        lambda: daemon.sample("cucm_exporter_config_last_reload_successful") == "0.0",
        15,
        "the SIGHUP reload to fail",
    )
