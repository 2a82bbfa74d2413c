"""/metrics bodies: rendered without redoing what did not change, shared for a second, gzipped.

Three caches, all here:
- segments: at a thousand nodes a scrape is ~95,000 samples, and building and formatting them
  costs about a second (bench/README.md, "Scale"); yet between two scrapes only the runs that
  finished in between changed. The collector cuts its families into segments (one per probe
  run, one per cluster's phone summary); each is rendered once by prometheus_client's own
  encoder, its sample lines kept per family, and a scrape stitches the cached lines under each
  family's header. The output is the text the encoder would produce for the whole registry.
- bodies: every scrape within `max_age` of a rendering gets the same body. Results change only
  when a probe run ends, so nothing is lost, and concurrent scrapers cannot take the event loop
  from the probes. Keyed on what the body is (format, compression), never on raw request
  headers, so no client can force a rendering per request.
- gzip: for clients that ask (Prometheus does); 9.6 MB become ~0.6 MB at a thousand nodes.
  The fastest level, once per rendering.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from exporter.metrics.collector import CucmCollector, Segment
from exporter.state import ExporterState

__all__ = [
    "Body",
    "CachedExposition",
    "MetricsBodies",
    "RegistryBodies",
    "accepts_gzip",
    "negotiated_format",
]

_EOF = "# EOF\n"  # OpenMetrics ends with it; the pieces we stitch must not
GZIP_LEVEL = 1
MAX_AGE_SECONDS = 1.0
SETTLE_SECONDS = 5.0  # how long a scrape waits for a large cluster's summary (~1 s at 100k)

_Encoder = Callable[[Collector], bytes]  # what choose_encoder hands back


@dataclass(frozen=True)
class Body:
    """An exposition as it goes on the wire."""

    content: bytes
    content_type: str
    gzipped: bool


class _Families(Collector):
    """Just these families, so the library's encoder can render them."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def _encode(encoder: _Encoder, families: Iterable[Metric]) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return encoder(registry).decode()


@dataclass(frozen=True)
class _Block:
    header: str  # the family's # HELP / # TYPE lines
    samples: str


def _blocks(text: str) -> dict[str, _Block]:
    """family name -> its lines, in the order the encoder wrote them."""
    headers: dict[str, list[str]] = {}
    samples: dict[str, list[str]] = {}
    name = ""
    for line in text.splitlines(keepends=True):
        if line == _EOF:
            continue
        if line.startswith("# HELP "):
            name = sys.intern(line.split(" ", 3)[2])  # one copy per family, not per segment
            headers[name], samples[name] = [], []
        if line.startswith("#"):
            headers[name].append(line)
        else:
            samples[name].append(line)
    return {n: _Block("".join(headers[n]), "".join(samples[n])) for n in headers}


@dataclass(frozen=True)
class _Template:
    config: object  # the configuration the HELP texts were built for
    headers: dict[str, str]  # family name -> header, in output order


@dataclass(frozen=True)
class _Piece:
    token: object  # what the segment was rendered from
    lines: dict[str, str]  # family name -> sample lines (the same in both formats for gauges)


class CachedExposition:
    """Renders the target collector with a cache per segment; its self-metrics and `others`
    (process and platform metrics) afresh every time."""

    def __init__(self, collector: CucmCollector, others: CollectorRegistry | None = None) -> None:
        self._collector = collector
        self._others = others or CollectorRegistry(auto_describe=False)
        self._templates: dict[str, _Template] = {}  # per content type
        self._config: object = None
        self._pieces: dict[object, _Piece] = {}

    async def settle(self) -> None:
        """Wait for what the collector computes off the event loop (large phone summaries)."""
        await self._collector.settle()

    def render(self, accept: str, config_token: object) -> tuple[bytes, str]:
        """The exposition for a client that sent `accept`; `config_token` changes when the
        configuration (and so the HELP texts) does."""
        encoder, content_type = choose_encoder(accept)
        headers = self._template(encoder, content_type, config_token)
        if self._config is not config_token:
            self._config, self._pieces = config_token, {}  # HELP texts may have changed
        pieces = self._render_segments()
        parts: list[str] = []
        for name, header in headers.items():
            parts.append(header)
            parts.extend(piece[name] for piece in pieces if name in piece)
        others = _encode(encoder, [*self._collector.self_families(), *self._others.collect()])
        parts.append(others.removesuffix(_EOF))
        if others.endswith(_EOF):
            parts.append(_EOF)
        return "".join(parts).encode(), content_type

    def _template(self, encoder: _Encoder, content_type: str, token: object) -> dict[str, str]:
        held = self._templates.get(content_type)
        if held is None or held.config is not token:
            blocks = _blocks(_encode(encoder, self._collector.template()))
            held = _Template(token, {name: block.header for name, block in blocks.items()})
            self._templates[content_type] = held
        return held.headers

    def _render_segments(self) -> list[dict[str, str]]:
        current: dict[object, _Piece] = {}
        for segment in self._collector.segments():
            held = self._pieces.get(segment.key)
            if held is None or held.token is not segment.token:
                held = _Piece(segment.token, self._render(segment))
            current[segment.key] = held
        # Only what is still configured and current is kept: nothing grows without bound.
        self._pieces = current
        return [piece.lines for piece in current.values()]

    @staticmethod
    def _render(segment: Segment) -> dict[str, str]:
        blocks = _blocks(_encode(generate_latest, segment.build()))
        return {name: block.samples for name, block in blocks.items() if block.samples}


@dataclass(frozen=True)
class _Shown:
    """What of the exporter's own state a body shows: a reload (or a failed one) shows at
    once. The configuration is compared by identity: comparing models field by field would
    cost O(nodes) per scrape."""

    config: object
    reload_successful: bool
    reload_timestamp: float

    @classmethod
    def of(cls, state: ExporterState) -> _Shown:
        return cls(state.config, state.last_reload_successful, state.last_reload_success_timestamp)

    def same(self, other: _Shown) -> bool:
        return self.config is other.config and (
            self.reload_successful,
            self.reload_timestamp,
        ) == (other.reload_successful, other.reload_timestamp)


@dataclass(frozen=True)
class _Held:
    rendered_at: float
    shown: _Shown
    body: Body


@dataclass
class MetricsBodies:
    """What /metrics answers: a cached exposition, shared by every scrape for `max_age`."""

    exposition: CachedExposition
    state: ExporterState
    max_age: float = MAX_AGE_SECONDS
    clock: Callable[[], float] = time.monotonic
    _held: dict[tuple[str, bool], _Held] = field(default_factory=dict, init=False)

    async def settle(self, limit: float = SETTLE_SECONDS) -> None:
        """Before a body: let the phone summaries computed off the loop finish (up to `limit`
        seconds; past it the body shows the last ones)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit):
                await self.exposition.settle()

    def body(self, accept: str, accept_encoding: str) -> Body:
        accept = negotiated_format(accept)
        compress = accepts_gzip(accept_encoding)
        key = (accept, compress)  # nine formats at most, two encodings
        shown = _Shown.of(self.state)
        held = self._held.get(key)
        if (
            held is None
            or not held.shown.same(shown)
            or self.clock() - held.rendered_at >= self.max_age
        ):
            content, content_type = self.exposition.render(accept, self.state.config)
            held = _Held(self.clock(), shown, _body(content, content_type, compress))
            self._held[key] = held
            # Let go of the body once it is stale: at a thousand nodes it is ~10 MB.
            with contextlib.suppress(RuntimeError):  # no running loop: nothing to schedule
                asyncio.get_running_loop().call_later(self.max_age, self._forget, key, held)
        return held.body

    def _forget(self, key: tuple[str, bool], held: _Held) -> None:
        if self._held.get(key) is held:
            del self._held[key]


@dataclass(frozen=True)
class RegistryBodies:
    """What /metrics answers from a plain registry, rendered on every request."""

    registry: CollectorRegistry

    async def settle(self) -> None:
        return None  # nothing is computed off the loop

    def body(self, accept: str, accept_encoding: str) -> Body:
        encoder, content_type = choose_encoder(negotiated_format(accept))
        return _body(encoder(self.registry), content_type, accepts_gzip(accept_encoding))


def negotiated_format(accept: str) -> str:
    """The format a client asking `accept` gets, as one of a handful of canonical Accept
    values: what the body caches and the per-format templates are keyed on.

    prometheus_client echoes the version it is asked for into the content type (`version=1.2.7`
    gives `version=1.2.7`), so keying on its answer let a client force a rendering per request
    (and a template per made-up version). The text is the same for every 1.x version; the
    escaping scheme is one of four.
    """
    try:
        _, content_type = choose_encoder(accept)
    except (TypeError, ValueError):  # `version=abc`: the library compares a str with ints
        return ""
    media, _, parameters = content_type.partition(";")
    escaping = next(
        (
            value.strip()
            for key, _, value in (p.partition("=") for p in parameters.split(";"))
            if key.strip() == "escaping"
        ),
        None,
    )
    if media == "application/openmetrics-text":
        return f"{media}; version=1.0.0; escaping={escaping or 'underscores'}"
    if escaping is not None:  # text/plain; version=1.0.0 (UTF-8 names)
        return f"{media}; version=1.0.0; escaping={escaping}"
    return ""  # the classic text format, 0.0.4


def _body(content: bytes, content_type: str, compress: bool) -> Body:
    if compress:
        content = gzip.compress(content, compresslevel=GZIP_LEVEL, mtime=0)
    return Body(content, content_type, compress)


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header takes gzip (and does not refuse it with q=0)."""
    for offer in accept_encoding.split(","):
        coding, _, parameters = offer.partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip"):
            quality = parameters.strip().lower().removeprefix("q=")
            try:
                return not parameters.strip() or float(quality) > 0
            except ValueError:
                return True  # a malformed weight: take the offer rather than refuse it
    return False
