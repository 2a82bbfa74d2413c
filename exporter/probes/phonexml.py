"""Parsing the CiscoIPPhone XML objects the directory pages return, safely.

The bodies come from the network: defusedxml refuses any DTD (so no entity expansion and no
external references), and callers cap the size before parsing. Everything unexpected raises
`PhoneXmlError`, which the probe reports as `bad_content`.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

__all__ = [
    "DirectoryPage",
    "InputForm",
    "Menu",
    "PhoneXmlError",
    "parse_directory",
    "parse_input",
    "parse_menu",
]


class PhoneXmlError(ValueError):
    """The body is not the CiscoIPPhone object the step expects."""


@dataclass(frozen=True, slots=True)
class Menu:
    items: tuple[tuple[str, str], ...]  # (name, URL)

    def url_to(self, path_fragment: str) -> str | None:
        return next((url for _, url in self.items if path_fragment in url), None)


@dataclass(frozen=True, slots=True)
class InputForm:
    url: str  # where the search is submitted
    params: tuple[str, ...]  # QueryStringParam names, e.g. ("f", "l", "n")


@dataclass(frozen=True, slots=True)
class DirectoryPage:
    entries: int
    next_url: str | None  # the `Next` softkey's URL; None on the last page
    prompt: str


def _root(body: bytes, expected: str) -> Element:
    try:
        root = SafeET.fromstring(body, forbid_dtd=True)
    except DefusedXmlException as error:
        raise PhoneXmlError(f"refused unsafe XML: {type(error).__name__}") from None
    except ParseError as error:
        raise PhoneXmlError(f"not well-formed XML: {error}") from None
    except (ValueError, LookupError) as error:
        # expat refuses multi-byte declarations (Shift_JIS, EUC-JP, GB2312, Big5, UTF-7,
        # UTF-32: ValueError) and unknown ones (LookupError): content the phone cannot read.
        raise PhoneXmlError(f"unusable XML encoding: {str(error)[:80]}") from None
    if root.tag != expected:
        raise PhoneXmlError(f"expected {expected}, got {root.tag[:64]}")
    return root


def _text(element: Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def parse_menu(body: bytes) -> Menu:
    root = _root(body, "CiscoIPPhoneMenu")
    return Menu(
        tuple((_text(item.find("Name")), _text(item.find("URL"))) for item in root.iter("MenuItem"))
    )


def parse_input(body: bytes) -> InputForm:
    root = _root(body, "CiscoIPPhoneInput")
    url = _text(root.find("URL"))
    if not url:
        raise PhoneXmlError("CiscoIPPhoneInput has no URL to submit to")
    params = tuple(_text(item.find("QueryStringParam")) for item in root.iter("InputItem"))
    return InputForm(url, tuple(p for p in params if p))


def parse_directory(body: bytes) -> DirectoryPage:
    root = _root(body, "CiscoIPPhoneDirectory")
    next_url = next(
        (
            _text(key.find("URL"))
            for key in root.iter("SoftKeyItem")
            if _text(key.find("Name")) == "Next" and _text(key.find("URL")).startswith("http")
        ),
        None,
    )
    return DirectoryPage(
        entries=len(root.findall("DirectoryEntry")),
        next_url=next_url,
        prompt=_text(root.find("Prompt")),
    )
