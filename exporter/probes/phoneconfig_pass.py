"""One pass over one TFTP node's phones: which files are due, fetched politely, as entries.

- a file is due when its phone appears, when its registration or firmware changes, when the
  cache list shows the file changed, and otherwise once per `refresh` (default a day); a slow
  full pass skips files the cache list shows unchanged, and asks with If-None-Match /
  If-Modified-Since when the server gave an ETag or Last-Modified;
- at most `concurrency` requests in flight, `max_fetches` files a run (the oldest first), each
  cut off at `max_file_bytes`; what the run's deadline leaves undone is done next run.

The HTTP itself is exporter/probes/tftp_http.py; what it keeps of a file, cnfxml.py.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType

import httpx

from exporter.config import NodeConfig, PhoneConfigProbeConfig
from exporter.probes.canonical import Canonical
from exporter.probes.cnfxml import ConfigFileError, parse_phone_config
from exporter.probes.phoneconfig_result import (
    Basis,
    ConfigReason,
    PhoneConfigEntry,
    PhoneConfigProbeResult,
    TftpOutcome,
)
from exporter.probes.tftp_http import ENCRYPTED, TftpClient
from exporter.timing import Deadline

__all__ = ["Pass", "shared_basis"]

_MARGIN = 0.5  # seconds of the deadline kept to assemble the result

# (node, status, load) repeats for every phone of a node and firmware: share one tuple.
_bases: Canonical[Basis] = Canonical()


def shared_basis(basis: Basis) -> Basis:
    return _bases.shared(basis)


class Pass:
    """One pass; `held` (phone -> entry) is the probe's state, updated in place."""

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
        self.fetched = self.not_modified = self.unchanged = 0
        self._have_list = False
        self._http: TftpClient | None = None

    async def execute(self, phones: Mapping[str, Basis]) -> None:
        async with TftpClient(
            self._node, self._settings, self._deadline, self._transport
        ) as client:
            self._http = client
            listing = await client.cache_list() if self._settings.use_cache_list else None
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

    async def _fetch(self, client: TftpClient, name: str, basis: Basis, row: int) -> None:
        held = self._held.get(name)
        headers = {}
        if held is not None and held.config is not None and held.basis == basis:
            if held.etag:
                headers["If-None-Match"] = held.etag
            elif held.last_modified:
                headers["If-Modified-Since"] = held.last_modified
        got = await client.get(f"{name}.cnf.xml", self._settings.max_file_bytes, headers)
        basis = shared_basis(basis)
        entry = PhoneConfigEntry(ConfigReason.OK, basis=basis, checked_at=self._now, listed=row)
        if got.status == 304 and held is not None and held.config is not None:
            self.not_modified += 1
            entry = replace(held, basis=basis, checked_at=self._now, listed=row)
        elif got.status == 200 and got.body is not None:
            self.fetched += 1
            try:
                entry = replace(entry, config=parse_phone_config(got.body))
                if not self._have_list:
                    # The cache list already says when a file changed; without one, keep what a
                    # conditional request needs (an ETag is ~70 bytes a phone at 100,000).
                    entry = replace(
                        entry, etag=got.etag, last_modified=sys.intern(got.last_modified)
                    )
            except ConfigFileError as error:
                reason = ConfigReason.UNSAFE if error.unsafe else ConfigReason.MALFORMED
                entry = replace(entry, reason=reason)
        elif got.status == 404:
            encrypted = await client.get(f"{name}{ENCRYPTED}", 0, method="HEAD")
            reason = ConfigReason.ENCRYPTED if encrypted.body is not None else ConfigReason.MISSING
            entry = replace(entry, reason=reason)
        else:
            entry = replace(entry, reason=got.failure or ConfigReason.HTTP_ERROR)
        self._held[name] = entry

    def result(self) -> PhoneConfigProbeResult:
        phones = MappingProxyType(dict(self._held))
        http = self._http
        requests = http.requests if http else 0
        failed = sum(
            1
            for e in phones.values()
            if e.reason.transient and e.reason is not ConfigReason.PENDING
        )
        if requests and http is not None and http.transport_failures == requests:
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
            requests=requests,
            bytes=http.bytes if http else 0,
            detail=http.detail if http else "",
        )


def _encrypted_row(listing: Mapping[str, int], name: str) -> int | None:
    """The cache-list row of the phone's encrypted file when that is the only one listed."""
    encrypted = listing.get(name + ENCRYPTED)
    return encrypted if encrypted is not None and listing.get(name) == encrypted else None
