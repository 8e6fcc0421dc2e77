"""Seeded fault injection.

Every `/api/v3` request draws exactly two numbers from one seeded RNG when it arrives — one picks
the fault (if any), one picks its variant (which 5xx, how long a Retry-After) — so a run with the
same seed and the same arrival order sees the same faults, whatever each request turns out to be.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from emulator.config import FAULT_KINDS

SERVER_ERROR_STATUSES = (500, 502, 503)


@dataclass(frozen=True)
class Fault:
    kind: str
    variant: float  # uniform in [0, 1)

    @property
    def server_status(self) -> int:
        return SERVER_ERROR_STATUSES[int(self.variant * len(SERVER_ERROR_STATUSES))]

    @property
    def retry_after(self) -> int:
        return 1 + int(self.variant * 2)  # 1 or 2 seconds


class FaultPlan:
    def __init__(self, probabilities: dict[str, float], seed: int) -> None:
        self.seed = seed
        # Fixed kind order, so a spec's textual order does not change which draw means what.
        self._bands = [(k, probabilities[k]) for k in FAULT_KINDS if probabilities.get(k, 0) > 0]
        self._rng = random.Random(seed)

    @property
    def active(self) -> bool:
        return bool(self._bands)

    def draw(self) -> Fault | None:
        if not self._bands:
            return None
        u = self._rng.random()
        variant = self._rng.random()
        edge = 0.0
        for kind, p in self._bands:
            edge += p
            if u < edge:
                return Fault(kind, variant)
        return None

    def reseed(self) -> None:
        self._rng = random.Random(self.seed)
