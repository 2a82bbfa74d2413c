"""A stopped lab leaves nothing behind: every connection its listeners accepted is closed.

A connection the lab abandons is not closed by anyone; the garbage collector finds it later,
during some other test, as an "unclosed transport" warning (issue 12: the end-to-end dashboard
test died of one opened earlier). So the lab is stopped here with every kind of connection
still open on it, and the process must be back to the file descriptors it had.
"""

from __future__ import annotations

import contextlib
import gc
import os
import socket
import ssl
import warnings
from collections.abc import Iterator

from exporter.lab import Lab
from exporter.lab.directory import DirectoryFault
from exporter.lab.tls import PortFault

LIST_PAGE = "/ccmcip/xmldirectorylist.jsp?l=A"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def request(host: str) -> bytes:
    return f"GET {LIST_PAGE} HTTP/1.1\r\nHost: {host}\r\nConnection: keep-alive\r\n\r\n".encode()


@contextlib.contextmanager
def clients() -> Iterator[list[socket.socket]]:
    """Client sockets, closed on the way out (after the lab has stopped)."""
    opened: list[socket.socket] = []
    try:
        yield opened
    finally:
        for sock in opened:
            sock.close()


def connect(opened: list[socket.socket], address: str, port: int) -> socket.socket:
    sock = socket.create_connection((address, port), timeout=5)
    opened.append(sock)
    return sock


def tls_connect(
    opened: list[socket.socket], lab: Lab, node: str, standard_port: int
) -> ssl.SSLSocket:
    state = lab.node(node)
    context = ssl.create_default_context(cafile=str(lab.ca_file))
    raw = socket.create_connection((state.address, state.ports[standard_port]), timeout=5)
    wrapped = context.wrap_socket(raw, server_hostname=state.host)
    opened.append(wrapped)
    return wrapped


def keep_connections_open(lab: Lab, opened: list[socket.socket]) -> None:
    """One of each connection a probe or a phone leaves on a node, open when the lab stops."""
    pub, sub = lab.node("cucm-pub"), lab.node("cucm-sub1")
    lab.set_directory_fault("cucm-sub1", DirectoryFault.SLOW)
    lab.set_port_fault("cucm-sub1", 2445, PortFault.STALL)

    tls_connect(opened, lab, "cucm-pub", 2445)  # TVS after the handshake
    kept_alive = tls_connect(opened, lab, "cucm-pub", 8443)  # HTTPS, keep-alive, answered
    kept_alive.sendall(request(pub.host))
    assert kept_alive.recv(12) == b"HTTP/1.1 200"
    # HTTPS asked and never read (the pipe to Tomcat and back stays busy).
    tls_connect(opened, lab, "cucm-pub", 8443).sendall(request(pub.host) * 50)
    # HTTPS whose page is slow: Tomcat is still "thinking" when the node stops.
    tls_connect(opened, lab, "cucm-sub1", 8443).sendall(request(sub.host))
    plain = connect(opened, pub.address, pub.ports[8080])  # HTTP keep-alive, answered
    plain.sendall(request(pub.host))
    assert plain.recv(12) == b"HTTP/1.1 200"
    connect(opened, pub.address, pub.ports[8443])  # a handshake never started
    connect(opened, sub.address, sub.ports[2445])  # a stalled port
    for sock in opened:
        assert sock.fileno() != -1  # all still open from the client's side


def stopped_lab_leaves_nothing(label: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()  # what earlier tests left to the collector is not this lab's
        caught.clear()
        before = open_fds()
        lab = Lab(restart_downtime=0.0).start()
        ports = {
            port: f"{node.name}:{standard}"
            for node in lab.nodes()
            for standard, port in node.ports.items()
        }
        with clients() as opened:
            try:
                keep_connections_open(lab, opened)
            finally:
                lab.stop()
        del lab
        gc.collect()
        after = open_fds()
    unclosed = [
        f"{w.message} (lab port {ports.get(_local_port(w.source) or 0, '?')})"
        for w in caught
        if issubclass(w.category, ResourceWarning)
    ]
    assert unclosed == [], label
    assert after == before, f"{label}: {after - before} file descriptors left open"


def _local_port(source: object) -> int | None:
    """The local port of a leaked socket or transport (to name the lab listener it came from)."""
    sock = source.get_extra_info("socket") if hasattr(source, "get_extra_info") else source
    try:
        name = sock.getsockname() if isinstance(sock, socket.socket) else None
    except OSError:
        return None
    return name[1] if isinstance(name, tuple) else None


def test_a_stopped_lab_closes_every_connection_it_accepted() -> None:
    # The first lab of a process also loads what stays loaded (certificates, the MIB view):
    # it runs once before the count that matters.
    with Lab(restart_downtime=0.0):
        pass
    gc.collect()
    stopped_lab_leaves_nothing("a lab stopped with connections open")


def test_a_node_restart_drops_its_connections_and_keeps_none() -> None:
    """`set tls min-version` restarts the node: the connections it had are reset, not kept."""
    with Lab(restart_downtime=0.0) as lab, clients() as opened:
        tvs = tls_connect(opened, lab, "cucm-pub", 2445)
        lab.set_tls_policy("cucm-pub", "1.2")
        tvs.settimeout(5)
        with contextlib.suppress(ConnectionResetError, ssl.SSLError):  # a reset is fine too
            assert tvs.recv(1) == b""  # a close, never silence
