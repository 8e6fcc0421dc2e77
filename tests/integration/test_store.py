"""The state store on SQLite and on PostgreSQL: coalescing, claims, settlement, dead letters."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import FieldError
from pipeline.records import Operation
from pipeline.store import Store


def upsert(n: int, hour: int = 10, city: str = "Oss") -> Operation:
    body = {"order_id": f"A-{n}", "order_details": {
        "integration": {"id": 101}, "order_updated_at": f"2026-12-01T{hour:02d}:00:00+00:00",
        "order_items": [{"name": "Candle", "quantity": 1}]}, "shipping_address": {"city": city}}
    return Operation("upsert", (101, f"A-{n}"), datetime(2026, 12, 1, hour, tzinfo=UTC), body)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path / 'state.db'}")
        yield s
        s.close()
        return
    database: str = request.getfixturevalue("database")
    s = Store(database)
    yield s
    s.close()


def test_coalescing_keeps_the_newest_version(store: Store) -> None:
    sid = store.open_submission()
    tally = store.outbox.enqueue(sid, [upsert(1, 10), upsert(1, 12, "Ede"), upsert(1, 11)])
    assert tally == {"queued": 2, "superseded": 1}
    batch = store.outbox.claim("upsert", 100)
    assert batch is not None
    rows = store.outbox.rows(batch)
    assert [r.payload["shipping_address"]["city"] for r in rows] == ["Ede"]
    assert store.submission(sid)["superseded"] == 2


def test_an_order_in_flight_is_not_claimed_twice(store: Store) -> None:
    sid = store.open_submission()
    store.outbox.enqueue(sid, [upsert(1, 10)])
    first = store.outbox.claim("upsert", 100)
    store.outbox.enqueue(sid, [upsert(1, 11)])
    assert store.outbox.claim("upsert", 100) is None  # v11 waits for v10 to land
    assert first is not None
    rows = store.outbox.rows(first)
    store.outbox.mark_posted(first, {rows[0].key: 7})
    second = store.outbox.claim("upsert", 100)
    assert second is not None  # posted is not in flight: the newer version may go


def test_a_due_claim_takes_nothing_once_the_old_rows_are_gone(store: Store) -> None:
    """The flush saw an old row; a racing full claim took it. What is left is young: the
    flush's partial claim must not send it as a crumb (`due_by`)."""
    import time

    sid = store.open_submission()
    store.outbox.enqueue(sid, [upsert(1), upsert(2)])
    cutoff = time.time()
    time.sleep(0.01)
    store.outbox.enqueue(sid, [upsert(3)])
    old = store.outbox.claim("upsert", 2)  # the racing claim, oldest first
    assert old is not None
    assert {r.key[1] for r in store.outbox.rows(old)} == {"A-1", "A-2"}
    assert store.outbox.claim("upsert", 100, due_by=cutoff) is None
    young = store.outbox.claim("upsert", 100, due_by=time.time())
    assert young is not None
    assert [r.key[1] for r in store.outbox.rows(young)] == ["A-3"]


def test_settle_then_same_payload_is_unchanged(store: Store) -> None:
    sid = store.open_submission()
    store.outbox.enqueue(sid, [upsert(1)])
    batch = store.outbox.claim("upsert", 100)
    assert batch is not None
    row = store.outbox.rows(batch)[0]
    store.outbox.mark_posted(batch, {row.key: 42})
    store.outbox.settle([row.id])
    store.close_submission(sid)
    entry = store.outbox.ledger_entry((101, "A-1"))
    assert entry is not None and entry.sendcloud_id == 42 and entry.state == "confirmed"
    again = store.open_submission()
    assert store.outbox.enqueue(again, [upsert(1)]) == {"unchanged": 1}
    assert store.outbox.enqueue(again, [upsert(1, 9)]) == {"superseded": 1}
    store.close_submission(again)
    assert store.is_settled(sid) is False or store.submission(sid)["upserted"] == 1
    assert store.summary(again)["unchanged"] == 1


def test_dead_letters_keep_the_record_and_errors(store: Store) -> None:
    sid = store.open_submission()
    store.outbox.enqueue(sid, [upsert(1), upsert(2)])
    batch = store.outbox.claim("upsert", 100)
    assert batch is not None
    rows = store.outbox.rows(batch)
    store.outbox.dead_letter({rows[0].id: [FieldError("/order_id", "bad")]},
                             "rejected by Sendcloud")
    letters = store.dead_letters(submission_id=sid)
    assert len(letters) == 1
    assert letters[0].record["order_id"] == rows[0].key[1]
    assert letters[0].errors == [{"pointer": "/order_id", "detail": "bad"}]
    assert store.submission(sid)["dead_lettered"] == 1
    store.mark_replayed([letters[0].id])
    assert store.dead_letters(submission_id=sid) == []


def test_reposting_behind_a_newer_version_supersedes(store: Store) -> None:
    sid = store.open_submission()
    store.outbox.enqueue(sid, [upsert(1, 10)])
    batch = store.outbox.claim("upsert", 100)
    assert batch is not None
    old = store.outbox.rows(batch)[0]
    store.outbox.mark_posted(batch, {})
    store.outbox.enqueue(sid, [upsert(1, 11)])
    store.outbox.repost([old.id])
    assert store.outbox.pending_counts()["upsert"][0] == 1
    assert store.submission(sid)["superseded"] == 1


def test_concurrent_claims_never_share_a_row(store: Store) -> None:
    sid = store.open_submission()
    store.outbox.enqueue(sid, [upsert(n) for n in range(300)])
    claimed: list[str] = []
    lock = threading.Lock()

    def claimer() -> None:
        while (batch := store.outbox.claim("upsert", 7)) is not None:
            with lock:
                claimed.append(batch)

    threads = [threading.Thread(target=claimer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    keys: list[Any] = [r.key for b in claimed for r in store.outbox.rows(b)]
    assert len(keys) == 300 == len(set(keys))


def test_a_pooled_connection_killed_while_idle_is_replaced(
        database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ping per checkout (pipeline.db.IDLE_PING): a connection the server dropped while it
    sat idle in the pool (a PostgreSQL restart, an idle timeout) is still never handed out."""
    import time

    import psycopg
    from sqlalchemy import text

    import pipeline.db

    monkeypatch.setattr(pipeline.db, "IDLE_PING", 0.05)
    store = Store(database)
    try:
        with store.engine.connect() as one, store.engine.connect() as two:  # both pooled
            pids = [c.execute(text("SELECT pg_backend_pid()")).scalar_one() for c in (one, two)]
        with psycopg.connect(database.replace("postgresql+psycopg", "postgresql"),
                             autocommit=True) as killer:
            for pid in pids:
                killer.execute("SELECT pg_terminate_backend(%s)", (pid,))
        time.sleep(0.2)
        assert store.alerts() == {}
        assert store.alerts() == {}
    finally:
        store.close()
