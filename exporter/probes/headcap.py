"""An httpx transport that bounds what a peer may send before its final response headers.

httpcore reads interim (1xx) responses in a loop until a final one arrives; a peer that answers
`100 Continue` forever keeps that loop parsing as fast as it can send, for the whole request
timeout. Real servers send one or two interim responses (Go's HTTP client gives up after five);
a response head over `head_limit` bytes (64 KiB by default) is hostile, and the request fails
with `HeadTooLarge` (an httpx.RemoteProtocolError, so the directory probe classifies it as
`http_error`).

How: the transport's network streams count what they read between a request being sent and
httpcore's trace event that the response headers are complete.
"""

# httpcore's network interface takes `timeout` arguments; we pass them on unchanged.
# ruff: noqa: ASYNC109

from __future__ import annotations

import ssl
import typing
from collections.abc import Iterable

import httpcore
import httpx

__all__ = ["DEFAULT_HEAD_LIMIT", "HeadCappedTransport", "HeadTooLarge"]

DEFAULT_HEAD_LIMIT = 64 * 1024


class HeadTooLarge(httpcore.RemoteProtocolError):
    """The peer sent more than the limit before a final response's headers."""


class _HeadBudget:
    """Shared by one transport's streams and the requests' trace callback.

    One transport serves one walk of sequential requests, so one budget is enough.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_head = False
        self.head_bytes = 0

    async def trace(self, event: str, info: dict[str, typing.Any]) -> None:
        if event.endswith("send_request_headers.started"):
            self.in_head, self.head_bytes = True, 0
        elif event.endswith("receive_response_headers.complete"):
            self.in_head = False


class _CappedStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream, budget: _HeadBudget) -> None:
        self._inner = inner
        self._budget = budget

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        budget = self._budget
        if budget.in_head and budget.head_bytes >= budget.limit:
            raise HeadTooLarge(
                f"more than {budget.limit} bytes before the final response headers "
                "(endless 1xx interim responses?)"
            )
        data = await self._inner.read(max_bytes, timeout)
        if budget.in_head:
            budget.head_bytes += len(data)
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        inner = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        return _CappedStream(inner, self._budget)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _CappedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, budget: _HeadBudget) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._budget = budget

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        inner = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _CappedStream(inner, self._budget)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        inner = await self._inner.connect_unix_socket(path, timeout, socket_options)
        return _CappedStream(inner, self._budget)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class HeadCappedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (same exception mapping), over streams that count the head."""

    def __init__(
        self, *, verify: ssl.SSLContext, head_limit: int = DEFAULT_HEAD_LIMIT, retries: int = 0
    ) -> None:
        super().__init__(verify=verify, trust_env=False, retries=retries)
        self._budget = _HeadBudget(head_limit)
        # httpx offers no network_backend argument; the pool it built is replaced by the same
        # pool over our backend (tests/test_directory_hostile.py fails if this stops working).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=verify,
            http1=True,
            http2=False,
            retries=retries,
            network_backend=_CappedBackend(self._budget),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.extensions = {**request.extensions, "trace": self._budget.trace}
        return await super().handle_async_request(request)
