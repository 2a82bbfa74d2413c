"""What the phoneconfig probe found: each phone's entry, the run's outcome and cost, as text.

Frozen values between the probe (exporter/probes/phoneconfig.py) and what reads it: the
per-phone verdict (exporter/perphone.py), the metrics, `check` and /probe's debug output.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from exporter.probes.cnfxml import PhoneConfig

__all__ = [
    "Basis",
    "ConfigReason",
    "PhoneConfigEntry",
    "PhoneConfigProbeResult",
    "TftpOutcome",
    "describe_phoneconfig",
    "summarize_phoneconfig",
]


class ConfigReason(enum.StrEnum):
    """Why a phone's configuration is, or is not, known. Bounded: these are label values."""

    OK = "ok"
    MISSING = "missing"  # no SEP<MAC>.cnf.xml (404)
    ENCRYPTED = "encrypted"  # only SEP<MAC>.cnf.xml.enc.sgn: TFTP encryption is on
    MALFORMED = "malformed"  # not a well-formed <device> file
    UNSAFE = "unsafe"  # it carried a DTD (entity tricks): refused unread
    OVERSIZED = "oversized"  # larger than max_file_bytes
    TIMEOUT = "timeout"  # no complete answer in time (a stall or a trickle)
    UNREACHABLE = "unreachable"  # the TFTP node refused, reset or does not resolve
    HTTP_ERROR = "http_error"  # any other HTTP status
    PENDING = "pending"  # not fetched yet (the run's budget ran out first)

    @property
    def transient(self) -> bool:
        """Worth asking again next run, rather than at the next change or full pass."""
        return self in _TRANSIENT


_TRANSIENT = frozenset(
    {ConfigReason.TIMEOUT, ConfigReason.UNREACHABLE, ConfigReason.HTTP_ERROR, ConfigReason.PENDING}
)

Basis = tuple[str, str, str]  # (node, status, active load) the inventory showed


@dataclass(frozen=True, slots=True)
class PhoneConfigEntry:
    """One phone's configuration as last read, or why it is not known."""

    reason: ConfigReason
    config: PhoneConfig | None = None
    basis: Basis = ("", "", "")
    checked_at: float = 0.0  # unix seconds of the last fetch (or of a pass that skipped it)
    etag: str = ""  # the ETag the server sent ("" when none): for If-None-Match
    last_modified: str = ""  # its Last-Modified ("" when none): for If-Modified-Since
    listed: int = 0  # crc32 of its ConfigFileCacheList.txt row (0: not listed / not read)


class TftpOutcome(enum.StrEnum):
    OK = "ok"
    NOT_TFTP = "not_tftp"  # this node does not run the TFTP service (tftp_nodes)
    NO_INVENTORY = "no_inventory"  # no inventory probe has reported phones yet
    UNREACHABLE = "unreachable"  # no file could be fetched at all
    PARTIAL = "partial"  # some files could not be fetched (see each phone's reason)


@dataclass(frozen=True, slots=True)
class PhoneConfigProbeResult:
    """One run against one TFTP node: every phone it answers for, and what the run cost."""

    outcome: TftpOutcome
    phones: Mapping[str, PhoneConfigEntry] = field(default_factory=dict)
    fetched: int = 0  # files transferred whole
    not_modified: int = 0  # answered 304 to a conditional request
    unchanged_in_list: int = 0  # full-pass files skipped because the cache list showed no change
    requests: int = 0
    bytes: int = 0
    detail: str = ""
    # Every name the cluster's nodes go by (name, host, address, SNI name) -> the node's
    # configured name: how a TVS address or a directory URL in a file names a node.
    aliases: Mapping[str, str] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return self.outcome in (TftpOutcome.OK, TftpOutcome.NOT_TFTP)

    @property
    def reason(self) -> str:
        return self.outcome.value

    def counts(self) -> dict[ConfigReason, int]:
        counts = dict.fromkeys(ConfigReason, 0)
        for entry in self.phones.values():
            counts[entry.reason] += 1
        return counts


# --- as text: /probe's debug output, check, the landing page -------------------------------


def summarize_phoneconfig(result: PhoneConfigProbeResult) -> str:
    counts = {reason: n for reason, n in result.counts().items() if n}
    text = result.outcome.value
    if counts:
        text += ", " + ", ".join(f"{n} {reason.value}" for reason, n in counts.items())
    return text


def describe_phoneconfig(result: PhoneConfigProbeResult) -> list[str]:
    text = (
        f"phoneconfig: {summarize_phoneconfig(result)}; this run fetched {result.fetched}, "
        f"{result.not_modified} not modified, {result.unchanged_in_list} unchanged in the cache "
        f"list, {result.requests} requests, {result.bytes} bytes"
    )
    return [text + (f": {result.detail}" if result.detail else "")]
