"""The change-window readiness report: one round of every probe, read as a voice engineer would.

`build_report` is pure: probe runs + config + catalogue -> a frozen `Report` (model.py), whose
counts come from the same impact computation as /metrics. `render_text` draws it for a
terminal; `as_json` gives the same content for scripts, as docs/check-report.schema.json says;
`render_phones` writes the phones to act on (`check --phones`), from the same verdicts.
"""

from exporter.report.build import build_report
from exporter.report.model import ExitCode, Report, WhatIf
from exporter.report.phones import render_phones
from exporter.report.render import as_json, render_text

__all__ = [
    "ExitCode",
    "Report",
    "WhatIf",
    "as_json",
    "build_report",
    "render_phones",
    "render_text",
]
