"""One simulated CUCM node: Tomcat (8080, and 8443 behind TLS), TVS (2445), an SNMP agent and
the TFTP service's HTTP port (6970).

A node runs on the lab's loop (see `exporter.lab.cluster`). Stopping it drops every connection
it accepted, as a restarting node does, and leaves no socket behind.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web
from cryptography.hazmat.primitives import serialization

from exporter.lab.certs import Issued, LabCA
from exporter.lab.directory import DirectoryService, generate_users
from exporter.lab.snmp import CcmAgent, LabPhone, start_agent, stop_agent
from exporter.lab.tftp import TFTP_HTTP_PORT, TftpServer
from exporter.lab.tls import (
    VERSIONS,
    TlsListener,
    TlsStream,
    close_connection,
    hold_until_closed,
    listener_contexts,
    optional_listeners,
)

# The two listeners the directory depends on: Tomcat (secure directory) and TVS (which a legacy
# phone asks about Tomcat's certificate). reference/tls-probing.md §5.
TLS_SERVICES: Mapping[int, str] = {8443: "tomcat", 2445: "tvs"}
HTTP_PORT = 8080  # Tomcat's plain HTTP: the legacy phones' workaround, untouched by TLS policy
SNMP_PORT = 161
# The lab's v2c community. Recognisable on purpose: tests grep every output for it.
LAB_COMMUNITY = "lab-community-7d1e"
DEFAULT_TOPOLOGY: Mapping[str, tuple[str, ...]] = {"lab": ("cucm-pub", "cucm-sub1")}
LAB_DOMAIN = "test"  # reserved for testing (RFC 2606): never resolves to a real host


@dataclass(frozen=True)
class NodeState:
    """What a lab node looks like from outside right now."""

    cluster: str
    name: str
    host: str  # the node's DNS name (in its certificate; not resolvable)
    address: str  # where it really listens
    ports: Mapping[int, int]  # CUCM's standard port -> the port the lab bound
    min_version: str
    max_version: str
    up: bool
    fingerprint_sha256: str
    serial: int
    restarts: int


class LabNode:
    """One simulated node. Lives on the lab's loop; use it through `Lab`."""

    def __init__(
        self,
        cluster: str,
        name: str,
        ca: LabCA,
        address: str,
        phones: list[LabPhone],
        optional_ports: bool = False,
    ) -> None:
        self.cluster = cluster
        self.name = name
        self.address = address
        self.host = f"{name}.{cluster}.{LAB_DOMAIN}"
        self.min_version = "1.0"  # CUCM's default on an upgraded cluster
        self.max_version = "1.2"  # no TLS 1.3 before 15SU2
        self.restarts = 0
        self._ca = ca
        self._issued: Issued = ca.issue(f"{cluster}-{name}", [self.host])
        self.directory = DirectoryService(address, generate_users())
        self.listeners = {
            8443: TlsListener(address, 0, self._pipe_to_tomcat),
            2445: TlsListener(address, 0, hold_until_closed),  # TVS: the handshake is the test
        }
        if optional_ports:  # CTI, SIP, CAPF, CTL: some of them want a client certificate
            self.listeners.update(optional_listeners(address))
        self._tomcat = web.AppRunner(self.directory.app(), access_log=None, shutdown_timeout=0.5)
        self._tomcat_sites: list[web.SockSite] = []
        self.agent = CcmAgent(LAB_COMMUNITY, self.host)
        self.agent.phones = phones
        self.agent.rebuild()
        self.snmp_port = 0
        self.tftp = TftpServer(address)  # phone configuration files on "6970" (lab/tftp.py)

    def state(self) -> NodeState:
        der = self._issued.certificate.public_bytes(serialization.Encoding.DER)
        return NodeState(
            cluster=self.cluster,
            name=self.name,
            host=self.host,
            address=self.address,
            ports={
                **{std: listener.port for std, listener in self.listeners.items()},
                HTTP_PORT: self.directory.http_port,
                SNMP_PORT: self.snmp_port,
                TFTP_HTTP_PORT: self.tftp.port,
            },
            min_version=self.min_version,
            max_version=self.max_version,
            up=all(listener.running for listener in self.listeners.values()),
            fingerprint_sha256=hashlib.sha256(der).hexdigest(),
            serial=self._issued.certificate.serial_number,
            restarts=self.restarts,
        )

    async def start(self) -> None:
        if self._tomcat.server is None:
            await self._tomcat.setup()
        directory = self.directory
        public = _bound_socket(self.address, directory.http_port)
        backend = _bound_socket("127.0.0.1", directory.secure_backend_port)
        directory.http_port = public.getsockname()[1]
        directory.secure_backend_port = backend.getsockname()[1]
        self._tomcat_sites = [web.SockSite(self._tomcat, s) for s in (public, backend)]
        for site in self._tomcat_sites:
            await site.start()
        contexts = listener_contexts(
            self.listeners.values(),
            self._issued.cert_file,
            self._issued.key_file,
            self.min_version,
            self.max_version,
            self._ca.bundle_file,
        )
        for listener in self.listeners.values():
            await listener.start(contexts[listener.client_auth])
        directory.https_port = self.listeners[8443].port
        self.snmp_port = await start_agent(self.agent, self.address, self.snmp_port)
        await self.tftp.start()

    async def stop(self) -> None:
        stop_agent(self.agent)
        await self.tftp.stop()
        for listener in self.listeners.values():
            await listener.stop()
        for site in self._tomcat_sites:
            await site.stop()
        self._tomcat_sites = []

    async def close(self) -> None:
        await self.stop()
        await self._tomcat.cleanup()

    async def _pipe_to_tomcat(self, stream: TlsStream) -> None:
        """8443 is TLS in front of the same Tomcat app that answers on 8080."""
        first = await stream.read()
        if not first:
            return  # a bare handshake (the TLS probe): nothing to forward
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", self.directory.secure_backend_port
        )
        # From here on the backend connection is ours: every way out (EOF, a reset on either
        # side, the lab stopping and cancelling us) closes it and waits until it is closed, so
        # no transport outlives the lab's loop.
        to_tomcat: asyncio.Task[None] | None = None
        try:
            writer.write(first)
            to_tomcat = asyncio.create_task(_upstream(stream, writer))
            while data := await reader.read(65536):
                await stream.write(data)
        except ConnectionError:
            stream.abort()  # one side reset: so does the other
        finally:
            if to_tomcat is not None:
                to_tomcat.cancel()
                # Awaited so its own error (a reset while writing to Tomcat) is collected here.
                await asyncio.gather(to_tomcat, return_exceptions=True)
            await close_connection(writer)

    async def apply_tls_policy(
        self, min_version: str, max_version: str, *, regenerate_certificate: bool, downtime: float
    ) -> None:
        """What `set tls min-version` does to a node: it goes away, then returns with the new
        policy (and, when reverting, with a regenerated certificate)."""
        if VERSIONS[min_version] > VERSIONS[max_version]:
            raise ValueError(f"min_version {min_version} is above max_version {max_version}")
        await self.stop()
        self.min_version, self.max_version = min_version, max_version
        if regenerate_certificate:
            self._issued = self._ca.issue(f"{self.cluster}-{self.name}", [self.host])
        await asyncio.sleep(downtime)
        self.restarts += 1
        self.agent.restart()
        await self.start()


def _bound_socket(address: str, port: int) -> socket.socket:
    """A listening-ready socket on `port` (0: any), reusable across a node restart."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    return sock


async def _upstream(stream: TlsStream, writer: asyncio.StreamWriter) -> None:
    """The client's bytes to Tomcat, then a FIN once the client is done."""
    while data := await stream.read():
        writer.write(data)
        await writer.drain()
    if not writer.is_closing():
        writer.write_eof()
