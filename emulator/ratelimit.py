"""Per-account sliding-window rate limits (a log of admission times, not token buckets).

A log answers the question the pipeline's tests ask — "were there ever more than N requests in
any rolling window?" — exactly, where a bucket would allow bursts at window edges. Windows hold
at most `count` timestamps each, so memory stays bounded.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from emulator.config import Rate


@dataclass
class Window:
    rate: Rate
    times: deque[float] = field(default_factory=deque)

    def wait(self, now: float) -> float:
        """Seconds until one more request fits (0 = it fits now)."""
        times = self.times
        horizon = now - self.rate.period
        while times and times[0] <= horizon:
            times.popleft()
        if len(times) < self.rate.count:
            return 0.0
        # The (len - count + 1)-th oldest must leave the window first.
        return times[len(times) - self.rate.count] - horizon


@dataclass
class Limiter:
    write_rate: Rate
    write_burst: int
    read_rate: Rate
    _windows: dict[tuple[str, str], Window] = field(default_factory=dict)

    def _rules(self, account: str, write: bool) -> list[Window]:
        rules = [("write", self.write_rate), ("burst", Rate(self.write_burst, 1.0))] if write \
            else [("read", self.read_rate)]
        windows = []
        for name, rate in rules:
            window = self._windows.get((account, name))
            if window is None:
                window = self._windows[(account, name)] = Window(rate)
            windows.append(window)
        return windows

    def retry_after(self, account: str, write: bool, now: float) -> int:
        """0 if a request may go now, else whole seconds to wait (rounded up, ≥ 1)."""
        wait = max(w.wait(now) for w in self._rules(account, write))
        return 0 if wait <= 0 else max(1, math.ceil(wait))

    def record(self, account: str, write: bool, now: float) -> None:
        for window in self._rules(account, write):
            window.times.append(now)

    def reset(self) -> None:
        self._windows.clear()
