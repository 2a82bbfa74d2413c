"""The lab's RisPort70 speaks the real shapes: paging, 401, the rate fault, one phone table."""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable, Iterator

import defusedxml.ElementTree as SafeET
import httpx
import pytest

from exporter.lab import Lab
from exporter.lab.risport import (
    LAB_RISPORT_PASSWORD,
    LAB_RISPORT_USER,
    MAX_PAGE,
    RISPORT_PATH,
    SOAP_NS,
    RisportFault,
)

NS = {"ns1": SOAP_NS, "soapenv": "http://schemas.xmlsoap.org/soap/envelope/"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(restart_downtime=0.0) as running:
        running.add_phones("cucm-sub1", "Cisco 7962", "SCCP42.9-4-2SR3-1S", 2200)
        yield running


@pytest.fixture
def clock(lab: Lab) -> Iterator[FakeClock]:
    fake = FakeClock()
    lab.risport["lab"].set_clock(fake)
    yield fake
    lab.risport["lab"].set_fault(RisportFault.NONE)


def envelope(state_info: str = "", max_devices: int = MAX_PAGE) -> str:
    # The request as Cisco's WSDL (document/literal) and public clients shape it.
    return (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        f'xmlns:soap="{SOAP_NS}"><soapenv:Header/><soapenv:Body><soap:selectCmDeviceExt>'
        f"<soap:StateInfo>{state_info}</soap:StateInfo><soap:CmSelectionCriteria>"
        f"<soap:MaxReturnedDevices>{max_devices}</soap:MaxReturnedDevices>"
        "<soap:DeviceClass>Phone</soap:DeviceClass><soap:Model>255</soap:Model>"
        "<soap:Status>Any</soap:Status><soap:NodeName></soap:NodeName>"
        "<soap:SelectBy>Name</soap:SelectBy><soap:SelectItems><soap:item><soap:Item>*"
        "</soap:Item></soap:item></soap:SelectItems><soap:Protocol>Any</soap:Protocol>"
        "<soap:DownloadStatus>Any</soap:DownloadStatus></soap:CmSelectionCriteria>"
        "</soap:selectCmDeviceExt></soapenv:Body></soapenv:Envelope>"
    )


def post(lab: Lab, body: str, password: str = LAB_RISPORT_PASSWORD) -> httpx.Response:
    node = lab.node("cucm-pub")
    context = ssl.create_default_context(cafile=str(lab.ca_file))
    context.check_hostname = False  # the lab's certificate names the node, not 127.0.0.1
    with httpx.Client(verify=context, timeout=10) as client:
        return client.post(
            f"https://{node.address}:{node.ports[8443]}{RISPORT_PATH}",
            content=body,
            auth=(LAB_RISPORT_USER, password),
            headers={"SOAPAction": "selectCmDeviceExt", "Content-Type": "text/xml"},
        )


def test_pages_of_at_most_1000_through_state_info_cover_every_phone_once(
    lab: Lab, clock: FakeClock
) -> None:
    state, names, nodes, pages = "", [], set(), 0
    while True:
        response = post(lab, envelope(state))
        assert response.status_code == 200
        root = SafeET.fromstring(response.content)
        devices = root.findall(".//ns1:CmNodes/ns1:item/ns1:CmDevices/ns1:item", NS)
        assert len(devices) <= MAX_PAGE
        names += [d.findtext("ns1:Name", namespaces=NS) for d in devices]
        nodes |= {
            n.findtext("ns1:Name", namespaces=NS)
            for n in root.iterfind(".//ns1:CmNodes/ns1:item", NS)
        }
        pages += 1
        clock.now += 10  # stay within the lab's 15 a minute
        returned = root.findtext(".//ns1:StateInfo", namespaces=NS) or ""
        if len(devices) < MAX_PAGE or returned == state:
            break
        state = returned.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    snmp = {p.name for node in ("cucm-pub", "cucm-sub1") for p in lab.phones(node)}
    assert len(names) == len(set(names)) == len(snmp)  # merged across nodes: once each
    assert set(names) == snmp
    assert pages == len(snmp) // MAX_PAGE + 1
    assert nodes == {"cucm-pub", "cucm-sub1"}


def test_a_moved_phone_is_reported_once_on_the_node_it_registered_to(
    lab: Lab, clock: FakeClock
) -> None:
    moved = lab.phones("cucm-pub")[0].name  # it left an unregistered row on cucm-sub1
    devices = lab.risport["lab"].devices()
    where = [(node, phone.status) for node, phone in devices if phone.name == moved]
    assert where == [("cucm-pub", "registered")]


def test_bad_credentials_get_a_401(lab: Lab, clock: FakeClock) -> None:
    before = lab.risport["lab"].requests
    response = post(lab, envelope(), password="wrong")
    assert response.status_code == 401
    assert "Basic" in response.headers["WWW-Authenticate"]
    assert lab.risport["lab"].requests == before  # not counted against the budget


def test_more_than_15_requests_a_minute_get_the_axis_rate_fault(lab: Lab, clock: FakeClock) -> None:
    answers = [post(lab, envelope(max_devices=1)).status_code for _ in range(16)]
    assert answers == [200] * 15 + [500]
    last = post(lab, envelope(max_devices=1))
    assert "Exceeded allowed rate for Reatime information" in last.text
    assert SafeET.fromstring(last.content).find(".//soapenv:Fault", NS) is not None
    clock.now += 61
    assert post(lab, envelope(max_devices=1)).status_code == 200


@pytest.mark.parametrize(
    ("fault", "check"),
    [
        (RisportFault.GARBAGE, lambda r: not r.content.startswith(b"<")),
        (RisportFault.TRUNCATED, lambda r: not r.text.rstrip().endswith("Envelope>")),
        (RisportFault.ENTITY_BOMB, lambda r: b"<!ENTITY" in r.content),
        (RisportFault.RATE_LIMITED, lambda r: r.status_code == 500),
        (RisportFault.NODE_NOT_RESPONDING, lambda r: b"NodeNotResponding" in r.content),
    ],
)
def test_faults(
    lab: Lab, clock: FakeClock, fault: RisportFault, check: Callable[[httpx.Response], bool]
) -> None:
    lab.risport["lab"].set_fault(fault)
    response = post(lab, envelope(max_devices=5))
    assert check(response)


def test_soft_clients_can_leave_snmp_and_stay_in_risport(lab: Lab, clock: FakeClock) -> None:
    soft = {p.name for p in lab.phones("cucm-pub") if p.name.startswith("CSF")}
    assert soft
    lab.risport["lab"].set_fault(RisportFault.HIDE_SOFT_CLIENTS_FROM_SNMP)
    assert not soft & {p.name for p in lab.phones("cucm-pub")}
    assert soft <= {phone.name for _, phone in lab.risport["lab"].devices()}
    lab.risport["lab"].set_fault(RisportFault.NONE)
    assert soft <= {p.name for p in lab.phones("cucm-pub")}


def test_the_state_info_is_cisco_shaped(lab: Lab, clock: FakeClock) -> None:
    root = SafeET.fromstring(post(lab, envelope(max_devices=3)).content)
    state = root.findtext(".//ns1:StateInfo", namespaces=NS) or ""
    assert re.fullmatch(
        r'<StateInfo><Node Name="[^"]+" .*TotalItemsReturned="3"/></StateInfo>', state
    )
