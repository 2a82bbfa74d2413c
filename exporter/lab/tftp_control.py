"""The lab's TFTP files attached to its nodes and steered from its control API: one
ClusterFiles per cluster served on every node's "6970" (lab/tftp.py), with the lab's
out-of-the-box workaround phones, and the POST /phones/{phone}/config route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

from aiohttp import web

from exporter.lab.phonefiles import ConfigFault, DirectoryMode, PhoneLike
from exporter.lab.tftp import ClusterFiles, TftpServer

__all__ = ["attach_config_files", "config_route"]


class _NodeView:
    def __init__(self, node: object) -> None:
        self._node = node
        self.name: str = node.name  # type: ignore[attr-defined]
        self.host: str = node.host  # type: ignore[attr-defined]

    @property
    def phones(self) -> Sequence[PhoneLike]:
        return self._node.agent.phones  # type: ignore[attr-defined, no-any-return]


async def attach_config_files(nodes: Mapping[tuple[str, str], object]) -> dict[str, ClusterFiles]:
    """One ClusterFiles per cluster, served on every node's "6970"; the nodes are LabNodes
    (a `tftp` TftpServer, an SNMP `agent` with the phone table)."""
    by_cluster: dict[str, list[object]] = {}
    for (cluster, _), node in nodes.items():
        by_cluster.setdefault(cluster, []).append(node)
    files: dict[str, ClusterFiles] = {}
    for cluster, members in by_cluster.items():
        views = [_NodeView(n) for n in members]
        files[cluster] = ClusterFiles(lambda views=views: views)  # type: ignore[misc]
        for node in members:
            server: TftpServer = node.tftp  # type: ignore[attr-defined]
            server.files = files[cluster]
            await server.start()
        # Out of the box, two phones per node use the HTTP workaround (the first two 7962s):
        # one subscribed to the HTTP directory service, one with its secure URL emptied.
        for view in views:
            legacy = [p.name for p in view.phones if p.product == "Cisco 7962"]
            modes = (DirectoryMode.HTTP_SERVICE, DirectoryMode.HTTP_URL)
            for name, mode in zip(legacy, modes, strict=False):
                files[cluster].configure(name, directory=mode)
    return files


def config_route(
    files_of: Callable[[str], ClusterFiles],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The control API's POST /phones/{phone}/config: {"directory", "fault", "tvs",
    "cm_group"} (each optional; tvs and cm_group are lists of node names, [] for the
    default). `phone` "all" changes every SEP phone of the cluster (`?cluster=`, default
    "lab"): e.g. subscribe them all to the HTTP directory service."""

    async def handler(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            files = files_of(request.query.get("cluster", "lab"))
            changes: dict[str, object] = {}
            if "directory" in body:
                changes["directory"] = DirectoryMode(body["directory"])
            if "fault" in body:
                changes["fault"] = ConfigFault(body["fault"])
            for key in ("tvs", "cm_group"):
                if key in body:
                    changes[key] = tuple(str(n) for n in body[key]) or None
            phone = request.match_info["phone"]
            names = sorted(files.phone_names()) if phone == "all" else [phone]
            for name in names:
                files.configure(name, **changes)
        except (KeyError, ValueError, TypeError, AttributeError) as error:
            raise web.HTTPBadRequest(text=f"bad phone config request: {error}\n") from None
        return web.json_response({"phones": len(names), **body})

    return handler
