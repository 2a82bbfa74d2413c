"""Steering the lab process through its control API (`exporter.lab.control`), asynchronously.

Every change is one POST; the lab applies it on its own loop. A refused change (HTTP 4xx/5xx)
raises `ControlError` with the lab's one-line reason, so a caller can count it and go on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp

from bench.exporter_api import AgentFault, DirectoryFault, PortFault

TVS = 2445
TOMCAT = 8443
CONTROL_TIMEOUT = 60.0  # a policy change restarts the node; the lab answers once it is back

Node = tuple[str, str]  # cluster, node


class ControlError(RuntimeError):
    """The lab refused a change or could not be reached."""


class LabControl:
    """A client of one lab's control API; use as `async with LabControl(url) as lab:`."""

    def __init__(self, base_url: str) -> None:
        self._base = base_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self.requests = 0

    async def __aenter__(self) -> LabControl:
        timeout = aiohttp.ClientTimeout(total=CONTROL_TIMEOUT)
        self._session = aiohttp.ClientSession(timeout=timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def _post(self, path: str, body: dict[str, Any], cluster: str | None) -> None:
        assert self._session is not None, "use LabControl as an async context manager"
        params = {"cluster": cluster} if cluster else {}
        self.requests += 1
        try:
            async with self._session.post(self._base + path, json=body, params=params) as reply:
                if reply.status != 200:
                    reason = (await reply.text()).strip()
                    raise ControlError(f"POST {path} {body}: HTTP {reply.status}: {reason}")
        except (aiohttp.ClientError, TimeoutError) as error:
            raise ControlError(f"POST {path} {body}: {error!r}") from error

    async def port_fault(self, node: Node, port: int, fault: PortFault) -> None:
        await self._post(f"/nodes/{node[1]}/fault", {"port": port, "fault": fault.value}, node[0])

    async def directory_fault(self, node: Node, fault: DirectoryFault) -> None:
        await self._post(f"/nodes/{node[1]}/directory-fault", {"fault": fault.value}, node[0])

    async def snmp_fault(self, node: Node, fault: AgentFault) -> None:
        await self._post(f"/nodes/{node[1]}/snmp-fault", {"fault": fault.value}, node[0])

    async def tls_policy(
        self, node: Node, min_version: str, regenerate_certificate: bool = False
    ) -> None:
        body = {"min_version": min_version, "regenerate_certificate": regenerate_certificate}
        await self._post(f"/nodes/{node[1]}/tls", body, node[0])

    async def move_phone(self, phone: str, to: Node) -> None:
        await self._post(f"/phones/{phone}", {"move_to": to[1]}, to[0])

    async def fail(self, node: Node) -> None:
        """The load test's failing node: TVS stalls, the directory answers 500, SNMP is silent."""
        await asyncio.gather(
            self.port_fault(node, TVS, PortFault.STALL),
            self.directory_fault(node, DirectoryFault.HTTP_500),
            self.snmp_fault(node, AgentFault.SILENT),
        )

    async def heal(self, node: Node) -> None:
        await asyncio.gather(
            self.port_fault(node, TVS, PortFault.NONE),
            self.port_fault(node, TOMCAT, PortFault.NONE),
            self.directory_fault(node, DirectoryFault.NONE),
            self.snmp_fault(node, AgentFault.NONE),
        )


class FaultRotation:
    """`share` of the nodes failing at any time; every `every` seconds the faults move on.

    The failing window slides over the node list: heal the nodes that were failing, then fail
    the next ones (wrapping around), so every node fails in turn and recovers.
    """

    def __init__(self, lab: LabControl, nodes: Sequence[Node], failing: int, every: float) -> None:
        self._lab = lab
        self._nodes = list(nodes)
        self._failing = failing
        self._every = every
        self._current: list[Node] = []
        self.rotations = 0
        self.errors: list[str] = []

    async def run(self) -> None:
        """Rotate until cancelled; then heal whatever is failing."""
        position = 0
        try:
            while True:
                chosen = [
                    self._nodes[(position + i) % len(self._nodes)] for i in range(self._failing)
                ]
                await self._apply(self._lab.heal, self._current)
                await self._apply(self._lab.fail, chosen)
                self._current = chosen
                self.rotations += 1
                position = (position + self._failing) % len(self._nodes)
                await asyncio.sleep(self._every)
        finally:
            await asyncio.shield(self._apply(self._lab.heal, self._current))
            self._current = []

    async def _apply(
        self, change: Callable[[Node], Awaitable[None]], nodes: Sequence[Node]
    ) -> None:
        results = await asyncio.gather(*(change(node) for node in nodes), return_exceptions=True)
        self.errors += [str(r) for r in results if isinstance(r, BaseException)]
