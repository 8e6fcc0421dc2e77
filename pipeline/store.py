"""The state store: submissions and how their records ended, staged chunks, dead letters,
request counters. The outbox and ledger live in `pipeline.outbox_store` (`Store.outbox`).

Every state change is written before the Celery message that caused it is acknowledged, so a
worker killed at any point leaves nothing lost: the redelivered message finds the state as it was.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update

from pipeline.accounting import bump_outcomes, insert_dead_letter
from pipeline.codec import dumps, exact_dumps, exact_loads, loads
from pipeline.db import insert_for, make_engine, reader, transaction
from pipeline.outbox_store import OutboxStore
from pipeline.tables import alerts, chunks, counters, dead_letters, meta, outbox, submissions

OUTCOMES = ("upserted", "confirmed", "patched", "deleted", "unchanged", "superseded",
            "dead_lettered")
# Every record ends in exactly one of these; `confirmed` only follows `upserted`.
TERMINAL = ("upserted", "patched", "deleted", "unchanged", "superseded", "dead_lettered")
REQUEST_COUNTERS = ("POST", "GET", "PATCH", "DELETE", "retried", "rate_limited")


@dataclass(frozen=True)
class DeadLetter:
    id: int
    submission_id: str | None
    integration_id: int | None
    order_id: str | None
    record: Any
    reason: str
    errors: list[dict[str, str]]
    attempts: int
    first_seen: float
    last_seen: float
    replayed_at: float | None

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "integration_id": self.integration_id, "order_id": self.order_id,
                "reason": self.reason, "errors": self.errors}


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.reader = reader(self.engine)  # single-statement reads
        self.outbox = OutboxStore(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- submissions ----------------------------------------------------------------------------

    def open_submission(self) -> str:
        sid = uuid.uuid4().hex
        with transaction(self.engine) as conn:
            conn.execute(submissions.insert().values(
                id=sid, created_at=time.time(), closed=False, records=0,
                **dict.fromkeys(OUTCOMES, 0)))
        return sid

    def close_submission(self, sid: str) -> None:
        """No more records will be added: from now on the submission can be settled."""
        with transaction(self.engine) as conn:
            conn.execute(update(submissions).where(submissions.c.id == sid).values(closed=True))

    def submission(self, sid: str) -> dict[str, Any]:
        with self.reader.connect() as conn:
            row = conn.execute(select(submissions).where(submissions.c.id == sid)).mappings().one()
        return dict(row)

    def is_settled(self, sid: str) -> bool:
        row = self.submission(sid)
        return bool(row["closed"]) and sum(row[name] for name in TERMINAL) >= row["records"]

    def summary(self, sid: str, requests: Mapping[str, int] | None = None) -> dict[str, Any]:
        """The CONTRACT §3 summary of one submission."""
        row = self.submission(sid)
        out: dict[str, Any] = {"records": row["records"]}
        out.update({name: row[name] for name in OUTCOMES})
        out["requests"] = {name: int((requests or {}).get(name, 0)) for name in REQUEST_COUNTERS}
        out["dead_letters"] = [d.summary() for d in self.dead_letters(submission_id=sid)]
        return out

    # -- chunks: records between normalize, validate and batch -----------------------------------

    def stage_chunk(self, sid: str, records: Sequence[Any]) -> str:
        """Records handed over by a producer, written before any message names them."""
        chunk_id = uuid.uuid4().hex
        with transaction(self.engine) as conn:
            conn.execute(chunks.insert().values(
                id=chunk_id, submission_id=sid, stage="raw", body=exact_dumps(list(records)),
                created_at=time.time()))
            conn.execute(update(submissions).where(submissions.c.id == sid)
                         .values(records=submissions.c.records + len(records)))
        return chunk_id

    def read_chunk(self, chunk_id: str) -> tuple[str, str, list[Any]] | None:
        """(submission id, stage, items), or None when the chunk was already batched."""
        with self.reader.connect() as conn:
            row = conn.execute(select(chunks).where(chunks.c.id == chunk_id)).mappings().first()
        if row is None:
            return None
        # Raw records are kept exactly as the producer sent them; later stages are our own.
        body = exact_loads(row["body"]) if row["stage"] == "raw" else loads(row["body"])
        return row["submission_id"], row["stage"], body

    def advance_chunk(self, chunk_id: str, stage: str, items: Sequence[Any],
                      rejects: Iterable[tuple[Any, Any]] = (), *, came_from: str) -> bool:
        """Replace a chunk's items with the next stage's, and dead-letter the records that
        stage rejected, in one transaction. Compare-and-set on the stage: when the same message
        runs twice at once (redelivered while its first worker is still busy, e.g. across a
        broker restart), only one of them counts; the other changes nothing and gets False."""
        with transaction(self.engine) as conn:
            sid = conn.execute(update(chunks).where(chunks.c.id == chunk_id,
                                                    chunks.c.stage == came_from)
                               .values(stage=stage, body=dumps(list(items)))
                               .returning(chunks.c.submission_id)).scalar()
            if sid is None:
                return False
            tally: Counter[tuple[str, str]] = Counter()
            for record, rejected in rejects:
                insert_dead_letter(conn, sid, getattr(rejected, "key", None), record,
                                   rejected.reason, rejected.errors, attempts=0)
                tally[(sid, "dead_lettered")] += 1
            bump_outcomes(conn, tally)
            return True

    def staged_count(self) -> int:
        with self.reader.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(chunks)).scalar_one())

    def staged_chunks(self, older_than: float | None = None) -> list[tuple[str, int]]:
        """(chunk id, record count) of every chunk not yet batched (staged before
        `older_than`, if given: those whose chain of messages is presumed lost). Their clocks
        restart, so a chunk is started again at most once per period."""
        query = select(chunks.c.id, chunks.c.body)
        if older_than is not None:
            query = query.where(chunks.c.created_at < older_than)
        with transaction(self.engine) as conn:
            rows = conn.execute(query).all()
            if older_than is not None and rows:
                conn.execute(update(chunks).where(chunks.c.id.in_([r[0] for r in rows]))
                             .values(created_at=time.time()))
        return [(chunk_id, len(exact_loads(body))) for chunk_id, body in rows]

    # -- dead letters ---------------------------------------------------------------------------

    def dead_letters(self, *, submission_id: str | None = None, include_replayed: bool = False,
                     limit: int | None = None, offset: int = 0) -> list[DeadLetter]:
        query = select(dead_letters).order_by(dead_letters.c.id).offset(offset)
        if submission_id is not None:
            query = query.where(dead_letters.c.submission_id == submission_id)
        if not include_replayed:
            query = query.where(dead_letters.c.replayed_at.is_(None))
        if limit is not None:
            query = query.limit(limit)
        with self.reader.connect() as conn:
            return [_dead_letter(row) for row in conn.execute(query).mappings()]

    def dead_letter(self, dl_id: int) -> DeadLetter | None:
        with self.reader.connect() as conn:
            row = conn.execute(select(dead_letters)
                               .where(dead_letters.c.id == dl_id)).mappings().first()
        return _dead_letter(row) if row is not None else None

    def mark_replayed(self, ids: Sequence[int]) -> None:
        with transaction(self.engine) as conn:
            conn.execute(update(dead_letters).where(dead_letters.c.id.in_(ids))
                         .values(replayed_at=time.time()))

    # -- counters and status --------------------------------------------------------------------

    def bump(self, name: str, n: int = 1) -> None:
        # One atomic statement: two workers creating the same counter at once must both count.
        with transaction(self.engine) as conn:
            statement = insert_for(conn)(counters).values(name=name, value=n)
            conn.execute(statement.on_conflict_do_update(
                index_elements=[counters.c.name], set_={"value": counters.c.value + n}))

    def counters(self) -> dict[str, int]:
        with self.reader.connect() as conn:
            return {r.name: int(r.value) for r in conn.execute(select(counters))}

    def status(self) -> dict[str, Any]:
        """Counts of orders by state, for `ordersync status`."""
        from pipeline.tables import ledger  # local: only the status view needs it

        with self.reader.connect() as conn:
            by_ledger: dict[str, int] = dict(conn.execute(select(ledger.c.state, func.count())
                                          .group_by(ledger.c.state)).all())
            by_outbox = conn.execute(select(outbox.c.state, outbox.c.kind, func.count())
                                     .group_by(outbox.c.state, outbox.c.kind)).all()
            dead = conn.execute(select(func.count()).select_from(dead_letters)
                                .where(dead_letters.c.replayed_at.is_(None))).scalar_one()
            staged = conn.execute(select(func.count()).select_from(chunks)).scalar_one()
        return {
            "orders": {"confirmed": int(by_ledger.get("confirmed", 0)),
                       "deleted": int(by_ledger.get("deleted", 0))},
            "outbox": {f"{state}_{kind}": int(n) for state, kind, n in by_outbox},
            "dead_letters": int(dead),
            "staged_chunks": int(staged),
            "requests": self.counters(),
            "alerts": self.alerts(),
        }

    # -- shared flags ---------------------------------------------------------------------------

    def claim_flag(self, name: str, until: float) -> bool:
        """Set flag `name` to `until` unless it already points past now: True when we set it.
        Used so that one flush is scheduled at a time, not one per batch message."""
        now = time.time()
        with transaction(self.engine) as conn:
            conn.execute(insert_for(conn)(meta).values(name=name, value=0.0)
                         .on_conflict_do_nothing(index_elements=[meta.c.name]))
            # Atomic test-and-set: of two workers racing, exactly one sees a row updated.
            taken = conn.execute(update(meta).where(meta.c.name == name, meta.c.value <= now)
                                 .values(value=until)).rowcount
            return bool(taken)

    def set_alert(self, name: str, message: str) -> None:
        """A condition operators must act on (e.g. wrong credentials); shown by `status`,
        ends a waiting `sync`, pauses dispatching until cleared."""
        with transaction(self.engine) as conn:
            conn.execute(alerts.delete().where(alerts.c.name == name))
            conn.execute(alerts.insert().values(name=name, message=message, at=time.time()))

    def alerts(self) -> dict[str, str]:
        with self.reader.connect() as conn:
            return {r.name: r.message for r in conn.execute(select(alerts))}

    def clear_alert(self, name: str) -> None:
        with transaction(self.engine) as conn:
            conn.execute(alerts.delete().where(alerts.c.name == name))

    def clear_flag(self, name: str) -> None:
        with transaction(self.engine) as conn:
            conn.execute(update(meta).where(meta.c.name == name).values(value=0.0))


def _dead_letter(row: Any) -> DeadLetter:
    return DeadLetter(
        id=row["id"], submission_id=row["submission_id"], integration_id=row["integration_id"],
        order_id=row["order_id"], record=exact_loads(row["record"]), reason=row["reason"],
        errors=exact_loads(row["errors"]), attempts=row["attempts"], first_seen=row["first_seen"],
        last_seen=row["last_seen"], replayed_at=row["replayed_at"])
