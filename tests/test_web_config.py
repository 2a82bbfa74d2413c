"""--web.config.file: TLS, client certificates and basic auth on the daemon's endpoints, tested
with real TLS clients; the same file passes `promtool check web-config`."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest

from exporter.lab import Lab
from exporter.lab.certs import LabCA
from tests.conftest import run_exporter, start_daemon, stop_process
from tests.test_daemon import wait_for

PASSWORD = "scrape-secret-5e8f"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("pki")
    ca = LabCA(directory, name="Web CA")
    server = ca.issue("exporter", ["exporter.test"])
    client = ca.issue("prometheus", ["prometheus.test"], client=True)
    return {
        "ca": ca.bundle_file,
        "cert": server.cert_file,
        "key": server.key_file,
        "client_cert": client.cert_file,
        "client_key": client.key_file,
    }


def web_config(pki: dict[str, Path], client_auth: str = "NoClientCert") -> str:
    # htpasswd writes $2y$; bcrypt writes $2b$; both must work, so use the htpasswd form.
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode().replace("$2b$", "$2y$")
    return (
        "tls_server_config:\n"
        f"  cert_file: {pki['cert']}\n"
        f"  key_file: {pki['key']}\n"
        f"  client_auth_type: {client_auth}\n"
        f"  client_ca_file: {pki['ca']}\n"
        "  min_version: TLS12\n"
        "http_server_config:\n"
        "  headers:\n"
        "    X-Content-Type-Options: nosniff\n"
        "basic_auth_users:\n"
        f"  prometheus: {hashed}\n"
    )


class Running:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path, web: Path) -> None:
        self.process, self.port, self.log, self.web = process, port, log, web

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"


@pytest.fixture
def secured(
    lab: Lab, pki: dict[str, Path], tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Running]:
    client_auth = getattr(request, "param", "NoClientCert")
    web = tmp_path / "web.yml"
    web.write_text(web_config(pki, client_auth))
    config = lab.write_exporter_config(tmp_path / "exporter.yml", interval=5, timeout=4)
    log_path = tmp_path / "daemon.log"
    process, port = start_daemon(
        config, log_path, "--web.config.file", str(web), "--log.level", "debug",
        "--web.enable-lifecycle",
    )  # fmt: skip
    running = Running(process, port, log_path, web)
    try:
        wait_for(lambda: _healthy(running, pki), 15, "the daemon over TLS")
        yield running
    finally:
        stop_process(process)


def client(
    pki: dict[str, Path], *, cert: bool = False, version: ssl.TLSVersion | None = None
) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    context.check_hostname = False  # the certificate names exporter.test; we dial 127.0.0.1
    if cert:
        context.load_cert_chain(pki["client_cert"], pki["client_key"])
    if version is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = context.maximum_version = version
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return httpx.Client(verify=context, timeout=5)


def _healthy(running: Running, pki: dict[str, Path]) -> bool:
    if running.process.poll() is not None:
        pytest.fail(f"the daemon exited: {running.log.read_text()[-2000:]}")
    try:
        with client(pki, cert=True) as http:
            return http.get(running.url("/-/healthy")).status_code == 200
    except httpx.HTTPError:
        return False


def test_web_config_passes_promtool(pki: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text(web_config(pki, "RequireAndVerifyClientCert"))
    promtool = shutil.which("promtool")
    assert promtool
    checked = subprocess.run(
        [promtool, "check", "web-config", str(path)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_basic_auth(secured: Running, pki: dict[str, Path]) -> None:
    with client(pki) as http:
        assert http.get(secured.url("/metrics")).status_code == 401
        assert http.get(secured.url("/metrics"), auth=("prometheus", "wrong")).status_code == 401
        assert http.get(secured.url("/metrics"), auth=("nobody", PASSWORD)).status_code == 401
        answer = http.get(secured.url("/metrics"), auth=("prometheus", PASSWORD))
        assert answer.status_code == 200
        assert "cucm_exporter_build_info" in answer.text
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert http.get(secured.url("/"), auth=("prometheus", "wrong")).status_code == 401
        assert http.get(secured.url("/probe?target=cucm-pub")).status_code == 401
        # Liveness needs no password (container health checks), and says nothing.
        assert http.get(secured.url("/-/healthy")).status_code == 200
    log = secured.log.read_text()
    assert PASSWORD not in log
    assert "$2y$" not in log


def test_plain_http_is_not_served(secured: Running) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{secured.port}/metrics", timeout=5)


def test_tls_below_the_minimum_is_refused(secured: Running, pki: dict[str, Path]) -> None:
    with client(pki, version=ssl.TLSVersion.TLSv1_1) as http, pytest.raises(httpx.ConnectError):
        http.get(secured.url("/-/healthy"))
    with client(pki, version=ssl.TLSVersion.TLSv1_2) as http:
        assert http.get(secured.url("/-/healthy")).status_code == 200


@pytest.mark.parametrize("secured", ["RequireAndVerifyClientCert"], indirect=True)
def test_a_required_client_certificate(secured: Running, pki: dict[str, Path]) -> None:
    with client(pki) as http, pytest.raises(httpx.HTTPError):
        http.get(secured.url("/-/healthy"))
    with client(pki, cert=True) as http:
        assert http.get(secured.url("/metrics"), auth=("prometheus", PASSWORD)).status_code == 200


def test_the_web_config_reloads(secured: Running, pki: dict[str, Path]) -> None:
    new_password = "rotated-secret-71aa"
    hashed = bcrypt.hashpw(new_password.encode(), bcrypt.gensalt(10)).decode()
    text = secured.web.read_text()
    secured.web.write_text(
        text[: text.index("basic_auth_users:")] + f"basic_auth_users:\n  prometheus: {hashed}\n"
    )
    with client(pki) as http:
        reloaded = http.post(secured.url("/-/reload"), auth=("prometheus", PASSWORD))
        assert reloaded.status_code == 200, reloaded.text
        assert http.get(secured.url("/metrics"), auth=("prometheus", PASSWORD)).status_code == 401
        assert (
            http.get(secured.url("/metrics"), auth=("prometheus", new_password)).status_code == 200
        )
        # Turning TLS off is refused: it needs a restart; the running settings stay.
        secured.web.write_text(f"basic_auth_users:\n  prometheus: {hashed}\n")
        refused = http.post(secured.url("/-/reload"), auth=("prometheus", new_password))
        assert refused.status_code == 500
        assert "turning TLS on or off needs a restart" in refused.text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("basic_auth_users:\n  u: plaintext\n", "basic_auth_users.u: must be a bcrypt hash"),
        ("tls_server_config:\n  cert_file: /nonexistent.pem\n  key_file: /nonexistent.key\n",
         "tls_server_config: cannot load the certificates"),
        ("tls_server_config:\n  cert_file: a\n  key_file: b\n"
         "  client_auth_type: RequireAndVerifyClientCert\n",
         "client_auth_type RequireAndVerifyClientCert needs client_ca_file"),
        ("rate_limit: {interval: 1s}\n", "rate_limit: unknown or unsupported field"),
    ],
)  # fmt: skip
def test_a_bad_web_config_stops_the_start(
    lab: Lab, tmp_path: Path, text: str, message: str
) -> None:
    web = tmp_path / "web.yml"
    web.write_text(text)
    config = lab.write_exporter_config(tmp_path / "exporter.yml")
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--config.file", str(config),
         "--web.config.file", str(web), "--config.check"],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert "plaintext" not in result.stderr


def healthcheck(*args: str) -> subprocess.CompletedProcess[str]:
    return run_exporter("healthcheck", *args, timeout=30)


def test_the_healthcheck_follows_the_daemons_listen_address_and_tls(secured: Running) -> None:
    """What the image's HEALTHCHECK runs: the flags come from the exporter's command line."""
    followed = healthcheck("--pid", str(secured.process.pid))
    assert (followed.returncode, followed.stderr) == (0, "")
    # Told the same address without the web config, it speaks plain HTTP to a TLS port: not
    # healthy, in one line. So the check above really went over TLS.
    plain = healthcheck("--web.listen-address", f"127.0.0.1:{secured.port}")
    assert plain.returncode == 1
    assert plain.stderr.startswith(f"healthcheck: http://127.0.0.1:{secured.port}/-/healthy: ")
    assert len(plain.stderr.splitlines()) == 1
    given = healthcheck(
        "--web.listen-address", f"127.0.0.1:{secured.port}", "--web.config.file", str(secured.web)
    )
    assert (given.returncode, given.stderr) == (0, "")


def test_the_healthcheck_reports_a_dead_exporter_in_one_line() -> None:
    from exporter.lab.tls import unused_port

    port = unused_port()
    result = healthcheck("--web.listen-address", f"127.0.0.1:{port}", "--timeout", "2")
    assert result.returncode == 1
    assert result.stderr.startswith(f"healthcheck: http://127.0.0.1:{port}/-/healthy: ")
    assert len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stderr
