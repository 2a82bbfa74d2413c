"""Phone model -> how it reaches the corporate directory and the highest TLS version it speaks.

Every rule in the bundled catalogue (data/phone_models.yaml) names its source and how sure it
is. The catalogue never guesses: a model no rule matches, or a firmware rule whose load cannot
be read, is unknown (with the reason), and `Capability.cut_off` says "cannot be judged" rather
than "fine". Where a rule does hold a value no source states, it is flagged as an assumption.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources

import yaml

from exporter.config import CatalogueEntry, FirmwareRule
from exporter.results import TlsVersion

__all__ = [
    "REASON_UNKNOWN_DIRECTORY",
    "REASON_UNKNOWN_MODEL",
    "REASON_UNREADABLE_LOAD",
    "Capability",
    "Catalogue",
    "DirectoryUse",
    "bundled_entries",
    "load_catalogue",
    "load_version",
]

# Why a capability cannot be judged (Capability.reason).
REASON_UNKNOWN_MODEL = "unknown_model"  # no rule matches the model
REASON_UNREADABLE_LOAD = "unreadable_load"  # a firmware rule applies, the load cannot be read
REASON_UNKNOWN_DIRECTORY = "unknown_directory"  # whether it uses the TVS/HTTPS path is unknown

_PREFIX = re.compile(r"^Cisco\s+", re.IGNORECASE)
_SUFFIX = re.compile(r"(G-GE|-EX|NR|G)+$")
# Cisco load names are <image>.<version>, the version's parts joined by "-", the last part
# read up to its first letter: sip78xx.14-2-1-0001-14, sip88xx.11-0-1MN-13, SCCP45.9-4-2SR3-1S,
# sip8821.11-0-2SR1-3, PHONEOS-8875.2-3-1-0001-26. At least two parts, so that a model number
# after a dot is never read as a version.
_LOAD_VERSION = re.compile(r"\.(\d+(?:-\d+)+)")
_VERSION_PART = re.compile(r"[-._]")


class DirectoryUse(StrEnum):
    """How a device reaches its corporate directory, which decides whether TLS can cut it off.

    A StrEnum (str and Enum): members compare equal to their values, and str() is the value.
    """

    TVS_HTTPS = "tvs_https"  # ccmcip over HTTPS after a TVS handshake: can be cut off
    NONE = "none"  # no corporate directory (no display): never at risk
    OTHER = "other"  # a directory outside TVS/ccmcip (soft clients: UDS, LDAP): never at risk
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Capability:
    """What the catalogue says about one (model, active load)."""

    family: str  # "unknown" when no entry matches
    max_tls: TlsVersion | None  # None: unknown, never guessed
    source: str
    directory: DirectoryUse = DirectoryUse.TVS_HTTPS
    confidence: str = "configured"  # documented / inferred / assumed / configured / none
    assumption: bool = False  # max_tls is a conservative assumption, not a sourced fact
    reason: str = ""  # why max_tls or directory is unknown; "" when both are known

    @property
    def max_tls_label(self) -> str:
        return self.max_tls.value if self.max_tls else "unknown"

    def cut_off(self, required: TlsVersion) -> bool | None:
        """True if this device loses its directory when the node requires `required`, False if
        it does not (devices with no directory or another one never do), None if that cannot be
        judged. An assumed max_tls still answers; `assumption` says to present it as such."""
        if self.directory in (DirectoryUse.NONE, DirectoryUse.OTHER):
            return False
        if self.directory is DirectoryUse.UNKNOWN or self.max_tls is None:
            return None
        return self.max_tls.number < required.number


_UNKNOWN = Capability(
    "unknown",
    None,
    "no catalogue entry matches this model",
    directory=DirectoryUse.UNKNOWN,
    confidence="none",
    reason=REASON_UNKNOWN_MODEL,
)


@dataclass(frozen=True, slots=True)
class _Rule:
    entry: CatalogueEntry
    pattern: re.Pattern[str]
    load_pattern: re.Pattern[str] | None


def _rule(entry: CatalogueEntry) -> _Rule:
    firmware = entry.firmware
    load_match = firmware.load_match if firmware else None
    return _Rule(entry, re.compile(entry.match), re.compile(load_match) if load_match else None)


class Catalogue:
    """Ordered rules; the first whose pattern matches the normalised model wins."""

    def __init__(self, entries: Iterable[CatalogueEntry]) -> None:
        self._rules = tuple(_rule(e) for e in entries)
        # Lookups repeat for every phone of a model: remember them.
        self.lookup = functools.lru_cache(maxsize=4096)(self._lookup)

    def _lookup(self, product_name: str, active_load: str = "") -> Capability:
        model = _SUFFIX.sub("", _PREFIX.sub("", product_name.strip()))
        rule = next((r for r in self._rules if r.pattern.search(model)), None)
        if rule is None:
            return _UNKNOWN
        entry = rule.entry
        directory = DirectoryUse(entry.directory)
        known = Capability(
            entry.family,
            entry.max_tls,
            entry.source,
            directory=directory,
            confidence=entry.confidence,
            assumption=entry.confidence == "assumed",
            reason=REASON_UNKNOWN_DIRECTORY if directory is DirectoryUse.UNKNOWN else "",
        )
        if entry.firmware is None:
            return known
        version = _read_load(active_load, rule.load_pattern)
        older = None if version is None else _older(version, entry.firmware)
        if older is None:
            return Capability(
                entry.family,
                None,
                f"{entry.source}; active load {active_load!r} unreadable",
                directory=directory,
                confidence=entry.confidence,
                reason=REASON_UNREADABLE_LOAD,
            )
        if older:
            # The source names the load from which the family reaches max_tls and says nothing
            # about older loads: `below` is an assumption, and is labelled as one.
            return Capability(
                entry.family,
                entry.firmware.below,
                f"{entry.source}; load {active_load} is older than {entry.firmware.min_load}, "
                f"assumed TLS {entry.firmware.below.value} at most",
                directory=directory,
                confidence="assumed",
                assumption=True,
                reason=known.reason,
            )
        return known


def _older(version: tuple[int, ...], firmware: FirmwareRule) -> bool | None:
    """Compare as many parts as the rule states: 11.0(2) is (11, 0, 2), so 11.0(1) is older and
    11.0(2)SR1 is not. None when the load has fewer parts than needed to decide (11-0 against
    11.0(2)): the missing part is never guessed."""
    wanted = firmware.min_load_tuple
    for have, need in zip(version, wanted, strict=False):
        if have != need:
            return have < need
    return False if len(version) >= len(wanted) else None


def _read_load(active_load: str, pattern: re.Pattern[str] | None) -> tuple[int, ...] | None:
    if pattern is None:
        return load_version(active_load)
    match = pattern.search(active_load)
    if match is None or not match["version"]:
        return None
    parts = [p for p in _VERSION_PART.split(match["version"]) if p]
    if len(parts) < 2 or not all(p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)


def load_version(active_load: str) -> tuple[int, ...] | None:
    """Every numeric part of a Cisco load's version, in order:
    sip88xx.11-0-1MN-13 -> (11, 0, 1); SCCP45.9-4-2SR3-1S -> (9, 4, 2);
    sip78xx.14-2-1-0001-14 -> (14, 2, 1, 1, 14). None if the load has no such version."""
    match = _LOAD_VERSION.search(active_load)
    return tuple(int(part) for part in match[1].split("-")) if match else None


@functools.cache
def bundled_entries() -> tuple[CatalogueEntry, ...]:
    text = resources.files("exporter").joinpath("data/phone_models.yaml").read_text("utf-8")
    return tuple(CatalogueEntry.model_validate(e) for e in yaml.safe_load(text)["models"])


def load_catalogue(overrides: Sequence[CatalogueEntry] = ()) -> Catalogue:
    """The bundled catalogue, with the config's entries tried first."""
    return Catalogue((*overrides, *bundled_entries()))
