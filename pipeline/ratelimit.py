"""The global rate limiter: one budget for every worker process on every host.

Celery's `rate_limit` is per worker, so N workers would send N times the budget. Instead every
HTTP attempt takes a slot from a limiter whose state is shared (Redis, or the state database)
before it is sent. Buckets: "write" (POST/PATCH/DELETE) and "read" (GET).

Model. The API (and our emulator) enforce *sliding windows*: in any rolling 60 s at most `rate`
requests, in any rolling 1 s at most `burst`. A token bucket only approximates that (it can
admit rate + burst in one minute), so the limiter keeps the same thing the server keeps: a log of
acquisition times per bucket, and admits a request at `now` only if, for every window
(limit L, length W), fewer than L logged events lie in (now - W, now]. That makes every half-open
interval of length W hold at most L acquisitions, exactly, with no drift and no refill arithmetic.

Safety margins. The server sees *arrival* times a_i = t_i + d_i, not our acquisition times t_i.
If every delay d_i lies in [δ, δ + J], the requests arriving in any server window [s, s + W) were
acquired in [s - δ - J, s + W - δ): an interval of length W + J. So if the limiter enforces windows
widened to W + m with m ≥ J (strictly, for a server that counts closed windows), the server can
never see more than L in its W. Only the *spread* J of the delay costs a margin; a constant
latency δ costs nothing, and neither does clock skew between hosts because the shared backends
timestamp with one clock (Redis `TIME`, PostgreSQL `clock_timestamp()`, the one host of a SQLite
file). J is: limiter round trip + commit, scheduling, connection setup (a fresh TLS handshake vs.
a kept-alive socket), network variance, and whatever the caller does between acquire and send —
so acquire right before sending, once per HTTP attempt (a retry takes a new slot).

Defaults: +0.5 s on the 60 s windows, +0.25 s on the 1 s burst window. The long margin costs
60/60.5 → 99.2 % of the ceiling, so we can afford a generous one where a breach is expensive
(the server may block for up to a minute). On the burst window a margin eats throughput fast
(15 per 1.25 s), but the burst never limits sustained throughput (100/min needs 7 bursts of 15
spaced 1.25 s: 7.5 s ≪ 60.5 s), and a rare breach there costs a ~1 s Retry-After, which
`penalize` turns into a fleet-wide pause. Sustained utilisation: 100 per 60.5 s = 99.2 % ≥ 97 %.

All backends must be configured with the same limits (they come from the same environment).
Backend errors (redis.RedisError, sqlalchemy.exc.DBAPIError) propagate: without its shared store
the limiter cannot promise anything, so the caller should retry later rather than send.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, TypeAlias

from pipeline.settings import Rate, Settings

# A returned wait is never 0.0 when nothing was taken: 0.0 means "acquired".
MIN_WAIT = 1e-6


@dataclass(frozen=True)
class Window:
    """At most `limit` acquisitions in any rolling `seconds`."""

    limit: int
    seconds: float

    def __post_init__(self) -> None:
        if self.limit < 1 or not (0 < self.seconds < math.inf):
            raise ValueError(f"window needs limit ≥ 1 and 0 < seconds < inf, got {self}")


Limits: TypeAlias = Mapping[str, Sequence[Window]]


def _rate_window(rate: Rate, margin: float) -> Window:
    # Round the count down: a fractional budget must never be exceeded. Below one event per
    # period, stretch the period instead (0.5/s → 1 per 2 s).
    limit = math.floor(rate.count)
    if limit >= 1:
        return Window(limit, rate.period + margin)
    return Window(1, rate.period / rate.count + margin)


def limits_from_settings(settings: Settings, *, margin_short: float = 0.25,
                         margin_long: float = 0.5) -> dict[str, list[Window]]:
    """The configured budgets, each window widened by its safety margin (module docstring)."""
    return {
        "write": [_rate_window(settings.write_rate, margin_long),
                  Window(settings.write_burst, 1.0 + margin_short)],
        "read": [_rate_window(settings.read_rate, margin_long)],
    }


def slot_wait(events: Sequence[float], windows: Sequence[Window], now: float,
              blocked_until: float = 0.0) -> float:
    """0.0 if one more event at `now` keeps every window within its limit and no penalty runs;
    else the seconds (> 0) until that could become true. `events` ascending; only the newest
    max(limit) of them matter, so backends may pass just those."""
    wait = max(0.0, blocked_until - now)
    for window in windows:
        # Events at or before now - seconds have left the window (half-open (now - W, now]).
        inside = len(events) - bisect.bisect_right(events, now - window.seconds)
        if inside >= window.limit:
            # A slot frees when the limit-th newest event leaves the window.
            leaving = events[len(events) - window.limit]
            wait = max(wait, leaving + window.seconds - now, MIN_WAIT)
    return max(wait, MIN_WAIT) if wait > 0 else 0.0


class Limiter(Protocol):
    def try_acquire(self, bucket: str) -> float: ...
    def acquire(self, bucket: str, timeout: float | None = None) -> float: ...
    def penalize(self, bucket: str, seconds: float) -> None: ...
    def close(self) -> None: ...


class AcquireTimeout(TimeoutError):
    """No slot within the timeout. `wait`: seconds until one could free (a retry countdown)."""

    def __init__(self, message: str, wait: float) -> None:
        super().__init__(message)
        self.wait = wait


class BaseLimiter(ABC):
    """Shared blocking loop and bucket lookup; backends implement try_acquire and penalize."""

    def __init__(self, limits: Limits, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not limits or any(not windows for windows in limits.values()):
            raise ValueError("limits need at least one bucket, each with at least one window")
        self.limits: dict[str, tuple[Window, ...]] = {b: tuple(w) for b, w in limits.items()}
        self._elapsed_clock = clock
        self._sleep = sleep

    def windows(self, bucket: str) -> tuple[Window, ...]:
        try:
            return self.limits[bucket]
        except KeyError:
            raise KeyError(f"unknown rate-limit bucket {bucket!r}; known: "
                           f"{sorted(self.limits)}") from None

    @abstractmethod
    def try_acquire(self, bucket: str) -> float: ...

    @abstractmethod
    def penalize(self, bucket: str, seconds: float) -> None: ...

    def acquire(self, bucket: str, timeout: float | None = None) -> float:
        start = self._elapsed_clock()
        while True:
            wait = self.try_acquire(bucket)
            waited = self._elapsed_clock() - start
            if wait == 0.0:
                return waited
            # Nothing frees earlier than `wait` (events only age out, penalties only grow), so
            # when it ends past the deadline, fail now instead of sleeping in vain.
            if timeout is not None and waited + wait > timeout:
                raise AcquireTimeout(f"no {bucket!r} rate-limit slot within {timeout:g}s "
                                     f"(next in {wait:.3f}s)", wait)
            # Several waiters may wake for one freed slot; the losers just get a new wait.
            self._sleep(wait)

    def close(self) -> None:  # noqa: B027 - an optional hook, deliberately not abstract
        """Release connections; nothing to do by default."""

    def __enter__(self) -> BaseLimiter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class MemoryLimiter(BaseLimiter):
    """In-process, thread-safe. For unit tests and the embedded single-process mode.

    The clock defaults to time.monotonic rather than time.time: nothing outside this process
    reads the timestamps, and a monotonic clock never steps back under NTP."""

    def __init__(self, limits: Limits, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(limits, clock=clock, sleep=sleep)
        self._clock = clock
        self._lock = threading.Lock()
        self._events: dict[str, list[float]] = {bucket: [] for bucket in self.limits}
        self._blocked_until: dict[str, float] = dict.fromkeys(self.limits, 0.0)

    def try_acquire(self, bucket: str) -> float:
        windows = self.windows(bucket)
        horizon = max(w.seconds for w in windows)
        with self._lock:
            now = self._clock()
            events = self._events[bucket]
            del events[:bisect.bisect_right(events, now - horizon)]  # keep the log small
            wait = slot_wait(events, windows, now, self._blocked_until[bucket])
            if wait == 0.0:
                bisect.insort(events, now)  # insort: stays sorted even if a clock steps back
            return wait

    def penalize(self, bucket: str, seconds: float) -> None:
        self.windows(bucket)
        if not seconds > 0:  # also rejects NaN
            return
        with self._lock:
            until = self._clock() + seconds
            self._blocked_until[bucket] = max(self._blocked_until[bucket], until)


def limiter_from_settings(settings: Settings) -> Limiter:
    """Redis when ORDERSYNC_REDIS_URL is set, else the state database (shared by all processes
    that share it, which a MemoryLimiter would not be)."""
    # Imported here: the backends import this module, and redis/SQLAlchemy stay unloaded for
    # users of the pure parts.
    from pipeline.ratelimit_backends import RedisLimiter, SqlLimiter

    limits = limits_from_settings(settings)
    if settings.redis_url:
        return RedisLimiter(settings.redis_url, limits)
    return SqlLimiter(settings.effective_database_url, limits)
