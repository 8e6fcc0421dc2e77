"""Shared backends of the global rate limiter (see pipeline.ratelimit for the model and margins).

RedisLimiter: one Lua script per call, atomic on the server, over a sorted set per bucket (the
sliding-window log) timestamped with Redis `TIME`. SqlLimiter: the same log in a table,
serialised per bucket by a PostgreSQL advisory lock or SQLite's `BEGIN IMMEDIATE`.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import make_url

from pipeline.ratelimit import BaseLimiter, Limits, slot_wait

# Scores are integer microseconds (exact in a double until year 2255). Every number handed to a
# Redis command is formatted with %.0f: Lua's default tostring keeps only 14 digits.
_ACQUIRE_LUA = """
if redis.replicate_commands then redis.replicate_commands() end  -- TIME before writes, Redis < 5
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local wait = tonumber(redis.call('GET', KEYS[2]) or '0') - now
if wait < 0 then wait = 0 end
local longest = 0
for i = 2, #ARGV, 2 do
  local limit, span = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  if span > longest then longest = span end
  local inside = redis.call('ZCOUNT', KEYS[1], '(' .. string.format('%.0f', now - span), '+inf')
  if inside >= limit then
    local leaving = redis.call('ZREVRANGE', KEYS[1], limit - 1, limit - 1, 'WITHSCORES')
    local free = tonumber(leaving[2]) + span - now
    if free < 1 then free = 1 end
    if free > wait then wait = free end
  end
end
if wait > 0 then return wait end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - longest))
redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[1])
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.ceil(longest / 1000) + 1000))
return 0
"""

_PENALIZE_LUA = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local until_ = tonumber(t[1]) * 1000000 + tonumber(t[2]) + tonumber(ARGV[1])
if until_ > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], string.format('%.0f', until_),
             'PX', string.format('%.0f', math.ceil(tonumber(ARGV[1]) / 1000) + 1000))
end
return 0
"""


class RedisLimiter(BaseLimiter):
    """Sliding-window log in Redis. Keys `<prefix>{bucket}:log` / `:until`: the braces are a
    hash tag, so both keys of a bucket land on one Redis Cluster slot."""

    def __init__(self, url: str, limits: Limits, *, key_prefix: str = "ordersync:ratelimit:",
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(limits, sleep=sleep)
        # redis-py's pool notices a fork (pid check) and reconnects: safe under prefork.
        self._redis = redis.Redis.from_url(url)
        self._acquire = self._redis.register_script(_ACQUIRE_LUA)
        self._penalize = self._redis.register_script(_PENALIZE_LUA)
        self._prefix = key_prefix
        # Windows in integer microseconds, sent with every call (the script is stateless).
        self._args = {
            bucket: [arg for w in windows for arg in (w.limit, round(w.seconds * 1_000_000))]
            for bucket, windows in self.limits.items()
        }

    def _keys(self, bucket: str) -> list[str]:
        base = f"{self._prefix}{{{bucket}}}"
        return [f"{base}:log", f"{base}:until"]

    def try_acquire(self, bucket: str) -> float:
        self.windows(bucket)
        member = os.urandom(12).hex()  # unique even when two events share a microsecond
        micros = self._acquire(keys=self._keys(bucket), args=[member, *self._args[bucket]])
        return int(micros) / 1_000_000

    def penalize(self, bucket: str, seconds: float) -> None:
        self.windows(bucket)
        if not seconds > 0:
            return
        self._penalize(keys=self._keys(bucket)[1:], args=[round(seconds * 1_000_000)])

    def close(self) -> None:
        self._redis.close()


_metadata = MetaData()
_events = Table(
    "ratelimit_events", _metadata,
    # BIGINT is no rowid alias in SQLite, so it would not autoincrement there.
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("bucket", String(100), nullable=False),
    Column("at", Double, nullable=False),  # epoch seconds on the backend's clock
    Index("ix_ratelimit_events_bucket_at", "bucket", "at"),
)
_penalties = Table(
    "ratelimit_penalties", _metadata,
    Column("bucket", String(100), primary_key=True),
    Column("blocked_until", Double, nullable=False),
)
# Two-key advisory locks with our own namespace, so they cannot collide with other users of
# single-key advisory locks (e.g. the state store) in the same database.
_LOCK_NAMESPACE = 0x6F72_6C31  # "orl1"
_CREATE_NAMESPACE = 0x6F72_6C30


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy emit BEGIN (as BEGIN IMMEDIATE, below) instead of sqlite3's lazy BEGIN.
    dbapi_connection.isolation_level = None
    # WAL: readers never block the writer. Persistent per file; may fail with "locked" when
    # another process holds the file, in which case that process has set it or will.
    with suppress(sqlite3.OperationalError):
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
    # Limiter state is ephemeral: no fsync per commit keeps the commit (part of the jitter) short.
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def _sqlite_on_begin(conn: Connection) -> None:
    # Take the write lock up front: the read-check-insert is then serialised across processes,
    # and waiting happens in busy_timeout instead of failing on a read→write lock upgrade.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


class SqlLimiter(BaseLimiter):
    """Sliding-window log in the state database (PostgreSQL for several hosts, SQLite for
    several processes on one host)."""

    def __init__(self, database_url: str, limits: Limits, *,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(limits, sleep=sleep)
        url = make_url(database_url)
        self._sqlite = url.get_backend_name() == "sqlite"
        if self._sqlite:
            if url.database and url.database != ":memory:":
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            self._engine = create_engine(
                url, connect_args={"timeout": 30.0, "check_same_thread": False})
            event.listen(self._engine, "connect", _sqlite_on_connect)
            event.listen(self._engine, "begin", _sqlite_on_begin)
        else:
            self._engine = create_engine(url, pool_pre_ping=True)
        self._pid = os.getpid()
        self._ready = False
        self._setup_lock = threading.Lock()

    def _prepare(self) -> None:
        if os.getpid() != self._pid:
            # Forked (Celery prefork): never share the parent's sockets; open our own.
            self._engine.dispose(close=False)
            self._pid = os.getpid()
        if self._ready:
            return
        with self._setup_lock:
            if self._ready:
                return
            with self._engine.begin() as conn:
                # Serialise creation so racing processes don't both CREATE (SQLite: BEGIN
                # IMMEDIATE already does).
                if not self._sqlite:
                    conn.execute(select(func.pg_advisory_xact_lock(_CREATE_NAMESPACE, 0)))
                _metadata.create_all(conn, checkfirst=True)
            self._ready = True

    @contextmanager
    def _locked(self, bucket: str) -> Iterator[tuple[Connection, float]]:
        """A transaction holding the bucket's lock, and `now` read *after* taking it (so the
        log stays ordered and no one records a time from before they were admitted)."""
        self._prepare()
        with self._engine.begin() as conn:
            if self._sqlite:
                now = time.time()  # one host shares this clock
            else:
                # Async commit: losing the last few events in a server crash is harmless here,
                # and a fast commit keeps the acquire→send jitter small.
                conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
                conn.execute(select(func.pg_advisory_xact_lock(
                    _LOCK_NAMESPACE, func.hashtext(bucket))))
                # clock_timestamp(), not now(): now() is frozen at transaction start, before
                # the lock wait. The server's clock, so hosts' clocks don't matter.
                now = float(conn.exec_driver_sql(
                    "SELECT extract(epoch FROM clock_timestamp())::float8").scalar_one())
            yield conn, now

    def try_acquire(self, bucket: str) -> float:
        windows = self.windows(bucket)
        horizon = max(w.seconds for w in windows)
        with self._locked(bucket) as (conn, now):
            blocked = conn.execute(select(_penalties.c.blocked_until)
                                   .where(_penalties.c.bucket == bucket)).scalar_one_or_none()
            # Only the newest max(limit) events can decide (see slot_wait).
            newest = conn.execute(
                select(_events.c.at)
                .where(_events.c.bucket == bucket, _events.c.at > now - horizon)
                .order_by(_events.c.at.desc()).limit(max(w.limit for w in windows))
            ).scalars().all()
            wait = slot_wait(newest[::-1], windows, now, blocked or 0.0)
            if wait == 0.0:
                conn.execute(delete(_events).where(_events.c.bucket == bucket,
                                                   _events.c.at <= now - horizon))
                conn.execute(insert(_events).values(bucket=bucket, at=now))
            return wait

    def penalize(self, bucket: str, seconds: float) -> None:
        self.windows(bucket)
        if not seconds > 0:
            return
        with self._locked(bucket) as (conn, now):
            # Read-then-write is safe: we hold the bucket's lock.
            current = conn.execute(select(_penalties.c.blocked_until)
                                   .where(_penalties.c.bucket == bucket)).scalar_one_or_none()
            if current is None:
                conn.execute(insert(_penalties).values(bucket=bucket, blocked_until=now + seconds))
            elif current < now + seconds:
                conn.execute(update(_penalties).where(_penalties.c.bucket == bucket)
                             .values(blocked_until=now + seconds))

    def close(self) -> None:
        self._engine.dispose()
