"""Scalar types of the config file (durations, TLS versions, names, hosts, ports), the one
validator for "this duration fits within that one", and the checks that a list repeats
nothing."""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Annotated, Any, Protocol, TypeVar

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator

from exporter.results import TlsVersion

__all__ = [
    "ConfiguredTlsVersion",
    "Duration",
    "Host",
    "Name",
    "PortNumber",
    "PositiveDuration",
    "distinct_names",
    "nonempty_distinct",
    "within",
]

_DURATION = re.compile(r"(?P<value>\d+(?:\.\d+)?)(?P<unit>ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _parse_duration(value: object) -> float:
    """Accept Prometheus-style durations ("500ms", "1m30s") or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 1m or 500ms")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value and _DURATION.sub("", value) == "":
        seconds = sum(
            float(m["value"]) * _UNIT_SECONDS[m["unit"]] for m in _DURATION.finditer(value)
        )
    else:
        raise ValueError(f"expected a duration such as 30s, 1m or 500ms, got {value!r}")
    if not math.isfinite(seconds):
        raise ValueError("a duration must be a finite number of seconds")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def _positive(value: float, info: ValidationInfo) -> float:
    if value <= 0:
        raise ValueError(f"{info.field_name} must be positive")
    return value


Duration = Annotated[float, BeforeValidator(_parse_duration)]
PositiveDuration = Annotated[float, BeforeValidator(_parse_duration), AfterValidator(_positive)]


def within(*fields: str, limit: str, inclusive: bool) -> Any:
    """A field validator: each of `fields` must be below `limit` (at most, if `inclusive`),
    another duration field of the same model declared before them.

        _timeout_fits = within("timeout", "jitter", limit="interval", inclusive=False)
    """

    def check(cls: type, value: float, info: ValidationInfo) -> float:
        bound = info.data.get(limit)  # absent when the limit itself was invalid
        if bound is not None and (value > bound if inclusive else value >= bound):
            relation = "at most" if inclusive else "below"
            raise ValueError(
                f"{info.field_name} ({value:g}s) must be {relation} {limit} ({bound:g}s)"
            )
        return value

    return field_validator(*fields)(check)


def _parse_tls_version(value: object) -> object:
    # YAML reads `1.0` as a float; CUCM's CLI and our labels use the text "1.0".
    if isinstance(value, float):
        return str(value)  # 1.0 -> "1.0"; 1.25 stays "1.25" and is rejected
    if isinstance(value, str) and value.upper().startswith("TLS"):
        return value[3:].strip().lstrip("v")
    return value


ConfiguredTlsVersion = Annotated[TlsVersion, BeforeValidator(_parse_tls_version)]

_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
Name = Annotated[str, Field(pattern=_NAME_PATTERN, max_length=63)]
_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_-]{1,63})*\.?$")
# An IPv6 zone is an interface name or number (RFC 6874); Python's ipaddress takes any text
# after "%", newlines included, which would end up in logs and the /probe debug text.
_ZONE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _check_host(value: object) -> object:
    if not isinstance(value, str):
        return value
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        if not _HOST.fullmatch(value):
            raise ValueError(f"{value!r} is neither an IP address nor a host name") from None
        return value
    zone = getattr(address, "scope_id", None)
    if zone is not None and not _ZONE.fullmatch(zone):
        raise ValueError(f"{value!r}: an IPv6 zone is an interface name or number")
    return value


Host = Annotated[str, BeforeValidator(_check_host)]
PortNumber = Annotated[int, Field(ge=1, le=65535)]


_Item = TypeVar("_Item")


def nonempty_distinct(value: tuple[_Item, ...], field: str, item: str) -> tuple[_Item, ...]:
    """A list setting that must name at least one `item` and none twice."""
    if not value:
        raise ValueError(f"{field} must name at least one {item}")
    if len(set(value)) != len(value):
        raise ValueError(f"{field} must not repeat")
    return value


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_NamedItem = TypeVar("_NamedItem", bound=_Named)


def distinct_names(items: tuple[_NamedItem, ...], rule: str) -> tuple[_NamedItem, ...]:
    """Items whose names do not repeat; the error says `rule` and every repeated name."""
    names = [item.name for item in items]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{rule}: {', '.join(repeated)}")
    return items
