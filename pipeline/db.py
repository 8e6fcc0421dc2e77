"""Engines and transactions for the state store: SQLite (WAL, one writer at a time across
processes) or PostgreSQL (row locks, advisory locks per order key)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from pipeline.errors import ConfigError
from pipeline.tables import metadata


def make_engine(url: str) -> Engine:
    """An engine with the settings the store relies on; tables are created on first use."""
    try:
        engine = _sqlite_engine(url) if url.startswith("sqlite") else _pooled_engine(url)
    except (ArgumentError, ImportError) as exc:  # NoSuchModuleError is an ArgumentError
        raise ConfigError(f"ORDERSYNC_DATABASE_URL {_safe(url)!r} is not usable ({exc}); "
                          "use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB") from None
    try:
        # checkfirst: several processes may start together; a lost race is harmless.
        metadata.create_all(engine, checkfirst=True)
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else "no answer"
        raise ConfigError(f"the state store at {_safe(url)} cannot be reached ({reason}): "
                          "start it or fix ORDERSYNC_DATABASE_URL") from exc
    except SQLAlchemyError:
        metadata.create_all(engine, checkfirst=True)  # another process created them meanwhile
    return engine


# A pooled connection idle longer than this is pinged before use. SQLAlchemy's pool_pre_ping
# pings on every checkout: a round trip per transaction, ~15 % of a busy worker's store CPU.
# Connections in steady use skip it; one broken while busy fails its task, which is retried,
# and the disconnect invalidates the whole pool.
IDLE_PING = 5.0


def _pooled_engine(url: str) -> Engine:
    engine = create_engine(url, pool_size=5, max_overflow=10)

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < IDLE_PING:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the pool retries the checkout with a fresh connection
            raise DisconnectionError("stale pooled connection") from exc

    return engine


def _sqlite_engine(url: str) -> Engine:
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        folder = Path(path).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"{folder}: cannot create the state folder ({exc.strerror}): set "
                              "ORDERSYNC_HOME to a writable folder") from None
    # NullPool: a connection per transaction, so no connection is shared between threads.
    engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" below decide how a transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return  # a `reader` connection: each statement on its own, no lock
        # IMMEDIATE takes the write lock up front: read-then-write transactions from several
        # processes cannot interleave (no lost updates, no upgrade deadlocks).
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def reader(engine: Engine) -> Engine:
    """The same engine for single-statement reads, in autocommit. On PostgreSQL a read is then
    one round trip instead of three (BEGIN, SELECT, ROLLBACK); on SQLite it reads the WAL
    snapshot without taking the write lock every `transaction` takes."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    with engine.begin() as conn:
        yield conn


def lock_keys(conn: Connection, keys: list[tuple[int, str]]) -> None:
    """Serialize writers of the same orders on PostgreSQL (SQLite is serialized already).
    Keys are locked in sorted order so two transactions never deadlock on them."""
    if conn.dialect.name != "postgresql" or not keys:
        return
    names = sorted({f"{integration_id}:{order_id}" for integration_id, order_id in keys})
    # One round trip; the subquery's ORDER BY fixes the order in which the locks are taken.
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
                      "FROM (SELECT unnest(CAST(:keys AS text[])) AS k ORDER BY 1) AS ordered"),
                 {"keys": names})


def insert_for(conn: Connection) -> Any:
    """The dialect's INSERT, which has ON CONFLICT (both SQLite and PostgreSQL do)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert
    return sqlite.insert


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparseable URL)"
