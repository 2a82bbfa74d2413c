"""What one RisPort70 run found: the cluster's devices per node, and what the run spent."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from exporter.results import PhoneTable

__all__ = ["RisportOutcome", "RisportProbeResult"]


class RisportOutcome(enum.Enum):
    """Classified outcome of a RisPort70 run. Bounded: these are label values."""

    OK = "ok"  # a complete inventory (this run's, or the last one while a walk continues)
    WALK_IN_PROGRESS = "walk_in_progress"  # the budget spreads the first walk over runs
    AUTH_FAILED = "auth_failed"  # HTTP 401 or 403: the user, its password or its roles
    RATE_LIMITED = "rate_limited"  # CUCM's "Exceeded allowed rate" fault: backing off
    BACKING_OFF = "backing_off"  # still inside the backoff after a rate-limit fault
    TIMEOUT = "timeout"  # no (complete) answer in time: a stalled server
    CONNECT_ERROR = "connect_error"  # refused, unreachable, TLS failure
    HTTP_ERROR = "http_error"  # another HTTP status
    SOAP_FAULT = "soap_fault"  # another SOAP fault
    BAD_RESPONSE = "bad_response"  # not XML, truncated, entities, or not the RisPort shape
    OVERSIZED = "oversized"  # a response over max_response_bytes
    NODE_NOT_RESPONDING = "node_not_responding"  # RisPort could not reach some nodes


@dataclass(frozen=True)
class RisportProbeResult:
    """One run. `phones` (configured node name -> its devices) is the last complete walk: a
    node RisPort could not answer for is absent, never empty."""

    outcome: RisportOutcome
    phones: Mapping[str, PhoneTable] | None = None
    walked_at: float | None = None  # when `phones` was completed (unix seconds)
    newest_timestamp: int | None = None  # the latest device TimeStamp (epoch) in `phones`
    requests: int = 0  # HTTP requests this run sent
    pages: int = 0  # pages this run read
    faults: int = 0  # rate-limit faults this run got
    unmapped_models: int = 0  # devices whose model code no map knows (reported as unknown)
    not_responding: tuple[str, ...] = ()  # nodes RisPort reported as NodeNotResponding
    detail: str = ""
    source: str = field(default="risport", compare=False)

    @property
    def success(self) -> bool:
        return self.outcome is RisportOutcome.OK

    @property
    def reason(self) -> str:
        return self.outcome.value

    @property
    def devices(self) -> int | None:
        return None if self.phones is None else sum(len(t) for t in self.phones.values())
