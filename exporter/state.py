"""The running configuration and how its last (re)load went: what /metrics says of itself."""

from __future__ import annotations

from exporter.config import ExporterConfig

__all__ = ["ExporterState"]


class ExporterState:
    """The running configuration and how its last (re)load went."""

    def __init__(self, config: ExporterConfig, loaded_at: float) -> None:
        self.config = config
        self.last_reload_successful = True
        self.last_reload_success_timestamp = loaded_at

    def reloaded(self, config: ExporterConfig, at: float) -> None:
        self.config = config
        self.last_reload_successful = True
        self.last_reload_success_timestamp = at

    def reload_failed(self) -> None:
        self.last_reload_successful = False  # the previous config keeps running
