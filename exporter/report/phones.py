"""`check --phones csv|json`: the phones to act on, one row per phone (PhoneLine; its JSON shape is
docs/check-phones.schema.json: keep the two together).

The rows are the verdicts `build_report` counted (exporter/impact.py `summarize` appends each
phone's verdict to a list as it counts it), so the list and the report's counts cannot disagree.
A row is a phone broken now ("Host not found"), or one the --assume-min-version what-if would
cut off. The list grows with phones: it is written on stdout for the engineer who asked, never
on /metrics and never in the logs.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from exporter.impact import Basis, PhoneVerdict, Verdict

__all__ = ["COLUMNS", "PhoneLine", "phone_lines", "render_phones"]

NOW = "now"  # broken now (and, with a what-if, in it too unless the what-if lowers the minimum)
WHAT_IF = "what-if"  # fine today, cut off in the what-if


@dataclass(frozen=True)
class PhoneLine:
    cluster: str
    node: str  # the node it is registered to
    name: str
    model: str
    firmware: str
    max_tls: str
    when: str  # NOW or WHAT_IF
    basis: str  # "config": judged from its own file; "inference": from model and node
    reason: str  # why it is (or would be) cut off, for people


COLUMNS = tuple(PhoneLine.__dataclass_fields__)


def phone_lines(
    cluster: str, now: Sequence[PhoneVerdict], then: Sequence[PhoneVerdict] | None
) -> list[PhoneLine]:
    """The cluster's broken phones now, then those only the what-if cuts off."""
    broken = {v.name: v for v in now if v.verdict is Verdict.AT_RISK}
    lines = [_line(cluster, v, NOW) for v in broken.values()]
    for verdict in then or ():
        if verdict.verdict is Verdict.AT_RISK and verdict.name not in broken:
            lines.append(_line(cluster, verdict, WHAT_IF))
    return sorted(lines, key=lambda line: (line.cluster, line.node, line.name))


def _line(cluster: str, v: PhoneVerdict, when: str) -> PhoneLine:
    if v.basis is Basis.CONFIG:
        why = (
            f"its configuration file sends it through a TVS or directory node requiring more "
            f"than TLS {v.max_tls}, and to no working HTTP directory"
        )
    else:
        required = v.required.value if v.required is not None else "?"
        why = (
            f"registered to {v.node}, whose TVS/Tomcat require TLS {required} "
            f"(inferred: no configuration file read, {v.reason})"
        )
    if when == WHAT_IF:
        why = f"in the what-if: {why}"
    return PhoneLine(
        cluster=cluster,
        node=v.node,
        name=v.name,
        model=v.model,
        firmware=v.firmware,
        max_tls=v.max_tls,
        when=when,
        basis=v.basis.value,
        reason=f"speaks at most TLS {v.max_tls}; {why}",
    )


def render_phones(lines: Iterable[PhoneLine], output_format: str) -> str:
    """CSV with a header row (RFC 4180, CRLF line ends), or a JSON array of objects."""
    if output_format == "json":
        return json.dumps([asdict(line) for line in lines], indent=2) + "\n"
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for line in lines:
        writer.writerow(asdict(line).values())
    return out.getvalue()
