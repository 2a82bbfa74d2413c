"""The lab's TFTP-over-HTTP service: one real-format configuration file per SNMP phone, the
cache list, conditional requests and the fault switches."""

from __future__ import annotations

import urllib.error
import urllib.request
import xml.parsers.expat
from collections.abc import Iterator

import pytest

from exporter.lab import Lab
from exporter.lab.tftp import ConfigFault, DirectoryMode


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(restart_downtime=0.1) as running:
        yield running


def base(lab: Lab, node: str = "cucm-pub") -> str:
    return f"http://127.0.0.1:{lab.node(node).ports[6970]}"


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, b"", dict(error.headers)


def listed(lab: Lab, node: str = "cucm-pub") -> dict[str, int]:
    status, body, _ = get(base(lab, node) + "/ConfigFileCacheList.txt")
    assert status == 200
    lines = body.decode().splitlines()
    assert lines[0].startswith("Filename")
    return {line.split()[0]: int(line.split()[1]) for line in lines[1:]}


def test_every_registered_sep_phone_of_the_cluster_has_a_file_on_every_node(lab: Lab) -> None:
    phones = {
        p.name
        for node in ("cucm-pub", "cucm-sub1")
        for p in lab.phones(node)
        if p.name.startswith("SEP")
    }
    for node in ("cucm-pub", "cucm-sub1"):
        assert {name.removesuffix(".cnf.xml") for name in listed(lab, node)} == phones
    name = sorted(phones)[0]
    status, body, _ = get(f"{base(lab)}/{name}.cnf.xml")
    assert status == 200
    assert len(body) == listed(lab)[f"{name}.cnf.xml"]
    # The undeclared xsi: prefix of real files: a namespace-aware parser refuses it.
    with pytest.raises(xml.parsers.expat.ExpatError, match="unbound prefix"):
        xml.parsers.expat.ParserCreate(namespace_separator=" ").Parse(body, True)
    xml.parsers.expat.ParserCreate().Parse(body, True)  # without namespaces it is well formed
    phone = next(p for p in lab.phones("cucm-pub") if p.name == name)
    assert f"<loadInformation>{phone.active_load}</loadInformation>".encode() in body


def test_a_soft_client_or_an_unknown_phone_has_no_file(lab: Lab) -> None:
    assert get(f"{base(lab)}/SEP00000000DEAD.cnf.xml")[0] == 404
    csf = next(p.name for p in lab.phones("cucm-pub") if p.name.startswith("CSF"))
    assert get(f"{base(lab)}/{csf}.cnf.xml")[0] == 404


def test_directory_modes_tvs_list_and_group(lab: Lab) -> None:
    files = lab.config_files()
    http = [p.name for p in lab.phones("cucm-pub") if p.product == "Cisco 7962"]
    # Out of the box: the first 7962 subscribes to the HTTP service, the second has no secure
    # URL, the others use the secure directory.
    assert files.settings(http[0]).directory is DirectoryMode.HTTP_SERVICE
    assert files.settings(http[1]).directory is DirectoryMode.HTTP_URL
    service = get(f"{base(lab)}/{http[0]}.cnf.xml")[1]
    assert b"<url>http://cucm-pub.lab.test:8080/ccmcip/xmldirectoryinput.jsp</url>" in service
    plain = get(f"{base(lab)}/{http[1]}.cnf.xml")[1]
    assert b"<secureDirectoryURL></secureDirectoryURL>" in plain
    default = get(f"{base(lab)}/{http[2]}.cnf.xml")[1]
    assert (
        b"<secureDirectoryURL>https://cucm-pub.lab.test:8443/ccmcip/xmldirectory.jsp"
        b"</secureDirectoryURL>" in default
    )
    files.configure(http[2], tvs=("cucm-sub1", "cucm-pub"))
    moved = get(f"{base(lab)}/{http[2]}.cnf.xml")[1]
    assert moved.index(b"<address>cucm-sub1.lab.test</address>") < moved.index(
        b"<address>cucm-pub.lab.test</address>"
    )
    files.configure(http[2], tvs=None)


def test_conditional_requests_answer_304_until_the_file_changes(lab: Lab) -> None:
    files = lab.config_files()
    name = next(p.name for p in lab.phones("cucm-sub1") if p.product == "Cisco 7942")
    url = f"{base(lab, 'cucm-sub1')}/{name}.cnf.xml"
    status, _, headers = get(url)
    assert status == 200
    assert get(url, {"If-None-Match": headers["ETag"]})[0] == 304
    assert get(url, {"If-Modified-Since": headers["Last-Modified"]})[0] == 304
    files.configure(name, directory=DirectoryMode.HTTP_SERVICE)
    assert get(url, {"If-None-Match": headers["ETag"]})[0] == 200
    assert get(url, {"If-Modified-Since": headers["Last-Modified"]})[0] == 200
    files.configure(name, directory=DirectoryMode.SECURE)


def test_faults(lab: Lab) -> None:
    files = lab.config_files()
    names = [p.name for p in lab.phones("cucm-pub") if p.product == "Cisco 7841"]
    missing, encrypted, malformed, oversized = names[:4]
    files.configure(missing, fault=ConfigFault.MISSING)
    files.configure(encrypted, fault=ConfigFault.ENCRYPTED)
    files.configure(malformed, fault=ConfigFault.MALFORMED)
    files.configure(oversized, fault=ConfigFault.OVERSIZED)
    files.oversized_bytes = 512 * 1024
    try:
        catalogue = listed(lab)
        assert f"{missing}.cnf.xml" not in catalogue
        assert get(f"{base(lab)}/{missing}.cnf.xml")[0] == 404
        assert f"{encrypted}.cnf.xml.enc.sgn" in catalogue
        assert f"{encrypted}.cnf.xml" not in catalogue
        assert get(f"{base(lab)}/{encrypted}.cnf.xml")[0] == 404
        status, body, _ = get(f"{base(lab)}/{encrypted}.cnf.xml.enc.sgn")
        assert status == 200
        assert b"<device" not in body
        body = get(f"{base(lab)}/{malformed}.cnf.xml")[1]
        with pytest.raises(xml.parsers.expat.ExpatError):
            xml.parsers.expat.ParserCreate().Parse(body, True)
        assert len(get(f"{base(lab)}/{oversized}.cnf.xml")[1]) > 512 * 1024
    finally:
        for name in (missing, encrypted, malformed, oversized):
            files.configure(name, fault=ConfigFault.NONE)


def test_a_restarted_node_serves_again_on_the_same_port(lab: Lab) -> None:
    before = lab.node("cucm-sub1").ports[6970]
    lab.set_tls_policy("cucm-sub1", "1.0")
    assert lab.node("cucm-sub1").ports[6970] == before
    assert listed(lab, "cucm-sub1")


async def test_the_lab_command_subscribes_every_phone_to_the_http_service(lab: Lab) -> None:
    import asyncio

    from exporter.lab.cli import main, start_control
    from exporter.lab.tls import unused_port

    port = unused_port()
    runner = await start_control(lab, "127.0.0.1", port)
    files = lab.config_files()
    control = f"--control=http://127.0.0.1:{port}"
    try:
        code = await asyncio.to_thread(
            main, ["phone-config", "all", "--directory", "http_service", control]
        )
        assert code == 0
        names = files.phone_names()
        assert {files.settings(n).directory for n in names} == {DirectoryMode.HTTP_SERVICE}
        bad = await asyncio.to_thread(main, ["phone-config", "all", "--tvs", "", control])
        assert bad == 0  # an empty list restores the default
        refused = await asyncio.to_thread(
            main,
            ["phone-config", names[0], "--directory", "http_service", control, "--cluster", "nope"],
        )
        assert refused == 1
    finally:
        for name in files.phone_names():
            files.configure(name, directory=DirectoryMode.SECURE)
        # Restore the lab's out-of-the-box workaround phones for the other tests.
        for node in ("cucm-pub", "cucm-sub1"):
            legacy = [p.name for p in lab.phones(node) if p.product == "Cisco 7962"]
            files.configure(legacy[0], directory=DirectoryMode.HTTP_SERVICE)
            files.configure(legacy[1], directory=DirectoryMode.HTTP_URL)
        await runner.cleanup()
