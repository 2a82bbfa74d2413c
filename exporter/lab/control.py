"""A small HTTP API on loopback to steer a running lab from another terminal or process."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from aiohttp import web

from exporter.lab.cluster import Lab
from exporter.lab.directory import DirectoryFault
from exporter.lab.risport import RisportFault
from exporter.lab.snmp import AgentFault
from exporter.lab.tftp_control import config_route
from exporter.lab.tls import VERSIONS, PortFault


def control_app(lab: Lab) -> web.Application:
    """The routes:

    GET  /nodes                 every node's state
    POST /nodes/{node}/tls      {"min_version", "max_version"?, "regenerate_certificate"?}
    POST /nodes/{node}/fault    {"port", "fault"}: a TLS port stalls, resets, babbles
    POST /nodes/{node}/directory-fault  {"fault"}: the directory pages misbehave
    POST /nodes/{node}/snmp-fault       {"fault"}: the SNMP agent goes silent, babbles, loops
    POST /nodes/{node}/risport-fault    {"fault"}: the node's cluster's RisPort70 stalls,
                                        babbles, rate-limits, reports nodes not responding
    POST /phones/{phone}        {"move_to"} or {"status"}: a phone re-registers or changes state
    POST /phones/{phone}/config {"directory", "fault", "tvs", "cm_group"}: its TFTP file

    `?cluster=` picks among nodes of the same name.
    """

    async def nodes(request: web.Request) -> web.Response:
        states = await asyncio.to_thread(lab.nodes)
        return web.json_response([_as_json(s) for s in states])

    async def set_tls(request: web.Request) -> web.Response:
        body = await _json_body(request)
        min_version, max_version = body.get("min_version"), body.get("max_version")
        if min_version not in VERSIONS or max_version not in (None, *VERSIONS):
            raise web.HTTPBadRequest(text=f"versions must be one of {', '.join(VERSIONS)}\n")
        try:
            state = await asyncio.to_thread(
                lab.set_tls_policy,
                request.match_info["node"],
                min_version,
                max_version,
                cluster=request.query.get("cluster"),
                regenerate_certificate=bool(body.get("regenerate_certificate", False)),
            )
        except (KeyError, ValueError) as error:
            raise web.HTTPBadRequest(text=f"{error}\n") from None
        return web.json_response(_as_json(state))

    async def set_fault(request: web.Request) -> web.Response:
        body = await _json_body(request)
        try:
            fault = PortFault(body.get("fault", "none"))
            await asyncio.to_thread(
                lab.set_port_fault,
                request.match_info["node"],
                int(body["port"]),
                fault,
                cluster=request.query.get("cluster"),
            )
        except (KeyError, ValueError, TypeError) as error:
            raise web.HTTPBadRequest(text=f"bad fault request: {error}\n") from None
        return web.json_response({"fault": fault.value})

    def node_fault(
        name: str, kind: type[DirectoryFault] | type[AgentFault] | type[RisportFault], setter: Any
    ) -> Any:
        """A handler for POST {"fault": ...} that applies one kind of fault to a node."""

        async def handler(request: web.Request) -> web.Response:
            body = await _json_body(request)
            try:
                fault = kind(body.get("fault", "none"))
                await asyncio.to_thread(
                    setter, request.match_info["node"], fault, cluster=request.query.get("cluster")
                )
            except (KeyError, ValueError) as error:
                raise web.HTTPBadRequest(text=f"bad {name} request: {error}\n") from None
            return web.json_response({name.replace(" ", "_"): fault.value})

        return handler

    async def change_phone(request: web.Request) -> web.Response:
        body = await _json_body(request)
        phone = request.match_info["phone"]
        try:
            if "move_to" in body:
                await asyncio.to_thread(
                    lab.move_phone,
                    phone,
                    str(body["move_to"]),
                    cluster=request.query.get("cluster"),
                )
            else:
                await asyncio.to_thread(lab.set_phone_status, phone, str(body.get("status")))
        except (KeyError, ValueError) as error:
            raise web.HTTPBadRequest(text=f"bad phone request: {error}\n") from None
        return web.json_response({"phone": phone, **body})

    app = web.Application()
    app.router.add_get("/nodes", nodes)
    app.router.add_post("/nodes/{node}/tls", set_tls)
    app.router.add_post("/nodes/{node}/fault", set_fault)
    app.router.add_post(
        "/nodes/{node}/directory-fault",
        node_fault("directory fault", DirectoryFault, lab.set_directory_fault),
    )
    app.router.add_post(
        "/nodes/{node}/snmp-fault", node_fault("snmp fault", AgentFault, lab.set_snmp_fault)
    )
    app.router.add_post(
        "/nodes/{node}/risport-fault",
        node_fault("risport fault", RisportFault, lab.set_risport_fault),
    )
    app.router.add_post("/phones/{phone}", change_phone)
    app.router.add_post("/phones/{phone}/config", config_route(lab.config_files))
    return app


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="expected a JSON object\n") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="expected a JSON object\n")
    return body


def _as_json(state: Any) -> dict[str, Any]:
    data = dataclasses.asdict(state)
    data["ports"] = {str(k): v for k, v in state.ports.items()}
    # Two hex digits a byte, as blackbox_exporter and openssl print serials.
    data["serial"] = state.serial.to_bytes((state.serial.bit_length() + 7) // 8, "big").hex()
    return data
