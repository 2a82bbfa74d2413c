"""Probes: the one extension point. Each fetches and returns frozen results; none touches
metrics or raises on network faults.

A probe is a module of its own plus a `ProbeSpec` (exporter/probes/spec.py) in
`BUILTIN_PROBES` (exporter/probes/builtin.py). Everything else reads what it needs from specs.
"""

from __future__ import annotations

from exporter.probes.builtin import BUILTIN_PROBES
from exporter.probes.runner import ProbeJob, ProbeRunner, targets
from exporter.probes.spec import Key, NodeProbe, OnDemand, Probe, ProbeSpec, Target

__all__ = [
    "BUILTIN_PROBES",
    "Key",
    "NodeProbe",
    "OnDemand",
    "Probe",
    "ProbeJob",
    "ProbeRunner",
    "ProbeSpec",
    "Target",
    "targets",
]
