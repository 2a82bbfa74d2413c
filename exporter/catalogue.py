"""Phone model -> highest TLS version it can speak, from the bundled catalogue and the config.

The catalogue never guesses: a model that no entry matches is "unknown" and is never counted
among the phones at risk.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources

import yaml

from exporter.config import CatalogueEntry
from exporter.results import TlsVersion

__all__ = ["Capability", "Catalogue", "load_catalogue"]

_PREFIX = re.compile(r"^Cisco\s+", re.IGNORECASE)
_SUFFIX = re.compile(r"(G-GE|-EX|NR|G)+$")
# Load IDs are <prefix>.<major>-<minor>-<patch>...: sip78xx.12-8-1-0001-455, SCCP45.9-4-2SR3-1S.
_LOAD_VERSION = re.compile(r"(?:^|\.)(\d+)-(\d+)-\d+")


@dataclass(frozen=True, slots=True)
class Capability:
    """What the catalogue says about one (model, active load)."""

    family: str  # "unknown" when no entry matches
    max_tls: TlsVersion | None  # None: unknown, never guessed
    source: str

    @property
    def max_tls_label(self) -> str:
        return self.max_tls.value if self.max_tls else "unknown"


_UNKNOWN = Capability("unknown", None, "no catalogue entry matches this model")


@dataclass(frozen=True, slots=True)
class _Rule:
    entry: CatalogueEntry
    pattern: re.Pattern[str]


class Catalogue:
    """Ordered rules; the first whose pattern matches the normalised model wins."""

    def __init__(self, entries: Iterable[CatalogueEntry]) -> None:
        self._rules = tuple(_Rule(e, re.compile(e.match)) for e in entries)
        # Lookups repeat for every phone of a model: remember them.
        self.lookup = functools.lru_cache(maxsize=4096)(self._lookup)

    def _lookup(self, product_name: str, active_load: str = "") -> Capability:
        model = _SUFFIX.sub("", _PREFIX.sub("", product_name.strip()))
        rule = next((r for r in self._rules if r.pattern.search(model)), None)
        if rule is None:
            return _UNKNOWN
        entry = rule.entry
        if entry.firmware is None:
            return Capability(entry.family, entry.max_tls, entry.source)
        version = load_version(active_load)
        if version is None:
            return Capability(entry.family, None, f"{entry.source}; active load unreadable")
        if version < entry.firmware.min_load_tuple:
            source = f"{entry.source}; load {active_load} is older than {entry.firmware.min_load}"
            return Capability(entry.family, entry.firmware.below, source)
        return Capability(entry.family, entry.max_tls, entry.source)


def load_version(active_load: str) -> tuple[int, int] | None:
    """The (major, minor) firmware version in a load ID, e.g. SCCP45.9-4-2SR3-1S -> (9, 4)."""
    match = _LOAD_VERSION.search(active_load)
    return (int(match[1]), int(match[2])) if match else None


@functools.cache
def bundled_entries() -> tuple[CatalogueEntry, ...]:
    text = resources.files("exporter").joinpath("data/phone_models.yaml").read_text("utf-8")
    return tuple(CatalogueEntry.model_validate(e) for e in yaml.safe_load(text)["models"])


def load_catalogue(overrides: Sequence[CatalogueEntry] = ()) -> Catalogue:
    """The bundled catalogue, with the config's entries tried first."""
    return Catalogue((*overrides, *bundled_entries()))
