"""RisPort70's request budget: at most N requests in any 60 seconds, per cluster.

CUCM's limit (about 15 a minute) is shared by every RisPort client of a cluster, so the budget
belongs to the cluster, not to a probe object: the scheduler's runner and `/probe`'s runner
draw from one `BudgetBook` (the process-wide `BUDGETS` unless a test passes its own).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["BUDGETS", "BudgetBook", "RequestBudget"]

WINDOW_SECONDS = 60.0


@dataclass
class RequestBudget:
    """A sliding window of request times, and a time before which nothing may be sent."""

    per_minute: int
    clock: Callable[[], float] = time.monotonic
    spent: collections.deque[float] = field(default_factory=collections.deque)
    blocked_until: float = 0.0

    def wait(self) -> float:
        """Seconds until a request may be sent (0: now)."""
        now = self.clock()
        while self.spent and self.spent[0] <= now - WINDOW_SECONDS:
            self.spent.popleft()
        waits = [self.blocked_until - now]
        if len(self.spent) >= self.per_minute:
            waits.append(self.spent[len(self.spent) - self.per_minute] + WINDOW_SECONDS - now)
        return max(0.0, *waits)

    def take(self) -> bool:
        """Record a request if one may be sent now."""
        if self.wait() > 0:
            return False
        self.spent.append(self.clock())
        return True

    def back_off(self, seconds: float) -> None:
        """CUCM said "Exceeded allowed rate": send nothing for `seconds`."""
        self.blocked_until = max(self.blocked_until, self.clock() + seconds)

    @property
    def backing_off(self) -> bool:
        return self.blocked_until > self.clock()


class BudgetBook:
    """One budget per cluster (by name and the node asked), kept as long as it is in use."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._budgets: dict[tuple[str, str], RequestBudget] = {}

    def of(self, cluster: str, node: str, per_minute: int) -> RequestBudget:
        budget = self._budgets.get((cluster, node))
        if budget is None:
            budget = self._budgets[(cluster, node)] = RequestBudget(per_minute, self._clock)
        budget.per_minute = per_minute  # a reload may change it; what was spent still counts
        return budget

    def retain(self, keys: set[tuple[str, str]]) -> None:
        for key in set(self._budgets) - keys:
            del self._budgets[key]


BUDGETS = BudgetBook()
