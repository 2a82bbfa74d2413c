"""/metrics without re-rendering what did not change.

At a thousand nodes a scrape is ~95,000 samples, and building and formatting them costs about
a second (bench/README.md, "Scale"); yet between two scrapes only the runs that finished in
between changed. The collector cuts its families into segments (one per probe run, one per
cluster's phone summary); each segment is rendered once by prometheus_client's own encoder, its
sample lines kept per family, and a scrape stitches the cached lines under each family's header.
The output is the same text the encoder would produce for the whole registry.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from exporter.collector import CucmCollector, Segment

__all__ = ["CachedExposition"]

_EOF = "# EOF\n"  # OpenMetrics ends with it; the pieces we stitch must not


_Encoder = Callable[[Collector], bytes]  # what choose_encoder hands back


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


def _blocks(text: str) -> dict[str, tuple[str, str]]:
    """family name -> (its # lines, its sample lines), in the order the encoder wrote them."""
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
    return {n: ("".join(headers[n]), "".join(samples[n])) for n in headers}


class CachedExposition:
    """Renders the target collector with a cache per segment; its self-metrics and `others`
    (process and platform metrics) afresh every time."""

    def __init__(self, collector: CucmCollector, others: CollectorRegistry | None = None) -> None:
        self._collector = collector
        self._others = others or CollectorRegistry(auto_describe=False)
        # Per content type, the template's headers (by the config they were built for). The
        # sample lines are the same in both formats for gauges (a test holds us to that), so
        # each segment's lines by family are kept once, with the token they were rendered from.
        self._headers: dict[str, tuple[object, dict[str, str]]] = {}
        self._config: object = None
        self._pieces: dict[object, tuple[object, dict[str, str]]] = {}

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
        cached = self._headers.get(content_type)
        if cached is None or cached[0] is not token:
            blocks = _blocks(_encode(encoder, self._collector.template()))
            cached = (token, {name: header for name, (header, _) in blocks.items()})
            self._headers[content_type] = cached
        return cached[1]

    def _render_segments(self) -> list[dict[str, str]]:
        current: dict[object, tuple[object, dict[str, str]]] = {}
        for segment in self._collector.segments():
            held = self._pieces.get(segment.key)
            if held is None or held[0] is not segment.token:
                held = (segment.token, self._render(segment))
            current[segment.key] = held
        # Only what is still configured and current is kept: nothing grows without bound.
        self._pieces = current
        return [lines for _, lines in current.values()]

    @staticmethod
    def _render(segment: Segment) -> dict[str, str]:
        blocks = _blocks(_encode(generate_latest, segment.build()))
        return {name: lines for name, (_, lines) in blocks.items() if lines}
