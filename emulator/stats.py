"""Counters behind `GET /_emulator/stats`.

`writes` keeps one `[arrival unix time, method, final status]` entry per write request, in
arrival order, so a test can bin writes per second and check a client's rate limiter. Status 0
means the connection was closed without an answer (timeout and lost_response faults).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

WRITE_METHODS = frozenset({"POST", "PATCH", "DELETE", "PUT"})
NO_ANSWER = 0


@dataclass
class Stats:
    requests: defaultdict[str, Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter))
    writes: list[list[Any]] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)

    def arrive(self, method: str, now: float) -> list[Any] | None:
        """Note a write's arrival; the returned entry gets its status when it is answered."""
        if method not in WRITE_METHODS:
            return None
        entry: list[Any] = [now, method, NO_ANSWER]
        self.writes.append(entry)
        return entry

    def finish(self, method: str, status: int, entry: list[Any] | None) -> None:
        self.requests[method][str(status)] += 1
        if entry is not None:
            entry[2] = status

    def snapshot(self, orders: int) -> dict[str, Any]:
        return {
            "requests": {m: dict(c) for m, c in self.requests.items()},
            "orders": orders,
            "writes": self.writes,
            "faults": dict(self.faults),
        }

    def reset(self) -> None:
        self.requests.clear()
        self.writes.clear()
        self.faults.clear()
