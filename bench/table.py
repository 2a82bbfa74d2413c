"""The text tables the benchmarks print: a header, a rule, one line a row."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Column = tuple[str, str]  # header, format spec of its values (".2f", "d", "": as it is)


def table(columns: Sequence[Column], rows: Iterable[Sequence[object]]) -> str:
    """Columns as wide as their widest cell; the first aligned left, the others right. A None
    cell (a ratio with nothing to compare with) stays blank."""
    cells = [
        [
            "" if value is None else format(value, spec)
            for value, (_, spec) in zip(row, columns, strict=True)
        ]
        for row in rows
    ]
    headers = [header for header, _ in columns]
    widths = [max(len(text) for text in column) for column in zip(headers, *cells, strict=True)]

    def line(texts: Sequence[str]) -> str:
        first = texts[0].ljust(widths[0])
        return " ".join(
            [first, *(t.rjust(w) for t, w in zip(texts[1:], widths[1:], strict=True))]
        ).rstrip()

    header = line(headers)
    return "\n".join([header, "-" * len(header), *(line(row) for row in cells)])
