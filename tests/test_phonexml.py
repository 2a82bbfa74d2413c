"""The CiscoIPPhone XML parser on fixed bodies: shapes from the TAC capture, and hostile ones."""

from __future__ import annotations

import pytest

from exporter.probes.phonexml import PhoneXmlError, parse_directory, parse_input, parse_menu

CAPTURED_INPUT = b"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<CiscoIPPhoneInput><Title>Directory Search</Title><Prompt>Enter search criteria</Prompt>
<SoftKeyItem><Name>Search</Name><Position>1</Position><URL>SoftKey:Submit</URL></SoftKeyItem>
<URL>http://10.106.111.100:8080/ccmcip/xmldirectorylist.jsp</URL>
<InputItem><DisplayName>First Name</DisplayName><QueryStringParam>f</QueryStringParam>
<InputFlags>A</InputFlags><DefaultValue></DefaultValue></InputItem>
<InputItem><DisplayName>Last Name</DisplayName><QueryStringParam>l</QueryStringParam>
<InputFlags>A</InputFlags><DefaultValue></DefaultValue></InputItem>
<InputItem><DisplayName>Number</DisplayName><QueryStringParam>n</QueryStringParam></InputItem>
</CiscoIPPhoneInput>"""


def test_the_captured_search_form() -> None:
    form = parse_input(CAPTURED_INPUT)
    assert form.url == "http://10.106.111.100:8080/ccmcip/xmldirectorylist.jsp"
    assert form.params == ("f", "l", "n")


def test_menu_items() -> None:
    menu = parse_menu(
        b"<CiscoIPPhoneMenu><MenuItem><Name>Corporate Directory</Name>"
        b"<URL>http://h:8080/ccmcip/xmldirectoryinput.jsp</URL></MenuItem></CiscoIPPhoneMenu>"
    )
    assert menu.url_to("xmldirectoryinput.jsp") == "http://h:8080/ccmcip/xmldirectoryinput.jsp"
    assert menu.url_to("ccmpd") is None


def test_a_directory_page_and_its_next_softkey() -> None:
    page = parse_directory(
        b"<CiscoIPPhoneDirectory><Prompt>Records 1 to 2 of 3</Prompt>"
        b"<DirectoryEntry><Name>A, B</Name><Telephone>1</Telephone></DirectoryEntry>"
        b"<DirectoryEntry><Name>C, D</Name><Telephone></Telephone></DirectoryEntry>"
        b"<SoftKeyItem><Name>Dial</Name><URL>SoftKey:Dial</URL></SoftKeyItem>"
        b"<SoftKeyItem><Name>Next</Name><URL>http://h:8080/x.jsp?l=a&amp;start=3</URL></SoftKeyItem>"
        b"</CiscoIPPhoneDirectory>"
    )
    assert (page.entries, page.prompt) == (2, "Records 1 to 2 of 3")
    assert page.next_url == "http://h:8080/x.jsp?l=a&start=3"


def test_the_last_page_has_no_next() -> None:
    page = parse_directory(
        b"<CiscoIPPhoneDirectory><Prompt>No records found</Prompt></CiscoIPPhoneDirectory>"
    )
    assert (page.entries, page.next_url) == (0, None)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b"<CiscoIPPhoneText><Text>Error</Text></CiscoIPPhoneText>",
            "expected CiscoIPPhoneMenu, got CiscoIPPhoneText",
        ),
        (b"<CiscoIPPhoneMenu><MenuItem>", "not well-formed XML"),
        (b"", "not well-formed XML"),
        (
            b'<!DOCTYPE x [<!ENTITY a "b">]><CiscoIPPhoneMenu>&a;</CiscoIPPhoneMenu>',
            "refused unsafe XML: DTDForbidden",
        ),
        (
            b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><CiscoIPPhoneMenu>&e;</CiscoIPPhoneMenu>',
            "refused unsafe XML",
        ),
        (b"<!DOCTYPE html><html></html>", "refused unsafe XML"),
    ],
)
def test_unexpected_bodies_are_refused(body: bytes, message: str) -> None:
    with pytest.raises(PhoneXmlError, match=message):
        parse_menu(body)


def test_a_search_form_without_a_url_is_refused() -> None:
    with pytest.raises(PhoneXmlError, match="no URL"):
        parse_input(b"<CiscoIPPhoneInput><Title>x</Title></CiscoIPPhoneInput>")
