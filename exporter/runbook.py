"""The runbook as an HTML page, so that the alerts' runbook links resolve for a user who has
published nothing: GET /runbook on the exporter (docs/runbook.md, shipped in the package as
exporter/data/runbook.md).

The runbook is our own, trusted Markdown, but it is escaped all the same and rendered by a
small converter of the subset it uses (headings, paragraphs, `-` and `1.` lists with indented
continuation lines, fenced code, inline code, bold, links). Headings get GitHub's anchors
(`## CucmProbeStale` -> `#cucmprobestale`), so a link works the same against this page and
against a published copy of the Markdown.
"""

from __future__ import annotations

import functools
import html
import re
from importlib import resources

__all__ = ["anchor", "runbook_html", "runbook_markdown"]

_HEADING = re.compile(r"^(#{1,6}) (.+)$")
_ITEM = re.compile(r"^(?:(-)|(\d+)\.) (.*)$")
_INLINE = re.compile(r"`([^`]+)`|\*\*(.+?)\*\*|\[([^\]]+)\]\(([^)\s]+)\)")


def anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def runbook_markdown() -> str:
    return resources.files("exporter").joinpath("data/runbook.md").read_text(encoding="utf-8")


@functools.cache
def runbook_html() -> str:
    """The page, rendered once: the runbook does not change while the process runs."""
    markdown = runbook_markdown()
    title = next((m[2] for m in map(_HEADING.match, markdown.splitlines()) if m), "Runbook")
    return _PAGE.format(title=html.escape(title), body=to_html(markdown))


def to_html(markdown: str) -> str:
    out: list[str] = []
    paragraph: list[str] = []
    items: list[list[str]] = []
    list_tag = ""
    code: list[str] | None = None

    def flush() -> None:
        nonlocal list_tag
        if paragraph:
            out.append(f"<p>{_inline(' '.join(paragraph))}</p>")
            paragraph.clear()
        if items:
            rendered = "".join(f"<li>{_inline(' '.join(item))}</li>" for item in items)
            out.append(f"<{list_tag}>{rendered}</{list_tag}>")
            items.clear()

    for line in markdown.splitlines():
        if code is not None:
            if line.startswith("```"):
                out.append(f"<pre><code>{html.escape(chr(10).join(code))}</code></pre>")
                code = None
            else:
                code.append(line)
            continue
        if line.startswith("```"):
            flush()
            code = []
        elif not line.strip():
            flush()
        elif heading := _HEADING.match(line):
            flush()
            level, text = len(heading[1]), heading[2]
            out.append(f'<h{level} id="{anchor(text)}">{_inline(text)}</h{level}>')
        elif item := _ITEM.match(line):
            tag = "ul" if item[1] else "ol"
            if paragraph or (items and tag != list_tag):
                flush()
            list_tag = tag
            items.append([item[3]])
        elif items and line.startswith(" "):
            items[-1].append(line.strip())  # a list item's continuation line
        else:
            if items:
                flush()
            paragraph.append(line.strip())
    if code is not None:
        out.append(f"<pre><code>{html.escape(chr(10).join(code))}</code></pre>")
    flush()
    return "\n".join(out)


def _inline(text: str) -> str:
    parts: list[str] = []
    position = 0
    for match in _INLINE.finditer(text):
        parts.append(html.escape(text[position : match.start()]))
        code, bold, label, target = match.groups()
        if code is not None:
            parts.append(f"<code>{html.escape(code)}</code>")
        elif bold is not None:
            parts.append(f"<strong>{_inline(bold)}</strong>")
        else:
            parts.append(f'<a href="{html.escape(_link(target))}">{_inline(label)}</a>')
        position = match.end()
    parts.append(html.escape(text[position:]))
    return "".join(parts)


def _link(target: str) -> str:
    # Only anchors and absolute http(s) links make sense on the exporter's own page; a
    # relative link to another file of the repository would point nowhere there.
    if target.startswith(("#", "https://", "http://")):
        return target
    return "#"


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em auto; max-width: 50em; line-height: 1.45; }}
code {{ background: #f3f3f3; padding: 0 .2em; }}
h2 {{ border-top: 1px solid #ddd; padding-top: .6em; }}
</style></head>
<body>
{body}
</body></html>
"""
