"""The runbook page the exporter serves at /runbook, where the alerts' links lead when nobody
published the runbook: every alert has its section there under the same anchor as on GitHub,
every internal link lands on a section, and the installed package carries the text."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from pathlib import Path

from exporter.runbook import anchor, runbook_html, to_html
from tests.test_alert_rules import _alert_names, _runbook_anchors

REPO = Path(__file__).resolve().parent.parent


class _Anchors(HTMLParser):
    """ids and href targets of a page, read by the standard library's HTML parser."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.add(str(found["id"]))
        if tag == "a" and found.get("href"):
            self.links.append(str(found["href"]))


def parsed(page: str) -> _Anchors:
    anchors = _Anchors()
    anchors.feed(page)
    anchors.close()
    return anchors


def test_every_alert_has_its_section_on_the_page() -> None:
    page = parsed(runbook_html())
    missing = sorted(name for name in _alert_names() if name.lower() not in page.ids)
    assert missing == []
    # The same anchors as GitHub makes of the Markdown: a published copy works alike.
    assert page.ids == _runbook_anchors()


def test_every_internal_link_lands_on_a_section() -> None:
    page = parsed(runbook_html())
    internal = [link for link in page.links if link.startswith("#")]
    assert len(internal) >= 10  # the runbook cross-links the options and the alerts
    assert sorted({link for link in internal if link[1:] not in page.ids}) == []


def test_the_markdown_subset_is_rendered_and_escaped() -> None:
    rendered = to_html(
        "## Option 3: revert to TLS 1.0\n\n"
        "Run `set tls min-version 1.0` <b>now</b>, **carefully**; see [here](#half-applied).\n\n"
        "1. first\n   continued\n2. second\n\n- a\n- [evil](javascript:alert(1))\n"
    )
    assert '<h2 id="option-3-revert-to-tls-10">Option 3: revert to TLS 1.0</h2>' in rendered
    assert "<code>set tls min-version 1.0</code> &lt;b&gt;now&lt;/b&gt;" in rendered
    assert '<strong>carefully</strong>; see <a href="#half-applied">here</a>' in rendered
    assert "<ol><li>first continued</li><li>second</li></ol>" in rendered
    assert '<ul><li>a</li><li><a href="#">evil</a>' in rendered
    assert "javascript:" not in rendered
    assert anchor("CucmTlsMinVersionChanged") == "cucmtlsminversionchanged"


def test_docs_runbook_is_the_packaged_runbook() -> None:
    docs = REPO / "docs" / "runbook.md"
    assert docs.is_symlink()
    assert docs.resolve() == (REPO / "exporter" / "data" / "runbook.md").resolve()


def test_the_wheel_carries_the_runbook(tmp_path: Path) -> None:
    """What `pip install .` (the image) installs has the page's text, not only the checkout."""
    # Built from a copy: pip builds in the source tree and would leave build/ in the checkout.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "MANIFEST.in"):
        shutil.copyfile(REPO / name, source / name)
    shutil.copytree(REPO / "exporter", source / "exporter",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path),
         str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read("exporter/data/runbook.md").decode()
    assert re.search(r"^## CucmProbeStale$", text, flags=re.MULTILINE)
