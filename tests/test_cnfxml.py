"""The phone configuration parser on hostile and odd input: every refusal is a ConfigFileError
with the right kind, never an exception of another type, and what it keeps stays bounded."""

from __future__ import annotations

import pytest

from exporter.probes.cnfxml import ConfigFileError, parse_phone_config

HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<device xsi:type="axl:XIPPhone" ctiid="1">'


def test_members_are_ordered_by_priority_and_the_prefix_is_tolerated() -> None:
    body = (
        HEAD
        + '<TVS><members><member priority="2"><address>c</address></member>'
        + '<member priority="0"><address>a</address></member>'
        + '<member priority="x"><address>b</address></member></members></TVS>'
        + "<secureDirectoryURL></secureDirectoryURL></device>"
    ).encode()
    config = parse_phone_config(body)
    # An unreadable priority counts as its position: b is the third member read.
    assert config.tvs == ("a", "c", "b")
    assert config.secure_directory_url == ""
    assert config.cm_group == ()


@pytest.mark.parametrize(
    ("body", "unsafe"),
    [
        (b'<!DOCTYPE device [<!ENTITY x "y">]><device>&x;</device>', True),
        (b'<!DOCTYPE device SYSTEM "file:///etc/passwd"><device/>', True),
        (b"<device><TVS>", False),
        (b"", False),
        (b"\xff\xfe<\x00d\x00", False),
        (b"<phone/>", False),
        (
            b"<device>"
            + b"<TVS><members>"
            + b"<member><address>a</address></member>" * 17
            + b"</members></TVS></device>",
            False,
        ),
    ],
    ids=["entity", "external-dtd", "truncated", "empty", "garbage", "wrong-root", "member-flood"],
)
def test_refusals(body: bytes, unsafe: bool) -> None:
    with pytest.raises(ConfigFileError) as refused:
        parse_phone_config(body)
    assert refused.value.unsafe is unsafe


def test_a_huge_text_is_cut_not_kept() -> None:
    body = (HEAD + "<loadInformation>" + "x" * 200_000 + "</loadInformation></device>").encode()
    assert len(parse_phone_config(body).load) == 1024


def test_identical_facts_share_one_object() -> None:
    body = (HEAD + "<loadInformation>SIP42.9-4-2SR3-1S</loadInformation></device>").encode()
    assert parse_phone_config(body) is parse_phone_config(body)
