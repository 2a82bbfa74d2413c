"""HTTP to one CUCM TFTP node (port 6970): bounded GETs and HEADs, and its cache list.

Every request is cut off by the run's deadline and the request timeout, every body at a byte
limit while it streams (a huge file or a slow trickle is a reason, not a hang). No redirects,
no proxy from the environment. It counts what it cost, for the probe's result.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType

import httpx

from exporter import __version__
from exporter.config import NodeConfig, PhoneConfigProbeConfig
from exporter.probes.phoneconfig_result import ConfigReason
from exporter.timing import Deadline

__all__ = ["CACHE_LIST", "ENCRYPTED", "Fetched", "TftpClient", "parse_cache_list"]

CACHE_LIST = "ConfigFileCacheList.txt"
ENCRYPTED = ".cnf.xml.enc.sgn"


@dataclass(frozen=True, slots=True)
class Fetched:
    """One answer: the body of a 200 GET (b"" for a 200 HEAD), else None with the status or,
    when there was no complete answer, the failure."""

    body: bytes | None
    status: int = 0  # 0 when `failure` says why there is no answer
    etag: str = ""
    last_modified: str = ""
    failure: ConfigReason | None = None  # OVERSIZED, TIMEOUT or UNREACHABLE


def parse_cache_list(body: bytes) -> dict[str, int]:
    """File name stem -> crc32 of its row (the encrypted file also under its own name).

    ConfigFileCacheList.txt: a header line, then one line a file, its name first; a row
    that changes (length, build time) means the file changed.
    """
    rows: dict[str, int] = {}
    for line in body.decode("utf-8", "replace").splitlines()[1:]:
        parts = line.split()
        if not parts:
            continue
        name = parts[0]
        signature = zlib.crc32(line.strip().encode()) or 1
        if name.endswith(ENCRYPTED):
            rows[name] = signature
            rows.setdefault(name.removesuffix(ENCRYPTED), signature)
        elif name.endswith(".cnf.xml"):
            rows[name.removesuffix(".cnf.xml")] = signature
    return rows


class TftpClient:
    """One run's HTTP client for one TFTP node; `async with` it."""

    def __init__(
        self,
        node: NodeConfig,
        settings: PhoneConfigProbeConfig,
        deadline: Deadline,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings, self._deadline = settings, deadline
        host = node.connect_address
        self.base = (
            f"http://{f'[{host}]' if ':' in host else host}:{node.connect_port(settings.port)}"
        )
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(settings.request_timeout),
            limits=httpx.Limits(max_connections=settings.concurrency),
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": f"cucm-directory-exporter/{__version__}"},
        )
        self.requests = self.bytes = self.transport_failures = 0
        self.detail = ""

    async def __aenter__(self) -> TftpClient:
        await self._client.__aenter__()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self._client.__aexit__(kind, error, trace)

    async def cache_list(self) -> dict[str, int] | None:
        """The node's ConfigFileCacheList.txt as parse_cache_list reads it; None without one."""
        fetched = await self.get(CACHE_LIST, self._settings.max_list_bytes)
        if fetched.status != 200 or fetched.body is None:
            return None
        return parse_cache_list(fetched.body)

    async def get(
        self,
        path: str,
        limit: int,
        headers: Mapping[str, str] | None = None,
        method: str = "GET",
    ) -> Fetched:
        budget = self._deadline.budget(self._settings.request_timeout)
        self.requests += 1
        try:
            async with (
                asyncio.timeout(budget),
                self._client.stream(method, f"{self.base}/{path}", headers=headers) as response,
            ):
                etag = response.headers.get("ETag", "")[:128]
                modified = response.headers.get("Last-Modified", "")[:64]
                status = response.status_code
                if status != 200 or method == "HEAD":
                    return Fetched(b"" if status == 200 else None, status, etag, modified)
                body = bytearray()
                async for chunk in response.aiter_raw():
                    body += chunk
                    self.bytes += len(chunk)
                    if len(body) > limit:
                        return Fetched(None, failure=ConfigReason.OVERSIZED)
                return Fetched(bytes(body), 200, etag, modified)
        except (TimeoutError, httpx.TimeoutException):
            return Fetched(None, failure=ConfigReason.TIMEOUT)
        except httpx.HTTPError as error:
            self.transport_failures += 1
            self.detail = f"{type(error).__name__} from {self.base}"
            return Fetched(None, failure=ConfigReason.UNREACHABLE)
