"""The one deadline a probe run gets, computed by the scheduler and handed down."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Deadline:
    """An absolute point on a monotonic clock by which a probe run must have finished."""

    expires_at: float
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> Deadline:
        return cls(clock() + seconds, clock)

    def remaining(self) -> float:
        return max(0.0, self.expires_at - self.clock())

    def budget(self, step_limit: float) -> float:
        """Time for one step: its own limit, cut short by what is left of the run."""
        return min(step_limit, self.remaining())
