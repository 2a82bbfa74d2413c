"""The lab's phone configuration files, as CUCM's TFTP service builds them: one phone's
SEP<MAC>.cnf.xml, and the switches that make it differ (its directory, a fault).

Where the format comes from:
- SEP<MAC>.cnf.xml: the element layout of a CUCM 12.5 phone configuration file published in
  acaeti/friendly-waldo, and a CUCM 12 device configuration quoted in Jabber logs. The root
  element carries an undeclared `xsi:` prefix, as real files do (so a namespace-aware parser
  fails on it); devicePool/callManagerGroup/members/member[@priority]/callManager/
  processNodeName is the CallManager group, TVS/members/member the TVS list, loadInformation
  the configured firmware, directoryURL/secureDirectoryURL from the enterprise parameters
  "URL Directories" and "Secured Directory URL", and phoneServices the subscribed services
  (type="1" a Directories service).
- With TFTP encryption in the phone's security profile only SEP<MAC>.cnf.xml.enc.sgn exists.

Serving them (6970, the cache list, conditional requests, the faults' bytes) is lab/tftp.py.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "ENTITY_BOMB",
    "TVS_PORT",
    "ConfigFault",
    "DirectoryMode",
    "PhoneLike",
    "PhoneSettings",
    "render_config",
]

TVS_PORT = 2445


class DirectoryMode(enum.Enum):
    """How a phone's configuration points it at the corporate directory."""

    # The defaults: directoryURL over HTTP and secureDirectoryURL over HTTPS; a phone that is
    # secure by default uses the secure one (so through TVS), with the built-in service.
    SECURE = "secure"
    # secureDirectoryURL emptied: the phone falls back to the plain directoryURL (8080).
    HTTP_URL = "http_url"
    # The recommended workaround: a Directories phone service on ccmcip over HTTP 8080.
    HTTP_SERVICE = "http_service"


class ConfigFault(enum.Enum):
    NONE = "none"
    MISSING = "missing"  # no file at all: 404, and not in ConfigFileCacheList.txt
    MALFORMED = "malformed"  # the file is cut short mid-element
    ENCRYPTED = "encrypted"  # only SEP<MAC>.cnf.xml.enc.sgn exists (TFTP encryption)
    OVERSIZED = "oversized"  # a valid start, then `oversized_bytes` of padding, streamed
    ENTITY_BOMB = "entity_bomb"  # "billion laughs" in a DTD
    TRICKLE = "trickle"  # the real file, one byte every `trickle_interval` seconds


@dataclass(frozen=True)
class PhoneSettings:
    """What the administrator configured for one phone (None: the cluster's default)."""

    directory: DirectoryMode = DirectoryMode.SECURE
    fault: ConfigFault = ConfigFault.NONE
    tvs: tuple[str, ...] | None = None  # node names, in priority order
    cm_group: tuple[str, ...] | None = None  # node names, in priority order


class PhoneLike(Protocol):
    """A row of the lab's phone table (lab/snmp.py LabPhone)."""

    name: str
    product: str
    active_load: str
    status: str


ENTITY_BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE device [<!ENTITY a "aaaaaaaaaa">'
    + b"".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode() for i in range(8)
    )
    + b']><device xsi:type="axl:XIPPhone"><loadInformation>&i;</loadInformation></device>'
)


def render_config(
    phone: PhoneLike, directory: DirectoryMode, cm_group: Sequence[str], tvs: Sequence[str]
) -> bytes:
    """One phone's SEP<MAC>.cnf.xml in CUCM's element layout (abridged to the elements a
    12.5 file carries around the ones that matter; see the module docstring)."""
    first = cm_group[0]
    members = "".join(
        f'<member priority="{i}"><callManager><name>{host.split(".")[0]}</name>'
        f"<description>{host}</description><ports><ethernetPhonePort>2000"
        "</ethernetPhonePort><sipPort>5060</sipPort><securedSipPort>5061</securedSipPort>"
        "<mgcpPorts><listen>2427</listen><keepAlive>2428</keepAlive></mgcpPorts></ports>"
        f"<processNodeName>{host}</processNodeName></callManager></member>"
        for i, host in enumerate(cm_group)
    )
    tvs_members = "".join(
        f'<member priority="{i}"><port>{TVS_PORT}</port><address>{host}</address></member>'
        for i, host in enumerate(tvs)
    )
    secure_directory = (
        ""
        if directory is DirectoryMode.HTTP_URL
        else f"https://{first}:8443/ccmcip/xmldirectory.jsp"
    )
    services = [
        ("1", "Missed Calls", "Application:Cisco/MissedCalls"),
        ("1", "Received Calls", "Application:Cisco/ReceivedCalls"),
        ("1", "Placed Calls", "Application:Cisco/PlacedCalls"),
        ("1", "Personal Directory", "Application:Cisco/PersonalDirectory"),
        ("1", "Corporate Directory", "Application:Cisco/CorporateDirectory"),
        ("2", "Voicemail", "Application:Cisco/Voicemail"),
    ]
    if directory is DirectoryMode.HTTP_SERVICE:
        services.append(
            ("1", "Corporate Directory (HTTP)", f"http://{first}:8080/ccmcip/xmldirectoryinput.jsp")
        )
    service_xml = "".join(
        f'<phoneService type="{kind}" category="0"><name>{name}</name><url>{url}</url>'
        "<vendor></vendor><version></version></phoneService>"
        for kind, name, url in services
    )
    protocol = "SCCP" if phone.active_load.upper().startswith("SCCP") else "SIP"
    mac = phone.name[3:]
    uuid = hashlib.md5(phone.name.encode(), usedforsecurity=False).hexdigest()
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<device xsi:type="axl:XIPPhone" ctiid="{int(mac[-4:], 16)}" '
        f'uuid="{{{uuid[:8]}-{uuid[8:12]}-{uuid[12:16]}-{uuid[16:20]}-{uuid[20:]}}}">\n'
        f"<fullConfig>true</fullConfig>\n<deviceProtocol>{protocol}</deviceProtocol>\n"
        "<sshUserId></sshUserId>\n<sshPassword></sshPassword>\n<ipAddressMode>0</ipAddressMode>\n"
        "<allowAutoConfig>true</allowAutoConfig>\n<tzdata><tzolsonversion>2019c</tzolsonversion>"
        "<tzupdater>tzupdater.jar</tzupdater></tzdata>\n"
        '<devicePool uuid="{1b1b9eb6-7803-11d3-bdf0-00108302ead1}"><revertPriority>0'
        "</revertPriority><name>Default</name><dateTimeSetting><name>CMLocal</name>"
        "<dateTemplate>M/D/Y</dateTemplate><timeZone>Greenwich Standard Time</timeZone>"
        "<olsonTimeZone>Etc/GMT</olsonTimeZone></dateTimeSetting>"
        f"<callManagerGroup><name>Default</name><tftpDefault>true</tftpDefault><members>"
        f"{members}</members></callManagerGroup>"
        "<connectionMonitorDuration>120</connectionMonitorDuration></devicePool>\n"
        f"<TVS><members>{tvs_members}</members></TVS>\n"
        "<MissedCallLoggingOption>10</MissedCallLoggingOption>\n"
        f"<loadInformation>{phone.active_load}</loadInformation>\n"
        "<vendorConfig><disableSpeaker>false</disableSpeaker><webAccess>1</webAccess>"
        "</vendorConfig>\n"
        "<versionStamp>1607617020-a5d8d03a-3a4e-4f7b-a1e1-8a7c18dae5c1</versionStamp>\n"
        f"<userLocale><name>English_United_States</name></userLocale>\n"
        f"<directoryURL>http://{first}:8080/ccmcip/xmldirectory.jsp</directoryURL>\n"
        "<idleURL></idleURL>\n"
        f"<informationURL>http://{first}:8080/ccmcip/GetTelecasterHelpText.jsp</informationURL>\n"
        "<messagesURL></messagesURL>\n<proxyServerURL></proxyServerURL>\n"
        f"<servicesURL>http://{first}:8080/ccmcip/getservicesmenu.jsp</servicesURL>\n"
        f"<secureAuthenticationURL>https://{first}:8443/ccmcip/authenticate.jsp"
        "</secureAuthenticationURL>\n"
        f"<secureDirectoryURL>{secure_directory}</secureDirectoryURL>\n"
        "<secureIdleURL></secureIdleURL>\n"
        f"<secureInformationURL>https://{first}:8443/ccmcip/GetTelecasterHelpText.jsp"
        "</secureInformationURL>\n<secureMessagesURL></secureMessagesURL>\n"
        f"<secureServicesURL>https://{first}:8443/ccmcip/getservicesmenu.jsp</secureServicesURL>\n"
        f'<phoneServices useHTTPS="true"><provisioning>0</provisioning>{service_xml}'
        "</phoneServices>\n"
        "<certHash></certHash><encrConfig>false</encrConfig>\n"
        "</device>\n"
    )
    return text.encode()
