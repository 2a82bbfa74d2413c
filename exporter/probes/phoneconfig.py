"""The phoneconfig probe: each registered phone's own configuration file, from a TFTP node.

CUCM's TFTP service serves every phone's SEP<MAC>.cnf.xml over HTTP on 6970, without
authentication, and ConfigFileCacheList.txt listing the files it holds with their length and
build time. This probe reads, for the phones the inventory probes report registered, only what
the directory verdict needs (exporter/probes/cnfxml.py), politely:

- a file is fetched when its phone appears, when its registration or firmware changes, when the
  cache list shows the file changed, and otherwise once per `refresh` (default a day); a slow
  full pass skips files the cache list shows unchanged, and asks with If-None-Match /
  If-Modified-Since when the server gave an ETag or Last-Modified;
- at most `concurrency` requests in flight to this node, `max_fetches` files a run, each cut off
  at `max_file_bytes`; what the run's deadline leaves undone is done next run;
- the phones of a cluster are split among its TFTP nodes by a stable hash of the name, so each
  file is read from one node only;
- state is one small frozen entry per phone the inventory still reports: it cannot grow.

A file that is missing, encrypted (only SEP<MAC>.cnf.xml.enc.sgn exists), malformed, unsafe
(a DTD), oversized, or could not be fetched is a reason, never a guess.
"""

from __future__ import annotations

import asyncio
import enum
import re
import sys
import time
import zlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Protocol

import httpx

from exporter import __version__
from exporter.config import ClusterConfig, NodeConfig, PhoneConfigProbeConfig
from exporter.probes.cnfxml import ConfigFileError, PhoneConfig, parse_phone_config
from exporter.results import PhoneRow, ProbeRun
from exporter.timing import Deadline

__all__ = [
    "ConfigReason",
    "PhoneConfigEntry",
    "PhoneConfigProbe",
    "PhoneConfigProbeResult",
    "TftpOutcome",
    "tftp_nodes",
]

_SEP = re.compile(r"^SEP[0-9A-F]{12}$")  # hardware phones; soft clients' CSF files differ
_LIST = "ConfigFileCacheList.txt"
_ENCRYPTED = ".cnf.xml.enc.sgn"
_MARGIN = 0.5  # seconds of the deadline kept to assemble the result


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


Inventory = Callable[[ProbeRun], Sequence[PhoneRow] | None]


class _Target(Protocol):
    """What a run reads of exporter.probes.spec.Target (which sits a layer above)."""

    @property
    def cluster(self) -> ClusterConfig: ...
    @property
    def node(self) -> NodeConfig: ...
    @property
    def settings(self) -> Any: ...
    @property
    def latest(self) -> Mapping[tuple[str, str, str], ProbeRun]: ...


def tftp_nodes(cluster: ClusterConfig, settings: PhoneConfigProbeConfig) -> list[str]:
    """The cluster's TFTP nodes, in config order."""
    names = [node.name for node in cluster.nodes]
    return [n for n in names if n in settings.tftp_nodes] if settings.tftp_nodes else names


def node_aliases(cluster: ClusterConfig) -> dict[str, str]:
    """Each name a node goes by (lower-cased) -> its configured name."""
    aliases: dict[str, str] = {}
    for node in cluster.nodes:
        for alias in (node.name, node.host, node.connect_address, node.server_name):
            aliases.setdefault(alias.lower(), node.name)
    return aliases


def assigned(name: str, nodes: Sequence[str]) -> str:
    """Which TFTP node a phone's file is read from: stable across runs and processes."""
    return nodes[zlib.crc32(name.encode()) % len(nodes)]


def registered_phones(
    cluster: str, latest: Mapping[tuple[str, str, str], ProbeRun], inventory: Inventory
) -> dict[str, Basis] | None:
    """Registered SEP phones of a cluster -> (node, status, load); None without inventory."""
    phones: dict[str, Basis] = {}
    seen = False
    for (at, node, _), run in sorted(latest.items()):
        if at != cluster or (rows := inventory(run)) is None:
            continue
        seen = True
        for row in rows:
            if row.status == "registered" and _SEP.match(row.name):
                phones[row.name] = (node, row.status, row.active_load)
    return phones if seen else None


class PhoneConfigProbe:
    """Holds each phone's last entry per (cluster, TFTP node) between runs."""

    def __init__(
        self,
        inventory: Inventory,
        *,
        now: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._inventory = inventory
        self._now = now
        self._transport = transport
        self._held: dict[tuple[str, str], dict[str, PhoneConfigEntry]] = {}

    def retain(self, nodes: Collection[tuple[str, str]]) -> None:
        for key in [k for k in self._held if k not in nodes]:
            del self._held[key]

    async def aclose(self) -> None:
        return None

    async def run(self, target: _Target, deadline: Deadline) -> PhoneConfigProbeResult:
        settings: PhoneConfigProbeConfig = target.settings
        cluster, node = target.cluster, target.node
        nodes = tftp_nodes(cluster, settings)
        if node.name not in nodes:
            return PhoneConfigProbeResult(TftpOutcome.NOT_TFTP)
        phones = registered_phones(cluster.name, target.latest, self._inventory)
        if phones is None:
            return PhoneConfigProbeResult(TftpOutcome.NO_INVENTORY, detail="no phone rows yet")
        mine = {name: basis for name, basis in phones.items() if assigned(name, nodes) == node.name}
        held = self._held.setdefault((cluster.name, node.name), {})
        for gone in [name for name in held if name not in mine]:
            del held[gone]  # bounded: only phones the inventory still reports
        run = _Run(node, settings, deadline, held, self._now(), self._transport)
        await run.execute(mine)
        return replace(run.result(), aliases=node_aliases(cluster))


class _Run:
    """One pass over one TFTP node's phones."""

    def __init__(
        self,
        node: NodeConfig,
        settings: PhoneConfigProbeConfig,
        deadline: Deadline,
        held: dict[str, PhoneConfigEntry],
        now: float,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        self._node, self._settings, self._deadline = node, settings, deadline
        self._held, self._now, self._transport = held, now, transport
        host = node.connect_address
        self._base = (
            f"http://{f'[{host}]' if ':' in host else host}:{node.connect_port(settings.port)}"
        )
        self.fetched = self.not_modified = self.unchanged = self.requests = self.bytes = 0
        self.transport_failures = 0
        self.detail = ""
        self._have_list = False

    async def execute(self, phones: Mapping[str, Basis]) -> None:
        async with httpx.AsyncClient(
            transport=self._transport,
            timeout=httpx.Timeout(self._settings.request_timeout),
            limits=httpx.Limits(max_connections=self._settings.concurrency),
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": f"cucm-directory-exporter/{__version__}"},
        ) as client:
            listing = await self._cache_list(client) if self._settings.use_cache_list else None
            self._have_list = listing is not None
            due: list[tuple[str, Basis, int]] = []
            for name, basis in phones.items():
                row = listing.get(name, 0) if listing is not None else 0
                entry = self._held.get(name)
                if entry is None:
                    self._held[name] = PhoneConfigEntry(ConfigReason.PENDING, basis=basis)
                if listing is not None and row == _encrypted_row(listing, name):
                    # The cache list holds only the encrypted file: no need to ask for it.
                    self._held[name] = PhoneConfigEntry(
                        ConfigReason.ENCRYPTED, basis=basis, checked_at=self._now, listed=row
                    )
                    continue
                if entry is None or self._is_due(name, entry, basis, row, listing is not None):
                    due.append((name, basis, row))
            due.sort(key=lambda item: self._held[item[0]].checked_at)  # the oldest first
            semaphore = asyncio.Semaphore(self._settings.concurrency)

            async def one(name: str, basis: Basis, row: int) -> None:
                async with semaphore:
                    if self._deadline.remaining() > _MARGIN:
                        await self._fetch(client, name, basis, row)

            await asyncio.gather(*(one(*item) for item in due[: self._settings.max_fetches]))

    def _is_due(
        self, name: str, entry: PhoneConfigEntry, basis: Basis, row: int, listed: bool
    ) -> bool:
        if entry.reason.transient or entry.basis != basis:
            return True
        if listed and row != entry.listed:
            return True  # the cache list shows the file changed (or appeared, or went)
        if self._now - entry.checked_at < self._settings.refresh:
            return False
        if listed and row != 0:
            # The full pass is due, but the cache list vouches the file did not change.
            self._held[name] = replace(entry, checked_at=self._now)
            self.unchanged += 1
            return False
        return True

    async def _cache_list(self, client: httpx.AsyncClient) -> dict[str, int] | None:
        """File name stem -> crc32 of its row (the encrypted file under its own key)."""
        body, status, _ = await self._get(client, _LIST, self._settings.max_list_bytes)
        if status != 200 or body is None:
            return None
        rows: dict[str, int] = {}
        for line in body.decode("utf-8", "replace").splitlines()[1:]:
            parts = line.split()
            if not parts:
                continue
            name = parts[0]
            signature = zlib.crc32(line.strip().encode()) or 1
            if name.endswith(_ENCRYPTED):
                rows[name.removesuffix(_ENCRYPTED) + _ENCRYPTED] = signature
                rows.setdefault(name.removesuffix(_ENCRYPTED), signature)
            elif name.endswith(".cnf.xml"):
                rows[name.removesuffix(".cnf.xml")] = signature
        return rows

    async def _fetch(self, client: httpx.AsyncClient, name: str, basis: Basis, row: int) -> None:
        held = self._held.get(name)
        headers = {}
        if held is not None and held.config is not None and held.basis == basis:
            if held.etag:
                headers["If-None-Match"] = held.etag
            elif held.last_modified:
                headers["If-Modified-Since"] = held.last_modified
        body, status, validators = await self._get(
            client, f"{name}.cnf.xml", self._settings.max_file_bytes, headers
        )
        basis = shared_basis(basis)
        entry = PhoneConfigEntry(ConfigReason.OK, basis=basis, checked_at=self._now, listed=row)
        if status == 304 and held is not None and held.config is not None:
            self.not_modified += 1
            entry = replace(held, basis=basis, checked_at=self._now, listed=row)
        elif status == 200 and body is not None:
            self.fetched += 1
            try:
                config = parse_phone_config(body)
                entry = replace(entry, config=config)
                if not self._have_list:
                    # The cache list already says when a file changed; without one, keep what a
                    # conditional request needs (an ETag is ~70 bytes a phone at 100,000).
                    etag, modified = validators
                    entry = replace(entry, etag=etag, last_modified=sys.intern(modified))
            except ConfigFileError as error:
                reason = ConfigReason.UNSAFE if error.unsafe else ConfigReason.MALFORMED
                entry = replace(entry, reason=reason)
        elif status == 404:
            encrypted, _, _ = await self._get(client, f"{name}{_ENCRYPTED}", 0, method="HEAD")
            reason = ConfigReason.ENCRYPTED if encrypted is not None else ConfigReason.MISSING
            entry = replace(entry, reason=reason)
        else:
            entry = replace(entry, reason=_status_reason(status))
        self._held[name] = entry

    async def _get(
        self,
        client: httpx.AsyncClient,
        path: str,
        limit: int,
        headers: Mapping[str, str] | None = None,
        method: str = "GET",
    ) -> tuple[bytes | None, int, tuple[str, str]]:
        """(body, status, validators); status < 0 stands for a ConfigReason (see below)."""
        budget = self._deadline.budget(self._settings.request_timeout)
        self.requests += 1
        try:
            async with (
                asyncio.timeout(budget),
                client.stream(method, f"{self._base}/{path}", headers=headers) as response,
            ):
                validators = (
                    response.headers.get("ETag", "")[:128],
                    response.headers.get("Last-Modified", "")[:64],
                )
                if response.status_code != 200 or method == "HEAD":
                    ok = response.status_code == 200
                    return (b"" if ok else None), response.status_code, validators
                body = bytearray()
                async for chunk in response.aiter_raw():
                    body += chunk
                    self.bytes += len(chunk)
                    if len(body) > limit:
                        return None, _OVERSIZED, validators
                return bytes(body), 200, validators
        except (TimeoutError, httpx.TimeoutException):
            return None, _TIMEOUT, ("", "")
        except httpx.HTTPError as error:
            self.transport_failures += 1
            self.detail = f"{type(error).__name__} from {self._base}"
            return None, _UNREACHABLE, ("", "")

    def result(self) -> PhoneConfigProbeResult:
        phones = MappingProxyType(dict(self._held))
        failed = sum(
            1
            for e in phones.values()
            if e.reason.transient and e.reason is not ConfigReason.PENDING
        )
        if self.requests and self.transport_failures == self.requests:
            outcome = TftpOutcome.UNREACHABLE
        elif failed:
            outcome = TftpOutcome.PARTIAL
        else:
            outcome = TftpOutcome.OK
        return PhoneConfigProbeResult(
            outcome,
            phones,
            fetched=self.fetched,
            not_modified=self.not_modified,
            unchanged_in_list=self.unchanged,
            requests=self.requests,
            bytes=self.bytes,
            detail=self.detail,
        )


_OVERSIZED, _TIMEOUT, _UNREACHABLE = -1, -2, -3
# (node, status, load) repeats for every phone of a node and firmware: share one tuple.
_BASIS_LIMIT = 65536
_bases: dict[Basis, Basis] = {}


def shared_basis(basis: Basis) -> Basis:
    held = _bases.get(basis)
    if held is not None:
        return held
    if len(_bases) < _BASIS_LIMIT:
        _bases[basis] = basis
    return basis


def _status_reason(status: int) -> ConfigReason:
    return {
        _OVERSIZED: ConfigReason.OVERSIZED,
        _TIMEOUT: ConfigReason.TIMEOUT,
        _UNREACHABLE: ConfigReason.UNREACHABLE,
    }.get(status, ConfigReason.HTTP_ERROR)


def _encrypted_row(listing: Mapping[str, int], name: str) -> int | None:
    """The cache-list row of the phone's encrypted file when that is the only one listed."""
    encrypted = listing.get(name + _ENCRYPTED)
    return encrypted if encrypted is not None and listing.get(name) == encrypted else None


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
