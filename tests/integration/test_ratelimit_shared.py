"""The shared limiters against real Redis, PostgreSQL and a SQLite file, across OS processes.

Each backend is skipped only when its service is unreachable outside CI; in CI (CI=true) an
unreachable service fails the test. URLs: ORDERSYNC_TEST_REDIS_URL, ORDERSYNC_TEST_PG_URL.
"""

from __future__ import annotations

import bisect
import multiprocessing as mp
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa

from bench._common import max_in_window
from pipeline.ratelimit import BaseLimiter, Limits, Window
from pipeline.ratelimit_backends import RedisLimiter, SqlLimiter

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("ORDERSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_URL = os.environ.get("ORDERSYNC_TEST_PG_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")

# What the "server" allows (checked on the times the clients got their slots) ...
SERVER = [Window(30, 2.0), Window(5, 0.25)]
# ... and what the limiter enforces: each window widened by a margin covering the local jitter
# (limiter timestamp → the caller's clock read): ≤ 1 ms idle, 26 ms seen with both cores of a
# 2-core box saturated by busy loops. The scaled analogue of +0.5 s / +0.25 s in production,
# but relatively dearer: it caps utilisation at 2 / 2.04 = 98 % (production: 60 / 60.5 = 99.2 %).
MARGIN = 0.04
LIMITER = [Window(w.limit, w.seconds + MARGIN) for w in SERVER]
PROCESSES = 4
RUN_SECONDS = 5.0


@dataclass(frozen=True)
class Backend:
    """Picklable recipe for a limiter, so spawned processes can build their own."""

    kind: str  # "redis" | "sql"
    url: str

    def make(self, limits: Limits) -> BaseLimiter:
        if self.kind == "redis":
            return RedisLimiter(self.url, limits)
        return SqlLimiter(self.url, limits)


def _require(reachable: bool, what: str) -> None:
    if reachable:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is unreachable, and CI=true: the shared limiter must be tested")
    pytest.skip(f"{what} is unreachable")


def _redis_up() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


def _pg_up() -> bool:
    engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return True
    except sa.exc.SQLAlchemyError:
        return False
    finally:
        engine.dispose()


def _pg_forget(bucket: str) -> None:
    """Leave no rows behind in the shared test database."""
    engine = sa.create_engine(PG_URL)
    try:
        with engine.begin() as conn:
            for table in ("ratelimit_events", "ratelimit_penalties"):
                if sa.inspect(conn).has_table(table):
                    conn.execute(sa.text(f"DELETE FROM {table} WHERE bucket = :b"), {"b": bucket})
    finally:
        engine.dispose()


@pytest.fixture
def bucket() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["redis", "postgresql", "sqlite"])
def backend(request: pytest.FixtureRequest, tmp_path: Path, bucket: str) -> Iterator[Backend]:
    if request.param == "redis":
        _require(_redis_up(), f"Redis at {REDIS_URL}")
        yield Backend("redis", REDIS_URL)  # the keys expire by themselves
    elif request.param == "postgresql":
        _require(_pg_up(), f"PostgreSQL at {PG_URL}")
        yield Backend("sql", PG_URL)
        _pg_forget(bucket)
    else:
        # A fresh file: the processes below also race to create the tables.
        yield Backend("sql", f"sqlite:///{tmp_path / 'state' / 'ordersync.db'}")


def closest(times: Sequence[float], limit: int) -> float:
    """The shortest span holding limit + 1 events: it must reach the window's length."""
    ordered = sorted(times)
    return min((ordered[i + limit] - ordered[i] for i in range(len(ordered) - limit)),
               default=float("inf"))


def mean_fill(times: Sequence[float], window: Window, start: float, end: float) -> float:
    """Average over every window [x, x + seconds) inside [start, end] of count / limit."""
    ordered = sorted(times)
    step = window.seconds / 500
    samples = max(1, int((end - start - window.seconds) / step))
    total = sum(bisect.bisect_left(ordered, start + k * step + window.seconds)
                - bisect.bisect_left(ordered, start + k * step) for k in range(samples))
    return total / samples / window.limit


def _hammer(backend: Backend, bucket: str, barrier: Barrier, results: Any) -> None:
    """One worker process: take slots as fast as the limiter allows for RUN_SECONDS, recording
    when each was granted (wall clock: shared by all processes on this host)."""
    limiter = backend.make({bucket: LIMITER})
    granted: list[float] = []
    try:
        barrier.wait(timeout=60)
        end = time.time() + RUN_SECONDS
        while (remaining := end - time.time()) > 0:
            try:
                limiter.acquire(bucket, timeout=remaining)
            except TimeoutError:
                break
            granted.append(time.time())
        results.put((granted, end, None))
    except Exception as exc:  # report, so the parent fails with the reason instead of hanging
        results.put((granted, 0.0, repr(exc)))
        raise
    finally:
        limiter.close()


def _run_processes(target: Any, args: tuple[Any, ...], count: int) -> list[Any]:
    ctx = mp.get_context("spawn")  # what Celery-less hosts and macOS do; no inherited sockets
    barrier = ctx.Barrier(count)
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, barrier, results)) for _ in range(count)]
    for proc in procs:
        proc.start()
    try:
        return [results.get(timeout=90) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()


@pytest.mark.slow
def test_processes_never_exceed_any_window_and_use_the_budget(backend: Backend,
                                                              bucket: str) -> None:
    outcomes = _run_processes(_hammer, (backend, bucket), PROCESSES)
    errors = [error for _, _, error in outcomes if error]
    assert not errors, errors
    times = sorted(t for granted, _, _ in outcomes for t in granted)
    end = min(end for _, end, _ in outcomes)
    long, burst = SERVER
    fill = mean_fill(times, long, times[0], end)
    per_process = [len(granted) for granted, _, _ in outcomes]
    print(f"\n{backend.kind} {backend.url.split('://')[0]}: {len(times)} slots {per_process}, "
          f"max {max_in_window(times, long.seconds)}/{long.limit} per {long.seconds:g}s, "
          f"max {max_in_window(times, burst.seconds)}/{burst.limit} per {burst.seconds:g}s, "
          f"utilisation (mean rolling fill) {fill:.1%}; closest approach: {long.limit + 1} slots "
          f"spanned {closest(times, long.limit):.4f}s, {burst.limit + 1} spanned "
          f"{closest(times, burst.limit):.4f}s")
    assert max_in_window(times, long.seconds) <= long.limit
    assert max_in_window(times, burst.seconds) <= burst.limit
    # ≥ 97 % idle (98 % measured); the bar leaves room for a loaded CI box, whose late wake-ups
    # stretch every cycle a little (97.0 % measured under full CPU contention).
    assert fill >= 0.95
    assert sum(1 for n in per_process if n > 0) >= 2  # really shared, not one process alone


def test_try_acquire_takes_nothing_when_refused(backend: Backend, bucket: str) -> None:
    with backend.make({bucket: [Window(3, 1.0)]}) as limiter:
        assert [limiter.try_acquire(bucket) for _ in range(3)] == [0.0, 0.0, 0.0]
        first, second = limiter.try_acquire(bucket), limiter.try_acquire(bucket)
        assert 0.9 < second <= first <= 1.0  # the refusals took no slot
        assert limiter.acquire(bucket, timeout=2.0) <= 1.1
        for _ in range(2):  # the other two initial slots free within milliseconds
            limiter.acquire(bucket, timeout=0.2)
        with pytest.raises(TimeoutError):
            limiter.acquire(bucket, timeout=0.05)


def test_penalty_is_shared_and_never_shortened(backend: Backend, bucket: str) -> None:
    limits = {bucket: [Window(100, 10.0)], f"{bucket}-other": [Window(100, 10.0)]}
    with backend.make(limits) as one, backend.make(limits) as other:
        assert other.try_acquire(bucket) == 0.0
        one.penalize(bucket, 0.6)  # a 429 seen by one worker ...
        one.penalize(bucket, 0.1)  # ... a shorter Retry-After later must not lift it
        wait = other.try_acquire(bucket)  # ... holds every worker
        assert 0.5 < wait <= 0.6
        assert other.try_acquire(f"{bucket}-other") == 0.0  # other buckets are not affected
        assert 0.45 < other.acquire(bucket, timeout=2.0) < 0.75
    if backend.kind == "sql" and backend.url.startswith("postgresql"):
        _pg_forget(f"{bucket}-other")


def _first_use(url: str, bucket: str, barrier: Barrier, results: Any) -> None:
    limiter = SqlLimiter(url, {bucket: [Window(10, 1.0)]})
    try:
        barrier.wait(timeout=60)
        results.put(limiter.try_acquire(bucket))
    except Exception as exc:
        results.put(repr(exc))
    finally:
        limiter.close()


def test_postgres_tables_are_created_once_when_processes_race(bucket: str) -> None:
    _require(_pg_up(), f"PostgreSQL at {PG_URL}")
    schema = f"rl_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        url = f"{PG_URL}?options=-csearch_path%3D{schema}"  # a database with no tables yet
        assert _run_processes(_first_use, (url, bucket), PROCESSES) == [0.0] * PROCESSES
        with admin.connect() as conn:
            assert {"ratelimit_events", "ratelimit_penalties"} <= set(
                sa.inspect(conn).get_table_names(schema=schema))
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
