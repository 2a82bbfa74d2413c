"""What the phone verdicts of a `check` rest on: each phone's own configuration file, or the
inference from its model and registered node (with the reason no file was read)."""

from __future__ import annotations

from collections import Counter

from exporter.impact import Basis, ClusterPhones
from exporter.report.model import BasisLine, ClusterReport

__all__ = ["basis_lines", "basis_sentences"]


def basis_lines(summary: ClusterPhones) -> tuple[BasisLine, ...]:
    """Counts by (basis, reason) over the cluster's nodes: never one line per phone."""
    counts: Counter[tuple[str, str]] = Counter()
    for (_, basis, reason), phones in summary.basis.items():
        counts[(basis.value, reason)] += phones
    return tuple(BasisLine(b, r, n) for (b, r), n in sorted(counts.items()))


def basis_sentences(cluster: ClusterReport) -> list[str]:
    """One sentence on the per-phone basis, once any phone was judged from its own file."""
    from_files = sum(line.phones for line in cluster.basis if line.basis == Basis.CONFIG.value)
    if not from_files:
        return []
    inferred = [
        f"{line.reason} {line.phones}"
        for line in cluster.basis
        if line.basis == Basis.INFERENCE.value
    ]
    text = (
        f"Per phone: {from_files} registered phones were judged from their own configuration "
        f"files ({cluster.covered} of them covered by a working HTTP directory"
    )
    if cluster.covered_if_assumed is not None:
        text += f", {cluster.covered_if_assumed} in the what-if"
    text += ")"
    if inferred:
        text += f"; inferred from model and node, by why no file was read: {', '.join(inferred)}"
    return [text + "."]
