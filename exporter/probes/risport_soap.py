"""One RisPort70 `selectCmDeviceExt` call through zeep, over our own httpx client.

Why zeep (the client Cisco's DevNet serviceability samples use) and how it is held:
- its `AsyncTransport` takes our `httpx.AsyncClient`, so TLS settings, HTTP Basic, timeouts
  and the size limit are ours; the WSDL is bundled (`exporter/data/RISService70.wsdl`) and read
  from disk: no request leaves for a WSDL, ever.
- `AsyncClient.create_service` returns a synchronous proxy in zeep 4.3 (its coroutine is never
  awaited): the async proxy is built directly (`AsyncServiceProxy`).
- zeep reads the whole body: the size limit lives in the httpx transport below it, which also
  asks for no compression (the limit then bounds what we hold) and turns 401/403 into
  `auth_failed` before zeep would read Tomcat's HTML error page as a SOAP fault.
- parsing: lxml through zeep's settings, strict (see below), with DTDs, entities and external
  references forbidden and no huge trees. zeep's messages quote the peer's body: none of them
  reaches a result.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import httpx
import zeep
import zeep.exceptions
from zeep.proxy import AsyncServiceProxy
from zeep.transports import AsyncTransport

from exporter.probes.risport_result import RisportOutcome

__all__ = ["Page", "PageDevice", "RisportError", "RisportSession", "SelectionPage"]

SOAP_NS = "http://schemas.cisco.com/ast/soap"
BINDING = f"{{{SOAP_NS}}}RisBinding"
PATH = "/realtimeservice2/services/RISService70"
# CUCM's fault text, typo included (reference: public clients and field reports).
RATE_LIMIT_TEXT = "exceeded allowed rate"
_WSDL = resources.files("exporter") / "data" / "RISService70.wsdl"


class RisportError(Exception):
    """A classified failure of one request; `detail` is ours, never the peer's text."""

    def __init__(self, outcome: RisportOutcome, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail


class _Oversized(Exception):
    pass


class _AuthRejected(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


@dataclass(frozen=True, slots=True)
class PageDevice:
    name: str
    node: str  # RisPort's name for the node it registered to
    model: int | None
    status: str  # RisPort's text: Registered, UnRegistered, ...
    active_load: str
    timestamp: int | None


@dataclass(frozen=True)
class Page:
    devices: tuple[PageDevice, ...]
    state_info: str
    return_codes: Mapping[str, str]  # RisPort node name -> ReturnCode


@dataclass(frozen=True)
class SelectionPage:
    """What to ask for: every phone, any status, `size` at a time, from `state_info` on."""

    size: int
    state_info: str = ""


class _LimitedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    async def __aiter__(self) -> Any:
        total = 0
        async for chunk in self._inner:
            total += len(chunk)
            if total > self._limit:
                raise _Oversized
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class _GuardedTransport(httpx.AsyncBaseTransport):
    """Below zeep: no compression, a size limit, and 401/403 stopped before zeep sees them."""

    def __init__(self, inner: httpx.AsyncBaseTransport, limit: int, server_name: str) -> None:
        self._inner = inner
        self._limit = limit
        self._server_name = server_name

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.headers["Accept-Encoding"] = "identity"
        # Connect to the node's address, verify (and send SNI for) its name.
        request.extensions = {**request.extensions, "sni_hostname": self._server_name}
        response = await self._inner.handle_async_request(request)
        if response.status_code in (401, 403):
            await response.aclose()
            raise _AuthRejected(response.status_code)
        if response.headers.get("Content-Encoding", "identity").lower() != "identity":
            await response.aclose()
            raise _Oversized  # compressed anyway: its inflated size is unknowable up front
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_LimitedStream(stream, self._limit),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


class RisportSession:
    """A zeep client bound to one node's RisPort70, with the cluster's credentials."""

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        *,
        verify: ssl.SSLContext | bool,
        server_name: str,
        max_response_bytes: int,
        request_timeout: float,
    ) -> None:
        self.url = url
        guarded = _GuardedTransport(
            httpx.AsyncHTTPTransport(verify=verify), max_response_bytes, server_name
        )
        self._http = httpx.AsyncClient(
            transport=guarded,
            auth=httpx.BasicAuth(username, password),
            timeout=httpx.Timeout(request_timeout),
            follow_redirects=False,
        )
        # The WSDL is a local file: zeep's own synchronous client for remote WSDLs stays idle.
        self._wsdl_http = httpx.Client(trust_env=False)
        settings = zeep.Settings(
            # Non-strict mode turns on lxml's `recover`: it parsed a page cut in half as a
            # shorter page (measured against the lab). Strict, a truncated or garbled answer is
            # bad_response; the price: an element a later CUCM adds is one too, until the
            # bundled WSDL lists it.
            strict=True,
            xml_huge_tree=False,
            forbid_dtd=True,
            forbid_entities=True,
            forbid_external=True,
        )
        # zeep has no type hints: its three constructors are called as untyped.
        transport = AsyncTransport(client=self._http, wsdl_client=self._wsdl_http)  # type: ignore[no-untyped-call]
        with resources.as_file(_WSDL) as wsdl:
            self._client = zeep.AsyncClient(str(wsdl), transport=transport, settings=settings)  # type: ignore[no-untyped-call]
        binding = self._client.wsdl.bindings[BINDING]
        self._service = AsyncServiceProxy(self._client, binding, address=url)  # type: ignore[no-untyped-call]

    async def select(self, page: SelectionPage, *, request_seconds: float) -> Page:
        """One selectCmDeviceExt request; raises RisportError, classified. The caller also
        bounds it by its deadline; `request_seconds` bounds each network step."""
        self._http.timeout = httpx.Timeout(request_seconds)
        try:
            reply = await self._service.selectCmDeviceExt(
                StateInfo=page.state_info,
                CmSelectionCriteria={
                    "MaxReturnedDevices": page.size,
                    "DeviceClass": "Phone",
                    "Model": 255,  # any model
                    "Status": "Any",
                    "NodeName": "",
                    "SelectBy": "Name",
                    "SelectItems": {"item": [{"Item": "*"}]},
                    "Protocol": "Any",
                    "DownloadStatus": "Any",
                },
            )
        except _AuthRejected as error:
            raise RisportError(
                RisportOutcome.AUTH_FAILED,
                f"HTTP {error.status}: check the application user, its password and its roles",
            ) from None
        except _Oversized:
            raise RisportError(RisportOutcome.OVERSIZED, "response over the size limit") from None
        except zeep.exceptions.Fault as fault:
            text = str(fault.message or "")
            if RATE_LIMIT_TEXT in text.lower():
                raise RisportError(RisportOutcome.RATE_LIMITED, "Exceeded allowed rate") from None
            raise RisportError(RisportOutcome.SOAP_FAULT, "the server sent a SOAP fault") from None
        except zeep.exceptions.TransportError as error:
            # zeep reports a body it could not parse as XML this way too, with its status.
            if error.status_code == 200:
                raise RisportError(RisportOutcome.BAD_RESPONSE, "not XML") from None
            raise RisportError(
                RisportOutcome.HTTP_ERROR, f"HTTP {error.status_code} without a SOAP answer"
            ) from None
        except (
            zeep.exceptions.DTDForbidden,
            zeep.exceptions.EntitiesForbidden,
            zeep.exceptions.XMLSyntaxError,
            zeep.exceptions.XMLParseError,
            zeep.exceptions.ValidationError,
        ) as error:
            raise RisportError(
                RisportOutcome.BAD_RESPONSE, f"not a RisPort answer ({type(error).__name__})"
            ) from None
        except httpx.TimeoutException:
            raise RisportError(RisportOutcome.TIMEOUT, "no complete answer in time") from None
        except (httpx.HTTPError, ssl.SSLError, OSError) as error:
            raise RisportError(RisportOutcome.CONNECT_ERROR, type(error).__name__) from None
        return _page(reply)

    async def aclose(self) -> None:
        await self._http.aclose()
        self._wsdl_http.close()


def _page(reply: Any) -> Page:
    """The devices of one reply; a reply without the RisPort shape is a bad response."""
    try:
        result = reply.SelectCmDeviceResult
        state_info = str(reply.StateInfo or "")
        nodes = result.CmNodes.item if result.CmNodes is not None else []
        devices: list[PageDevice] = []
        codes: dict[str, str] = {}
        for node in nodes:
            name = str(node.Name or "")
            codes[name] = str(node.ReturnCode or "")
            for device in node.CmDevices.item if node.CmDevices is not None else []:
                devices.append(
                    PageDevice(
                        name=str(device.Name or ""),
                        node=name,
                        model=device.Model if isinstance(device.Model, int) else None,
                        status=str(device.Status or "Unknown"),
                        active_load=str(device.ActiveLoadID or ""),
                        timestamp=device.TimeStamp if isinstance(device.TimeStamp, int) else None,
                    )
                )
    except (AttributeError, TypeError):
        raise RisportError(RisportOutcome.BAD_RESPONSE, "not the selectCmDeviceExt shape") from None
    if any(not device.name for device in devices):
        raise RisportError(RisportOutcome.BAD_RESPONSE, "a device without a name")
    return Page(tuple(devices), state_info, codes)
