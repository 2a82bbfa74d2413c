"""RisPort70 as a phone inventory source: `selectCmDeviceExt`, paged, within the cluster's budget.

One node per cluster is asked (`risport.node`, default the first); its answer covers every node,
each device once, on the node it last registered to. Pages of up to 1000 devices follow each
other through the StateInfo CUCM returns. Each request first takes a slot from the cluster's
budget (`requests_per_minute`, shared by every runner in the process); a walk that needs more
slots than a run's deadline allows continues on the next run, and the last complete inventory
stands meanwhile. The rate-limit fault stops the walk and blocks the budget for `backoff`.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources

import yaml

from exporter.config import RisportProbeConfig
from exporter.probes.risport_budget import BUDGETS, BudgetBook
from exporter.probes.risport_result import RisportOutcome, RisportProbeResult
from exporter.probes.risport_soap import (
    PATH,
    PageDevice,
    RisportError,
    RisportSession,
    SelectionPage,
)
from exporter.probes.targetview import RunTarget
from exporter.results import PhoneRow, PhoneTable
from exporter.timing import Deadline

__all__ = ["RisportProbe", "bundled_models", "describe_risport", "summarize_risport"]

# RisPort's CmDevRegStat values -> the statuses SNMP's rows use (results.PHONE_STATUSES).
STATUSES = {
    "registered": "registered",
    "unregistered": "unregistered",
    "rejected": "rejected",
    "partiallyregistered": "partiallyregistered",
    "unknown": "unknown",
}
ANSWERED = ("Ok", "NotFound")  # a node's ReturnCode when RisPort could read it
_MIN_REQUEST_SECONDS = 0.5  # below this much of the deadline, no request is started

Sleep = Callable[[float], Awaitable[None]]


@functools.cache
def bundled_models() -> Mapping[int, str]:
    """RisPort model codes -> CUCM's model names (exporter/data/risport_models.yaml)."""
    text = (resources.files("exporter") / "data" / "risport_models.yaml").read_text("utf-8")
    return {int(code): str(name) for code, name in yaml.safe_load(text)["models"].items()}


@dataclass
class _Walk:
    """A walk through the pages, possibly over several runs."""

    state_info: str = ""
    devices: dict[str, PageDevice] = field(default_factory=dict)
    codes: dict[str, str] = field(default_factory=dict)

    def add(self, devices: Iterable[PageDevice], codes: Mapping[str, str]) -> None:
        for device in devices:
            held = self.devices.get(device.name)
            if held is None or (device.timestamp or 0) >= (held.timestamp or 0):
                self.devices[device.name] = device  # the latest registration wins
        for node, code in codes.items():
            if self.codes.get(node) not in ANSWERED:
                self.codes[node] = code


@dataclass(frozen=True)
class _Inventory:
    phones: Mapping[str, PhoneTable]
    walked_at: float
    newest_timestamp: int | None
    unmapped: int
    not_responding: tuple[str, ...]


class RisportProbe:
    """The `risport` probe: keeps its walks, last inventories and zeep sessions per cluster."""

    def __init__(
        self,
        budgets: BudgetBook = BUDGETS,
        *,
        sleep: Sleep = asyncio.sleep,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._budgets = budgets
        self._sleep = sleep
        self._now = now
        self._walks: dict[tuple[str, str], _Walk] = {}
        self._inventories: dict[tuple[str, str], _Inventory] = {}
        self._sessions: dict[tuple[int, str, str], tuple[tuple[object, ...], RisportSession]] = {}

    def retain(self, nodes: Collection[tuple[str, str]]) -> None:
        kept = set(nodes)
        for held in (self._walks, self._inventories):
            for key in set(held) - kept:
                del held[key]
        self._budgets.retain(kept)

    async def aclose(self) -> None:
        sessions, self._sessions = self._sessions, {}
        for _, session in sessions.values():
            await session.aclose()

    async def run(self, target: RunTarget, deadline: Deadline) -> RisportProbeResult:
        settings: RisportProbeConfig = target.settings
        key = (target.cluster.name, target.node.name)
        budget = self._budgets.of(*key, settings.requests_per_minute)
        if budget.backing_off:
            return self._result(key, RisportOutcome.BACKING_OFF, detail="after a rate-limit fault")
        walk = self._walks.pop(key, None) or _Walk()
        session = self._session(target, settings)
        requests = pages = faults = 0
        models = {**bundled_models(), **settings.models}
        while True:
            wait = budget.wait()
            if wait + settings.request_timeout > deadline.remaining():
                # Out of budget for this run: the walk continues on the next one.
                self._walks[key] = walk
                outcome = (
                    RisportOutcome.OK
                    if key in self._inventories
                    else RisportOutcome.WALK_IN_PROGRESS
                )
                return self._result(key, outcome, requests, pages, faults, "walk continues")
            if wait > 0:
                await self._sleep(wait)
            if not budget.take():
                continue
            requests += 1
            try:
                async with asyncio.timeout(max(deadline.remaining(), _MIN_REQUEST_SECONDS)):
                    page = await session.select(
                        SelectionPage(settings.page_size, walk.state_info),
                        request_seconds=max(
                            deadline.budget(settings.request_timeout), _MIN_REQUEST_SECONDS
                        ),
                    )
            except RisportError as error:
                if error.outcome is RisportOutcome.RATE_LIMITED:
                    faults += 1
                    budget.back_off(settings.backoff)
                    self._walks[key] = walk  # resume where it stopped once the backoff ends
                return self._result(key, error.outcome, requests, pages, faults, error.detail)
            except TimeoutError:
                return self._result(
                    key, RisportOutcome.TIMEOUT, requests, pages, faults, "deadline reached"
                )
            pages += 1
            walk.add(page.devices, page.return_codes)
            if (
                len(page.devices) < settings.page_size
                or not page.state_info
                or page.state_info == walk.state_info
            ):
                self._inventories[key] = self._complete(walk, target, models)
                inventory = self._inventories[key]
                outcome = (
                    RisportOutcome.NODE_NOT_RESPONDING
                    if inventory.not_responding
                    else RisportOutcome.OK
                )
                detail = ", ".join(inventory.not_responding)
                return self._result(key, outcome, requests, pages, faults, detail)
            walk.state_info = page.state_info

    # --- helpers -------------------------------------------------------------------------

    def _complete(self, walk: _Walk, target: RunTarget, models: Mapping[int, str]) -> _Inventory:
        names = _node_names(target)
        rows: dict[str, list[PhoneRow]] = {node.name: [] for node in target.cluster.nodes}
        not_responding = sorted(
            names.get(node.lower(), node)
            for node, code in walk.codes.items()
            if code not in ANSWERED
        )
        unmapped = 0
        for device in walk.devices.values():
            product = models.get(device.model, "") if device.model is not None else ""
            unmapped += not product
            status = STATUSES.get(device.status.lower(), "unknown")
            node = names.get(device.node.lower(), device.node[:63] or "unknown")
            rows.setdefault(node, []).append(
                PhoneRow(device.name, status, product, device.active_load)
            )
        stamps = [d.timestamp for d in walk.devices.values() if d.timestamp is not None]
        return _Inventory(
            phones={
                node: PhoneTable.of(sorted(found, key=lambda row: row.name))
                for node, found in rows.items()
                if node not in not_responding
            },
            walked_at=self._now(),
            newest_timestamp=max(stamps, default=None),
            unmapped=unmapped,
            not_responding=tuple(not_responding),
        )

    def _result(
        self,
        key: tuple[str, str],
        outcome: RisportOutcome,
        requests: int = 0,
        pages: int = 0,
        faults: int = 0,
        detail: str = "",
    ) -> RisportProbeResult:
        # The last complete inventory stands while the budget, not the data, is the problem.
        keeps = outcome in (
            RisportOutcome.OK,
            RisportOutcome.NODE_NOT_RESPONDING,
            RisportOutcome.RATE_LIMITED,
            RisportOutcome.BACKING_OFF,
        )
        inventory = self._inventories.get(key) if keeps else None
        if not keeps:
            self._inventories.pop(key, None)
        return RisportProbeResult(
            outcome=outcome,
            phones=inventory.phones if inventory else None,
            walked_at=inventory.walked_at if inventory else None,
            newest_timestamp=inventory.newest_timestamp if inventory else None,
            requests=requests,
            pages=pages,
            faults=faults,
            unmapped_models=inventory.unmapped if inventory else 0,
            not_responding=inventory.not_responding if inventory else (),
            detail=detail,
        )

    def _session(self, target: RunTarget, settings: RisportProbeConfig) -> RisportSession:
        credentials = target.cluster.risport
        assert credentials is not None, "applies_to runs the probe only with credentials"
        node = target.node
        address = node.connect_address
        host = f"[{address}]" if ":" in address else address
        url = f"https://{host}:{node.connect_port(settings.port)}{PATH}"
        password = credentials.password_value.get_secret_value()
        shape = (
            url,
            credentials.username,
            password,
            node.server_name,
            settings.verify,
            settings.ca_file,
            settings.max_response_bytes,
            settings.request_timeout,
        )
        where = (id(asyncio.get_running_loop()), target.cluster.name, node.name)
        held = self._sessions.get(where)
        if held is not None and held[0] == shape:
            return held[1]
        if held is not None:
            asyncio.get_running_loop().create_task(held[1].aclose())
        session = RisportSession(
            url,
            credentials.username,
            password,
            verify=_verify(settings),
            server_name=node.server_name,
            max_response_bytes=settings.max_response_bytes,
            request_timeout=settings.request_timeout,
        )
        self._sessions[where] = (shape, session)
        return session


def _verify(settings: RisportProbeConfig) -> ssl.SSLContext | bool:
    if not settings.verify:
        return False
    if settings.ca_file is not None:
        return ssl.create_default_context(cafile=str(settings.ca_file))
    return True


def _node_names(target: RunTarget) -> dict[str, str]:
    """RisPort names a node as CUCM's server list does (host name, FQDN or address): each
    configured node answers to its name, host, short host name and address."""
    names: dict[str, str] = {}
    for node in target.cluster.nodes:
        for alias in (node.name, node.host, node.host.split(".")[0], node.connect_address):
            names.setdefault(alias.lower(), node.name)
    return names


# --- text ----------------------------------------------------------------------------------


def describe_risport(result: RisportProbeResult) -> list[str]:
    text = (
        f"risport: {result.outcome.value}, {result.requests} requests, {result.pages} pages, "
        f"{result.faults} rate-limit faults"
    )
    if result.devices is not None:
        text += f", {result.devices} devices on {len(result.phones or {})} nodes"
    if result.unmapped_models:
        text += f", {result.unmapped_models} of unknown model codes"
    return [text + (f": {result.detail}" if result.detail else "")]


def summarize_risport(result: RisportProbeResult) -> str:
    text = result.outcome.value
    if result.devices is not None:
        text += f", {result.devices} devices"
    return text
