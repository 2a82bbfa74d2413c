"""Property-based fuzzing: no input makes the parsers raise anything but their own error, and
no phone table loses or changes a row."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.config import ConfigError, parse_config
from exporter.probes.phonexml import PhoneXmlError, parse_directory, parse_input, parse_menu
from exporter.results import PHONE_STATUSES, PhoneRow, PhoneTable

PARSERS = (parse_menu, parse_input, parse_directory)


def _problems(text: str) -> tuple[str, ...] | None:
    """None if the config loads; its problems if it does not. Anything else propagates."""
    try:
        parse_config(text, base_dir=Path("/nonexistent"))
    except ConfigError as error:
        return error.problems
    return None


# Fragments of the real pages and of hostile ones, so generated bodies get deep into the parser.
XML_PARTS = st.sampled_from(
    [
        "<CiscoIPPhoneMenu>", "</CiscoIPPhoneMenu>", "<CiscoIPPhoneInput>", "</CiscoIPPhoneInput>",
        "<CiscoIPPhoneDirectory>", "</CiscoIPPhoneDirectory>", "<MenuItem>", "</MenuItem>",
        "<DirectoryEntry>", "</DirectoryEntry>", "<SoftKeyItem>", "</SoftKeyItem>",
        "<Name>Next</Name>",
        "<URL>http://h:8080/x?start=33</URL>", "<URL>", "</URL>", "<InputItem>", "</InputItem>",
        "<QueryStringParam>l</QueryStringParam>", "<Prompt>Records 1 to 32 of 50</Prompt>",
        '<?xml version="1.0"?>', '<!DOCTYPE x [<!ENTITY a "b">]>', "&a;", "&amp;", "<![CDATA[x]]>",
        '<!ENTITY e SYSTEM "file:///etc/passwd">', "\x00", "\xff", "<", ">", "&", '"', "é",
    ]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(XML_PARTS | st.text(max_size=20), max_size=30))
def test_phone_xml_parsers_raise_only_their_own_error(parts: list[str]) -> None:
    body = "".join(parts).encode("utf-8", errors="surrogatepass")
    for parse in PARSERS:
        with contextlib.suppress(PhoneXmlError):
            parse(body)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_phone_xml_parsers_survive_arbitrary_bytes(body: bytes) -> None:
    for parse in PARSERS:
        with contextlib.suppress(PhoneXmlError):
            parse(body)


YAML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
KEYS = st.sampled_from(
    ["clusters", "probes", "scheduler", "catalogue", "tls", "directory", "snmp", "nodes", "name",
     "host", "address", "port_map", "interval", "timeout", "jitter", "versions", "ports", "query",
     "community", "community_file", "version", "username", "auth_password_file", "match"]
)  # fmt: skip
CONFIGS = st.recursive(
    YAML_VALUES,
    lambda inner: st.dictionaries(KEYS, inner, max_size=5) | st.lists(inner, max_size=3),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CONFIGS)
def test_the_config_loader_raises_only_config_error(data: object) -> None:
    try:
        text = yaml.safe_dump(data)
    except yaml.YAMLError:
        return
    problems = _problems(text)
    assert problems is None or all(isinstance(p, str) and p for p in problems)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_the_config_loader_survives_arbitrary_text(text: str) -> None:
    assert _problems(text) != ()  # never an empty complaint


VALID: dict[str, object] = {
    "scheduler": {"max_concurrent_probes": 4},
    "probes": {
        "tls": {"interval": "60s", "timeout": "20s", "versions": ["1.0", "1.2"],
                "ports": [{"port": 8443, "service": "tomcat"}]},
        "directory": {"query": {"l": "a"}, "max_pages": 2, "legacy_max_version": "1.0"},
        "snmp": {"interval": "300s", "max_repetitions": 5},
    },
    "catalogue": [{"family": "x", "match": "^X$", "max_tls": "1.2",
                   "firmware": {"min_load": "12.0", "below": "1.0"}}],
    "clusters": [
        {"name": "c", "snmp": {"version": "2c", "community": "public"},
         "nodes": [{"name": "n", "host": "cucm.example.com", "port_map": {8443: 1443}}]}
    ],
}  # fmt: skip


def _leaf_paths(node: object, path: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    if isinstance(node, dict):
        return [path] + [p for k, v in node.items() for p in _leaf_paths(v, (*path, k))]
    if isinstance(node, list):
        return [path] + [p for i, v in enumerate(node) for p in _leaf_paths(v, (*path, i))]
    return [path]


PATHS = _leaf_paths(VALID)


def _replace(node: object, path: tuple[object, ...], value: object) -> object:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(node, dict):
        return {k: (_replace(v, rest, value) if k == head else v) for k, v in node.items()}
    assert isinstance(node, list)
    return [(_replace(v, rest, value) if i == head else v) for i, v in enumerate(node)]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(PATHS), YAML_VALUES)
def test_one_wrong_value_anywhere_is_a_config_error(
    path: tuple[object, ...], value: object
) -> None:
    """Start from a valid config and break one value: deep in every validator."""
    try:
        text = yaml.safe_dump(_replace(VALID, path, value))
    except yaml.YAMLError:
        return
    assert _problems(text) != ()


def test_the_mutation_base_is_valid() -> None:
    parse_config(yaml.safe_dump(VALID), base_dir=Path("/nonexistent"))


PHONE_ROWS = st.lists(
    st.builds(
        PhoneRow,
        name=st.text(max_size=20),  # hostile agents too: empty, non-ASCII, separators
        status=st.sampled_from(sorted(PHONE_STATUSES.values())),
        product=st.sampled_from(["Cisco 7962", "Cisco 8851", "", "Cisco Jabber"]),
        active_load=st.text(max_size=8),
    ),
    max_size=50,
)


@settings(max_examples=300, deadline=None)
@given(PHONE_ROWS)
def test_a_phone_table_gives_back_every_row_as_it_came(rows: list[PhoneRow]) -> None:
    table = PhoneTable.of(rows)
    assert list(table) == rows
    assert len(table) == len(rows)
    assert [table[i] for i in range(-len(rows), len(rows))] == rows + rows
    assert table[1:-1] == rows[1:-1]
    assert table == PhoneTable.of(rows)
    with pytest.raises(IndexError):
        table[len(rows)]
