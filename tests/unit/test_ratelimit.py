"""Pure window arithmetic, limits from settings, and MemoryLimiter on a fake clock."""

from __future__ import annotations

import bisect
import random
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench._common import max_in_window
from pipeline.ratelimit import (
    MIN_WAIT,
    AcquireTimeout,
    MemoryLimiter,
    Window,
    limiter_from_settings,
    limits_from_settings,
    slot_wait,
)
from pipeline.settings import Settings


class FakeClock:
    """Time stands still until someone sleeps; sleeping moves it."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def mean_fill(times: Sequence[float], window: Window, start: float, end: float) -> float:
    """Utilisation as the server sees it: the average, over every window [x, x + seconds) that
    fits in [start, end], of its count / limit (sampled at 1/500 of the window). Unlike
    count / duration, this does not flatter a run that begins with a full burst."""
    ordered = sorted(times)
    step = window.seconds / 500
    samples = max(1, int((end - start - window.seconds) / step))
    total = 0
    for k in range(samples):
        x = start + k * step
        total += (bisect.bisect_left(ordered, x + window.seconds)
                  - bisect.bisect_left(ordered, x))
    return total / samples / window.limit


W10 = [Window(3, 10.0)]
BOTH = [Window(4, 10.0), Window(2, 1.0)]


@pytest.mark.parametrize(("events", "windows", "now", "blocked", "expected"), [
    ([], W10, 100.0, 0.0, 0.0),                              # empty log
    ([95.0, 96.0], W10, 100.0, 0.0, 0.0),                    # below the limit
    ([95.0, 96.0, 97.0], W10, 100.0, 0.0, 5.0),              # full: oldest leaves at 105
    ([90.0, 96.0, 97.0], W10, 100.0, 0.0, 0.0),              # 90 left exactly at 100 (half-open)
    ([80.0, 95.0, 96.0, 97.0], W10, 100.0, 0.0, 5.0),        # 80 has left; 95 decides
    ([95.0, 96.0, 97.0], [Window(2, 10.0)], 100.0, 0.0, 6.0),  # the 2nd newest decides
    ([91.0, 92.0, 99.5], BOTH, 100.0, 0.0, 0.0),             # both windows have room
    ([89.0, 92.0, 99.5, 99.8], BOTH, 100.0, 0.0, 0.5),       # burst full: 99.5 leaves at 100.5
    ([91.0, 92.0, 93.0, 99.8], BOTH, 100.0, 0.0, 1.0),       # long full: 91 leaves at 101
    ([91.0, 98.0, 99.5, 99.9], BOTH, 100.0, 0.0, 1.0),       # long 1.0 > burst 0.9 (max wins)
    ([], W10, 100.0, 102.5, 2.5),                            # penalty alone
    ([95.0, 96.0, 97.0], W10, 100.0, 101.0, 5.0),            # window longer than the penalty
    ([95.0, 96.0, 97.0], W10, 100.0, 108.0, 8.0),            # penalty longer than the window
    ([95.0], W10, 100.0, 99.0, 0.0),                         # an expired penalty
    ([101.0, 102.0, 103.0], W10, 100.0, 0.0, 11.0),          # clock stepped back: still counted
])
def test_slot_wait_table(events: list[float], windows: list[Window], now: float,
                         blocked: float, expected: float) -> None:
    assert slot_wait(events, windows, now, blocked) == pytest.approx(expected)


def test_slot_wait_never_returns_zero_when_full() -> None:
    # 0.0 means "acquired": a full window must report a positive wait even at float edges.
    assert slot_wait([100.0], [Window(1, 1e-12)], 100.0) >= MIN_WAIT


@pytest.mark.parametrize(("limit", "seconds"), [(0, 1.0), (1, 0.0), (1, -1.0),
                                                (1, float("inf"))])
def test_window_rejects_nonsense(limit: int, seconds: float) -> None:
    with pytest.raises(ValueError):
        Window(limit, seconds)


def test_limits_from_default_settings() -> None:
    assert limits_from_settings(Settings()) == {
        "write": [Window(100, 60.5), Window(15, 1.25)],
        "read": [Window(1000, 60.5)],
    }


def test_limits_from_environment_and_margins() -> None:
    env = {"ORDERSYNC_WRITE_RATE": "600/m", "ORDERSYNC_WRITE_BURST": "20",
           "ORDERSYNC_READ_RATE": "10/s"}
    limits = limits_from_settings(Settings.from_env(env), margin_short=0.1, margin_long=0.0)
    assert limits == {"write": [Window(600, 60.0), Window(20, 1.1)], "read": [Window(10, 1.0)]}


def test_fractional_rates_round_down() -> None:
    limits = limits_from_settings(Settings.from_env({"ORDERSYNC_WRITE_RATE": "2.5/s",
                                                     "ORDERSYNC_READ_RATE": "0.5/s"}),
                                  margin_long=0.0)
    assert limits["write"][0] == Window(2, 1.0)
    assert limits["read"] == [Window(1, 2.0)]


def test_factory_picks_redis_when_configured_else_the_database(tmp_path: Path) -> None:
    from pipeline.ratelimit_backends import RedisLimiter, SqlLimiter

    # Neither constructor talks to its store yet (tables/connections come on first use).
    for settings_, kind in [(Settings(home=tmp_path / "home"), SqlLimiter),
                            (Settings(redis_url="redis://127.0.0.1:1/0"), RedisLimiter)]:
        limiter = limiter_from_settings(settings_)
        try:
            assert isinstance(limiter, kind)
        finally:
            limiter.close()


def test_try_acquire_takes_until_full_and_takes_nothing_when_refused() -> None:
    clock = FakeClock()
    limiter = MemoryLimiter({"write": [Window(3, 10.0)]}, clock=clock, sleep=clock.sleep)
    assert [limiter.try_acquire("write") for _ in range(3)] == [0.0, 0.0, 0.0]
    clock.now += 4.0
    assert limiter.try_acquire("write") == pytest.approx(6.0)
    assert limiter.try_acquire("write") == pytest.approx(6.0)  # the refusals took nothing
    clock.now += 6.0  # all three left at exactly 10 s (half-open window)
    assert [limiter.try_acquire("write") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.try_acquire("write") == pytest.approx(10.0)


def test_acquire_sleeps_exactly_until_a_slot_frees() -> None:
    clock = FakeClock()
    limiter = MemoryLimiter({"write": [Window(15, 1.25), Window(100, 60.5)]}, clock=clock,
                            sleep=clock.sleep)
    waits = [limiter.acquire("write") for _ in range(100)]
    assert waits[:15] == [0.0] * 15
    assert sum(waits) == pytest.approx(6 * 1.25)  # 100 = 6 full bursts + 10
    assert limiter.acquire("write") == pytest.approx(60.5 - 7.5)  # then the minute decides


def test_acquire_timeout_raises_early_and_takes_nothing() -> None:
    clock = FakeClock()
    limiter = MemoryLimiter({"read": [Window(1, 5.0)]}, clock=clock, sleep=clock.sleep)
    limiter.acquire("read")
    with pytest.raises(AcquireTimeout) as caught:
        limiter.acquire("read", timeout=2.0)
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.wait == pytest.approx(5.0)
    assert clock.slept == []  # no point sleeping when the slot frees after the deadline
    assert limiter.acquire("read", timeout=5.0) == pytest.approx(5.0)
    with pytest.raises(TimeoutError):
        limiter.acquire("read", timeout=0)


def test_penalize_blocks_only_its_bucket_and_never_shortens() -> None:
    clock = FakeClock()
    limiter = MemoryLimiter({"write": [Window(10, 60.0)], "read": [Window(10, 60.0)]},
                            clock=clock, sleep=clock.sleep)
    limiter.penalize("write", 30.0)
    limiter.penalize("write", 5.0)  # a shorter Retry-After must not lift the longer one
    limiter.penalize("write", 0.0)
    limiter.penalize("write", float("nan"))
    assert limiter.try_acquire("write") == pytest.approx(30.0)
    assert limiter.try_acquire("read") == 0.0
    assert limiter.acquire("write") == pytest.approx(30.0)


def test_unknown_bucket_is_an_error() -> None:
    limiter = MemoryLimiter({"write": [Window(1, 1.0)]})
    with pytest.raises(KeyError, match="unknown rate-limit bucket 'wirte'"):
        limiter.try_acquire("wirte")
    with pytest.raises(KeyError):
        limiter.penalize("wirte", 1.0)


def test_memory_limiter_is_thread_safe() -> None:
    # Frozen clock, 8 threads racing: exactly `limit` may win. Without the lock, the
    # check-then-append interleaves and more get through.
    clock = FakeClock()
    limiter = MemoryLimiter({"write": [Window(50, 1.0)]}, clock=clock)
    wins: list[int] = []
    start = threading.Barrier(8)

    def hammer() -> None:
        start.wait()
        wins.append(sum(limiter.try_acquire("write") == 0.0 for _ in range(200)))

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(wins) == 50


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=1, max_size=120),
       st.integers(min_value=1, max_value=6), st.integers(min_value=1, max_value=3))
def test_property_never_exceeds_and_wait_is_exact(gaps: list[float], burst: int,
                                                  factor: int) -> None:
    """Requests at arbitrary times: admitted ones never overfill a window, and a refusal's wait
    is exact — a slot is free at now + wait and not a moment earlier."""
    windows = [Window(burst, 1.0), Window(burst * factor + 1, 5.0)]
    clock = FakeClock(0.0)
    limiter = MemoryLimiter({"b": windows}, clock=clock)
    admitted: list[float] = []
    for gap in gaps:
        clock.now += gap
        wait = limiter.try_acquire("b")
        if wait == 0.0:
            admitted.append(clock.now)
            continue
        assert slot_wait(admitted, windows, clock.now + wait - 1e-6) > 0
        # (+1e-9: now + wait rounds; acquire's loop absorbs that with one MIN_WAIT retry)
        assert slot_wait(admitted, windows, clock.now + wait + 1e-9) == 0.0
    for window in windows:
        assert max_in_window(admitted, window.seconds) <= window.limit


def simulate(margin_short: float, margin_long: float, jitter: float, minutes: float,
             clients: int = 6, seed: int = 7) -> tuple[list[float], float]:
    """Greedy clients sharing one limiter with the production budget; each request reaches the
    server after a constant latency plus up to `jitter`. Returns arrival times and duration."""
    rng = random.Random(seed)
    clock = FakeClock(0.0)
    limiter = MemoryLimiter(limits_from_settings(Settings(), margin_short=margin_short,
                                                 margin_long=margin_long), clock=clock)
    ready = [0.0] * clients  # when each client next tries
    arrivals: list[float] = []
    end = minutes * 60.0
    while (nxt := min(range(clients), key=ready.__getitem__)) is not None and ready[nxt] < end:
        clock.now = max(clock.now, ready[nxt])
        wait = limiter.try_acquire("write")
        if wait == 0.0:
            arrivals.append(clock.now + 0.08 + rng.uniform(0.0, jitter))
            ready[nxt] = clock.now + rng.uniform(0.0, 0.05)  # next request soon after
        else:
            ready[nxt] = clock.now + wait
    return arrivals, end


def test_margins_cover_jitter_and_keep_utilisation_high() -> None:
    arrivals, duration = simulate(margin_short=0.25, margin_long=0.5, jitter=0.25, minutes=10)
    assert max_in_window(arrivals, 60.0) <= 100
    assert max_in_window(arrivals, 1.0) <= 15
    # 100 per 60.5 s = 99.2 % of the ceiling
    assert mean_fill(arrivals, Window(100, 60.0), arrivals[0], duration) >= 0.99


def test_without_margins_jitter_breaks_the_burst_window() -> None:
    # The control for the test above: the margins are what keeps the server's view legal.
    arrivals, _ = simulate(margin_short=0.0, margin_long=0.0, jitter=0.25, minutes=10)
    assert max_in_window(arrivals, 1.0) > 15
