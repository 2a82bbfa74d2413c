"""Reading a phone's SEP<MAC>.cnf.xml safely, keeping only what the directory verdict needs.

The file comes from the network, unauthenticated (CUCM's TFTP service over HTTP 6970). It is
parsed as a SAX stream by defusedxml with DTDs refused (so no entity expansion and no external
references), after the caller has capped its size. Namespace processing stays off: real files
start `<device xsi:type="axl:XIPPhone" ...>` with the `xsi` prefix never declared, which a
namespace-aware parser rejects as an unbound prefix.

Element paths (a CUCM 12.5 phone configuration file; the lab's exporter/lab/phonefiles.py names
the public captures): devicePool/callManagerGroup/members/member[@priority]/callManager/
processNodeName, TVS/members/member[@priority]/address, loadInformation, directoryURL,
secureDirectoryURL, phoneServices/phoneService[@type]/url.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TypeVar
from xml.sax import SAXException
from xml.sax.handler import ContentHandler
from xml.sax.xmlreader import AttributesImpl

import defusedxml.sax
from defusedxml import DefusedXmlException

from exporter.probes.canonical import Canonical

__all__ = [
    "BUILTIN_DIRECTORY",
    "ConfigFileError",
    "PhoneConfig",
    "parse_phone_config",
]

T = TypeVar("T")

BUILTIN_DIRECTORY = "Application:Cisco/CorporateDirectory"  # the phone's own directory app
_DIRECTORIES_TYPE = "1"  # phoneService type="1": a Directories service (0 standard, 2 messages)
_MAX_MEMBERS = 16  # a CallManager group holds 3 nodes, a TVS list a few: more is hostile
_MAX_SERVICES = 64
_MAX_TEXT = 1024  # characters kept of one element's text

_CM_MEMBER = ("device", "devicePool", "callManagerGroup", "members", "member")
_CM_NAME = (*_CM_MEMBER, "callManager", "processNodeName")
_TVS_MEMBER = ("device", "TVS", "members", "member")
_TVS_ADDRESS = (*_TVS_MEMBER, "address")
_SERVICE = ("device", "phoneServices", "phoneService")
_SERVICE_URL = (*_SERVICE, "url")
_SCALARS = {
    ("device", "loadInformation"): "load",
    ("device", "directoryURL"): "directory_url",
    ("device", "secureDirectoryURL"): "secure_directory_url",
}


class ConfigFileError(ValueError):
    """The body is not a phone configuration file; `unsafe` when it tried DTD tricks."""

    def __init__(self, message: str, *, unsafe: bool = False) -> None:
        super().__init__(message)
        self.unsafe = unsafe


@dataclass(frozen=True, slots=True)
class PhoneConfig:
    """What one phone's configuration says about its corporate directory. Strings are
    interned, so 100,000 phones of a few clusters share them."""

    directory_url: str  # "" when unset
    secure_directory_url: str  # "" when unset: the phone falls back to directory_url
    directory_services: tuple[str, ...]  # URLs of its Directories services, in file order
    tvs: tuple[str, ...]  # TVS addresses, in priority order
    cm_group: tuple[str, ...]  # processNodeName of its CallManager group, in priority order
    load: str  # loadInformation: the configured firmware ("" when unset)


# Phones of one node and model mostly carry the same facts: one shared PhoneConfig for them
# all (bench/scale/phoneconfig.py measures it).
_canonical: Canonical[PhoneConfig] = Canonical()


def _is_directory_service(url: str) -> bool:
    return url == BUILTIN_DIRECTORY or "/ccmcip/xmldirectory" in url


class _Handler(ContentHandler):
    def __init__(self) -> None:
        super().__init__()
        self.path: list[str] = []
        self.text: list[str] = []
        self.text_length = 0
        self.scalars: dict[str, str] = {}
        self.cm: list[tuple[int, str]] = []
        self.tvs: list[tuple[int, str]] = []
        self.services: list[str] = []
        self._priority = 0
        self._service_type = ""
        self.root = ""

    def startElement(self, name: str, attrs: AttributesImpl) -> None:
        if not self.path:
            self.root = name
        self.path.append(name)
        self.text, self.text_length = [], 0
        here = tuple(self.path)
        if here in (_CM_MEMBER, _TVS_MEMBER):
            self._priority = _int(
                attrs.get("priority", ""), len(self.cm if here == _CM_MEMBER else self.tvs)
            )
        elif here == _SERVICE:
            self._service_type = attrs.get("type", "")

    def characters(self, content: str) -> None:
        if self.text_length < _MAX_TEXT:
            self.text.append(content)
            self.text_length += len(content)

    def endElement(self, name: str) -> None:
        here = tuple(self.path)
        text = "".join(self.text).strip()[:_MAX_TEXT]
        if here in _SCALARS:
            self.scalars[_SCALARS[here]] = text
        elif here == _CM_NAME and text:
            _bounded_append(self.cm, (self._priority, text), _MAX_MEMBERS, "CallManager group")
        elif here == _TVS_ADDRESS and text:
            _bounded_append(self.tvs, (self._priority, text), _MAX_MEMBERS, "TVS list")
        elif (
            here == _SERVICE_URL
            and self._service_type == _DIRECTORIES_TYPE
            and _is_directory_service(text)
        ):
            _bounded_append(self.services, text, _MAX_SERVICES, "phone services")
        self.path.pop()
        self.text, self.text_length = [], 0


def _bounded_append(items: list[T], item: T, limit: int, what: str) -> None:
    if len(items) >= limit:
        raise ConfigFileError(f"more than {limit} entries in its {what}")
    items.append(item)


def _int(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default


def _ordered(members: list[tuple[int, str]]) -> tuple[str, ...]:
    return tuple(sys.intern(name) for _, name in sorted(members, key=lambda m: m[0]))


def parse_phone_config(body: bytes) -> PhoneConfig:
    """The directory facts of one SEP<MAC>.cnf.xml; ConfigFileError if it is not one."""
    handler = _Handler()
    try:
        defusedxml.sax.parseString(body, handler, forbid_dtd=True)
    except DefusedXmlException as error:
        raise ConfigFileError(f"refused unsafe XML: {type(error).__name__}", unsafe=True) from None
    except SAXException as error:
        raise ConfigFileError(f"not well-formed XML: {str(error)[:160]}") from None
    if handler.root != "device":
        raise ConfigFileError(f"expected a <device> root, got <{handler.root[:64]}>")
    scalars = handler.scalars
    return _canonical.shared(
        PhoneConfig(
            directory_url=sys.intern(scalars.get("directory_url", "")),
            secure_directory_url=sys.intern(scalars.get("secure_directory_url", "")),
            directory_services=tuple(sys.intern(url) for url in handler.services),
            tvs=_ordered(handler.tvs),
            cm_group=_ordered(handler.cm),
            load=sys.intern(scalars.get("load", "")),
        )
    )
