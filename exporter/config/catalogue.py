"""Your own phone-catalogue entries (`catalogue:`), tried before the bundled catalogue."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator

from exporter.config.base import Strict
from exporter.config.types import ConfiguredTlsVersion

__all__ = ["CatalogueEntry", "FirmwareRule"]


class FirmwareRule(Strict):
    """Below `min_load` the phone only reaches `below`, a conservative assumption.

    `min_load` has as many dotted parts as the source states ("12.0", "11.0.2" for 11.0(2));
    only that many parts of the active load are compared. `load_match`, when set, is a regular
    expression the active load must match, with a group `version` to read (parts separated by
    any of "-._"); a load it does not match is unreadable for this rule.
    """

    min_load: Annotated[str, Field(pattern=r"^\d+(\.\d+){1,3}$")]
    below: ConfiguredTlsVersion
    load_match: str | None = None

    @property
    def min_load_tuple(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.min_load.split("."))

    @field_validator("load_match")
    @classmethod
    def _valid_load_pattern(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            pattern = re.compile(value)
        except re.error as error:
            raise ValueError(f"not a valid regular expression: {error}") from None
        if "version" not in pattern.groupindex:
            raise ValueError("needs a group named 'version', e.g. (?P<version>...)")
        return value


class CatalogueEntry(Strict):
    """A phone family and the highest TLS version it can speak (see data/phone_models.yaml)."""

    family: Annotated[str, Field(min_length=1, max_length=64)]
    match: str
    max_tls: ConfiguredTlsVersion
    firmware: FirmwareRule | None = None
    source: str = "configured"
    # How the device reaches its corporate directory; only "tvs_https" can be cut off.
    directory: Literal["tvs_https", "none", "other", "unknown"] = "tvs_https"
    # documented (a source states it), inferred (follows from sources), assumed (a
    # conservative assumption: reported as such), configured (your own entry).
    confidence: Literal["documented", "inferred", "assumed", "configured"] = "configured"

    @field_validator("match")
    @classmethod
    def _valid_pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as error:
            raise ValueError(f"not a valid regular expression: {error}") from None
        return value
