"""The outbox and the ledger: what is waiting to be sent, what is in flight, and what Sendcloud
is known to hold. The rules for an incoming operation are in `pipeline.outbox` (pure); this
module is the transactions around them.

Row states: pending (one per order at most) → inflight (claimed into a batch; no order is in two
in-flight batches, so the pipeline never causes its own conflicts) → posted (the API accepted it,
waiting for confirmation) → gone (settled into the ledger, or dead-lettered).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import aliased

from pipeline.accounting import bump_outcomes, insert_dead_letter
from pipeline.codec import dumps, loads
from pipeline.db import lock_keys, reader, transaction
from pipeline.errors import FieldError, RecordRejected
from pipeline.outbox import Known, Parts, Ref, Verdict, decide
from pipeline.patching import apply_patch, payload_hash
from pipeline.records import Operation, OrderKey
from pipeline.tables import chunks, ledger, outbox


@dataclass(frozen=True)
class OutboxRow:
    id: int
    key: OrderKey
    kind: str
    version: str
    payload_data: dict[str, Any] | None  # None: decode `payload_json` on first use (`payload`)
    refs: list[Ref]
    attempts: int
    throttled: int
    sendcloud_id: int | None
    reposted: bool
    state: str
    parts_json: str | None = None  # Parts.to_json() as stored; decoded on first use (`parts`)
    batch_id: str | None = None
    # The payload as stored and its hash, when read from the store: settling writes them to
    # the ledger as they are instead of encoding and hashing every order again.
    payload_json: str = ""
    digest: str = ""

    @cached_property
    def payload(self) -> dict[str, Any]:
        """Decoded on first use: settling a batch, for one, never needs it for upserts."""
        if self.payload_data is not None:
            return self.payload_data
        decoded: dict[str, Any] = loads(self.payload_json)
        return decoded

    @cached_property
    def parts(self) -> Parts | None:
        """Only enqueue and send need the parts; confirm does not decode them."""
        return Parts.from_json(loads(self.parts_json)) if self.parts_json else None

    def as_record(self) -> dict[str, Any]:
        """The row as a producer record (CONTRACT §1): what a dead letter keeps for replay."""
        if self.kind == "upsert":
            return self.payload
        record: dict[str, Any] = {"op": self.kind, "integration_id": self.key[0],
                                  "order_id": self.key[1], "version": self.version}
        if self.kind == "patch":
            record["changes"] = self.payload
        return record


@dataclass(frozen=True)
class LedgerEntry:
    state: str
    version: str
    payload: dict[str, Any] | None
    sendcloud_id: int | None


LEASE = 60.0  # seconds a task may hold a batch between touches (limiter waits, slow POSTs)


def version_text(value: datetime) -> str:
    """Canonical UTC text of a version: compares the same as strings and as times."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


class OutboxStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.reader = reader(engine)  # single-statement reads

    # -- enqueue --------------------------------------------------------------------------------

    def enqueue(self, sid: str, ops: Sequence[Operation],
                chunk_id: str | None = None) -> Counter[str]:
        """Put operations into the outbox (coalescing, superseding, folding patches) and drop
        the chunk they came from, in one transaction. Returns the count of each verdict.

        The rows and ledger entries of all the chunk's orders are read in two queries and the
        decisions made in memory (a later operation on the same order sees the earlier one's
        pending row), then written back in bulk."""
        tally: Counter[str] = Counter()
        outcomes: Counter[tuple[str, str]] = Counter()
        with transaction(self.engine) as conn:
            if chunk_id is not None and not conn.execute(
                    chunks.delete().where(chunks.c.id == chunk_id)).rowcount:
                return tally  # the same chunk was batched by a twin delivery: count it once
            keys = list(dict.fromkeys(op.key for op in ops))
            lock_keys(conn, keys)
            rows = self._rows_by_key(conn, keys, lock=True)
            ledgers = {key: _ledger_known(e) for key, e in _ledger_entries(conn, keys).items()}
            plan = _EnqueuePlan(rows)
            for op in ops:
                verdict = plan.apply(op, sid, ledgers.get(op.key), outcomes)
                tally[verdict] += 1
            plan.write(conn)
            for op, reason in plan.dead:
                insert_dead_letter(conn, sid, op.key, _op_record(op), reason,
                                   [FieldError("", reason)], attempts=0)
            bump_outcomes(conn, outcomes)
        return tally

    def _rows_by_key(self, conn: Connection, keys: Sequence[OrderKey],
                     lock: bool = False) -> dict[OrderKey, list[OutboxRow]]:
        out: dict[OrderKey, list[OutboxRow]] = {}
        for integration_id, order_ids in _by_integration(keys):
            query = select(outbox).where(outbox.c.integration_id == integration_id,
                                         outbox.c.order_id.in_(order_ids))
            if lock:
                query = query.with_for_update()
            for r in conn.execute(query).mappings():
                row = _row(r)
                out.setdefault(row.key, []).append(row)
        return out

    def _rows_for(self, conn: Connection, key: OrderKey, states: Sequence[str],
                  lock: bool = False) -> list[OutboxRow]:
        query = select(outbox).where(outbox.c.integration_id == key[0],
                                     outbox.c.order_id == key[1], outbox.c.state.in_(states))
        if lock:
            query = query.with_for_update()
        return [_row(r) for r in conn.execute(query).mappings()]

    def ledger_entry(self, key: OrderKey) -> LedgerEntry | None:
        with self.reader.connect() as conn:
            return _ledger_entry(conn, key)

    # -- claiming batches -----------------------------------------------------------------------

    def claim(self, kind: str, limit: int, *, older_than: float | None = None,
              full: bool = False, due_by: float | None = None) -> str | None:
        """Claim up to `limit` pending rows of `kind` (oldest first) into a new batch, skipping
        orders that are already in flight. With `full`, only exactly `limit` rows or nothing
        (so racing dispatchers never split a batch into a full one and crumbs). With `due_by`,
        nothing unless the oldest row claimed was enqueued by then: a flush that saw an old
        row must not take the young crumbs a racing full claim left behind. Returns the batch
        id, or None if nothing was ready."""
        other = aliased(outbox)
        # A patch or delete also waits for a posted upsert to be confirmed: deleting an order
        # whose confirmation is still pending would make that confirmation fail.
        busy_states = ("inflight",) if kind == "upsert" else ("inflight", "posted")
        busy = exists().where(and_(other.c.integration_id == outbox.c.integration_id,
                                   other.c.order_id == outbox.c.order_id,
                                   other.c.state.in_(busy_states)))
        query = (select(outbox.c.id, outbox.c.enqueued_at)
                 .where(outbox.c.state == "pending", outbox.c.kind == kind, ~busy)
                 .order_by(outbox.c.enqueued_at, outbox.c.id).limit(limit))
        if older_than is not None:
            query = query.where(outbox.c.enqueued_at <= older_than)
        batch_id = uuid.uuid4().hex
        with transaction(self.engine) as conn:
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = conn.execute(query).all()
            if not rows or (full and len(rows) < limit) \
                    or (due_by is not None and rows[0].enqueued_at > due_by):
                return None
            ids = [row.id for row in rows]
            conn.execute(update(outbox).where(outbox.c.id.in_(ids)).values(
                state="inflight", batch_id=batch_id, lease_until=time.time() + LEASE))
        return batch_id

    def unsettled(self) -> int:
        """Rows not yet settled in any state: while there are some, flushes keep coming."""
        with self.reader.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(outbox)).scalar_one())

    def pending_counts(self) -> dict[str, tuple[int, float | None]]:
        """kind → (pending rows, enqueue time of the oldest)."""
        with self.reader.connect() as conn:
            rows = conn.execute(select(outbox.c.kind, func.count(), func.min(outbox.c.enqueued_at))
                                .where(outbox.c.state == "pending")
                                .group_by(outbox.c.kind)).all()
        return {kind: (int(n), oldest) for kind, n, oldest in rows}

    def rows(self, batch_id: str) -> list[OutboxRow]:
        with self.reader.connect() as conn:
            result = conn.execute(select(outbox).where(outbox.c.batch_id == batch_id)
                                  .order_by(outbox.c.id)).mappings()
            return [_row(r) for r in result]

    def begin_attempt(self, batch_id: str) -> None:
        """Count an attempt and extend the lease, so the reaper leaves a live batch alone."""
        with transaction(self.engine) as conn:
            conn.execute(update(outbox).where(outbox.c.batch_id == batch_id).values(
                attempts=outbox.c.attempts + 1, lease_until=time.time() + LEASE))

    def extend_lease(self, batch_id: str, seconds: float) -> None:
        """The batch's task will come back in `seconds` (a retry countdown): keep it claimed."""
        with transaction(self.engine) as conn:
            conn.execute(update(outbox).where(outbox.c.batch_id == batch_id).values(
                lease_until=time.time() + seconds + LEASE))

    def note_throttled(self, batch_id: str) -> None:
        """The last attempt was answered 429: count it against the rate-limit budget instead."""
        with transaction(self.engine) as conn:
            conn.execute(update(outbox).where(outbox.c.batch_id == batch_id).values(
                attempts=outbox.c.attempts - 1, throttled=outbox.c.throttled + 1))

    def split(self, batch_id: str, groups: Sequence[Sequence[int]]) -> list[str]:
        """Move groups of a batch's rows (by row id) into new in-flight batches (bisection)."""
        new_ids = []
        with transaction(self.engine) as conn:
            for group in groups:
                new_id = uuid.uuid4().hex
                conn.execute(update(outbox).where(outbox.c.batch_id == batch_id,
                                                  outbox.c.id.in_(list(group)))
                             .values(batch_id=new_id, lease_until=time.time() + LEASE))
                new_ids.append(new_id)
        return new_ids

    def mark_posted(self, batch_id: str, ids: Mapping[OrderKey, int]) -> None:
        """The API accepted the batch: remember Sendcloud's ids, wait for confirmation."""
        lease = time.time() + LEASE
        with transaction(self.engine) as conn:
            rows = conn.execute(select(outbox.c.id, outbox.c.integration_id, outbox.c.order_id,
                                       outbox.c.sendcloud_id)
                                .where(outbox.c.batch_id == batch_id)).all()
            if not rows:
                return
            conn.execute(update(outbox).where(outbox.c.id == bindparam("row_id")).values(
                state="posted", sendcloud_id=bindparam("sc_id"), lease_until=lease),
                [{"row_id": r.id, "sc_id": ids.get((int(r.integration_id), r.order_id),
                                                   r.sendcloud_id)} for r in rows])

    # -- endings ----------------------------------------------------------------------------------

    def settle(self, row_ids: Sequence[int],
               sendcloud_ids: Mapping[int, int] | None = None) -> None:
        """The rows reached Sendcloud: write the ledger (never backwards in version), count each
        record's outcome, remove the rows."""
        outcomes: Counter[tuple[str, str]] = Counter()
        with transaction(self.engine) as conn:
            rows = self._locked(conn, row_ids)
            entries = _ledger_entries(conn, [r.key for r in rows])
            inserts: list[dict[str, Any]] = []
            updates: list[dict[str, Any]] = []
            for row in sorted(rows, key=lambda r: r.version):
                sc_id = (sendcloud_ids or {}).get(row.id, row.sendcloud_id)
                entry = entries.get(row.key)
                values = _ledger_values(entry, row, sc_id)
                if values is not None:
                    entries[row.key] = LedgerEntry(values["state"], row.version, None,
                                                   values["sendcloud_id"])
                    if entry is None:
                        inserts.append(values)
                    else:
                        updates.append(values)
                for sid, outcome in row.refs:
                    outcomes[(sid, outcome)] += 1
            _write_ledger(conn, inserts, updates)
            conn.execute(outbox.delete().where(outbox.c.id.in_([r.id for r in rows])))
            bump_outcomes(conn, outcomes)


    def dead_letter(self, errors_by_row: Mapping[int, Sequence[FieldError]], reason: str,
                    api_errors: Sequence[dict[str, Any]] = ()) -> None:
        """These rows cannot be sent: keep each with its payload, reason and errors."""
        outcomes: Counter[tuple[str, str]] = Counter()
        with transaction(self.engine) as conn:
            for row in self._locked(conn, list(errors_by_row)):
                errors = list(errors_by_row[row.id])
                for sid in dict.fromkeys(sid for sid, _ in row.refs):
                    insert_dead_letter(conn, sid, row.key, row.as_record(), reason, errors,
                                       attempts=row.attempts)
                for sid, _ in row.refs:
                    outcomes[(sid, "dead_lettered")] += 1
            conn.execute(outbox.delete().where(outbox.c.id.in_(list(errors_by_row))))
            bump_outcomes(conn, outcomes)

    def supersede(self, row_ids: Sequence[int]) -> None:
        """Rows a newer settled version made moot: their records count as superseded."""
        with transaction(self.engine) as conn:
            rows = self._locked(conn, row_ids)
            bump_outcomes(conn, Counter((sid, "superseded") for r in rows for sid, _ in r.refs))
            conn.execute(outbox.delete().where(outbox.c.id.in_([r.id for r in rows])))

    def hold(self, row_id: int, seconds: float) -> None:
        """Back to pending, claimable again only after `seconds` (its order may still come)."""
        with transaction(self.engine) as conn:
            for row in self._locked(conn, [row_id]):
                self._back_to_pending(conn, row, reposted=True)
            conn.execute(update(outbox).where(outbox.c.id == row_id, outbox.c.state == "pending")
                         .values(enqueued_at=time.time() + seconds))

    def release(self, batch_id: str) -> None:
        """Put a batch's rows back to pending (the operator must fix something first)."""
        with transaction(self.engine) as conn:
            ids = [r.id for r in self._batch_rows(conn, batch_id)]
            for row in self._locked(conn, ids):
                if row.batch_id == batch_id:  # still ours under the locks
                    self._back_to_pending(conn, row)

    def repost(self, row_ids: Sequence[int]) -> None:
        """Posted rows that never became visible: send them once more."""
        with transaction(self.engine) as conn:
            for row in self._locked(conn, row_ids):
                self._back_to_pending(conn, row, reposted=True)

    def reap(self, now: float | None = None) -> int:
        """Rows whose lease ran out: their task's message was lost (a worker died between a
        claim and its publish, a publish failed). Back to pending, so they are sent again."""
        now = time.time() if now is None else now
        with transaction(self.engine) as conn:
            ids = list(conn.execute(select(outbox.c.id).where(
                outbox.c.state.in_(("inflight", "posted")), outbox.c.lease_until < now))
                .scalars())
            stale = [r for r in self._locked(conn, ids)
                     if r.state in ("inflight", "posted")]  # re-checked under the locks
            for row in stale:
                self._back_to_pending(conn, row)
        return len(stale)

    def _locked(self, conn: Connection, row_ids: Sequence[int]) -> list[OutboxRow]:
        """Lock the rows' order keys, then the rows (the order every writer uses), and read
        them as they are now."""
        lock_keys(conn, self._keys_of(conn, row_ids))
        return self._load(conn, row_ids)

    def _back_to_pending(self, conn: Connection, row: OutboxRow, reposted: bool = False) -> None:
        """A row returns to pending unless a newer pending row replaced it meanwhile, in which
        case its records are superseded (the newer one will be sent). The caller holds the
        row's locks (`_locked`)."""
        newer = [r for r in self._rows_for(conn, row.key, ("pending",), lock=True)
                 if r.id != row.id]
        if newer:
            bump_outcomes(conn, Counter((sid, "superseded") for sid, _ in row.refs))
            conn.execute(outbox.delete().where(outbox.c.id == row.id))
            return
        conn.execute(update(outbox).where(outbox.c.id == row.id).values(
            state="pending", batch_id=None, lease_until=None,
            reposted=row.reposted or reposted))

    def _batch_rows(self, conn: Connection, batch_id: str) -> list[OutboxRow]:
        result = conn.execute(select(outbox).where(outbox.c.batch_id == batch_id)).mappings()
        return [_row(r) for r in result]

    def _keys_of(self, conn: Connection, row_ids: Sequence[int]) -> list[OrderKey]:
        query = select(outbox.c.integration_id, outbox.c.order_id).where(
            outbox.c.id.in_(list(row_ids)))
        return [(int(i), o) for i, o in conn.execute(query)]

    def _load(self, conn: Connection, row_ids: Sequence[int]) -> list[OutboxRow]:
        """The rows, locked: two tasks ending the same row (a confirm that was presumed lost
        and its successor) must not both count its records; the second finds it gone."""
        query = select(outbox).where(outbox.c.id.in_(list(row_ids))).with_for_update()
        return [_row(r) for r in conn.execute(query).mappings()]


def _ledger_known(entry: LedgerEntry) -> Known:
    if entry.state == "deleted":
        kind = "delete"
    else:  # a confirmed order whose full payload we do not know can take patches only
        kind = "upsert" if entry.payload is not None else "patch"
    payload = entry.payload or {}
    return Known(kind, datetime.fromisoformat(entry.version), payload, payload_hash(payload))


def _by_integration(keys: Sequence[OrderKey], size: int = 200) -> list[tuple[int, list[str]]]:
    """Keys as (integration, ≤ `size` order ids) slices. Not `(integration_id, order_id) IN
    (…)`: SQLite answers a row-value IN list with a scan of the whole table, while
    `integration_id = ? AND order_id IN (…)` uses the key's index (and no IN list outgrows a
    backend's limit on bound parameters)."""
    grouped: dict[int, list[str]] = {}
    for integration_id, order_id in keys:
        grouped.setdefault(integration_id, []).append(order_id)
    return [(integration_id, ids[i:i + size]) for integration_id, ids in grouped.items()
            for i in range(0, len(ids), size)]


def _ledger_entries(conn: Connection, keys: Sequence[OrderKey]) -> dict[OrderKey, LedgerEntry]:
    out: dict[OrderKey, LedgerEntry] = {}
    for integration_id, order_ids in _by_integration(keys):
        result = conn.execute(select(ledger).where(
            ledger.c.integration_id == integration_id,
            ledger.c.order_id.in_(order_ids))).mappings()
        for r in result:
            out[(int(r["integration_id"]), r["order_id"])] = _ledger_row(r)
    return out


def _ledger_row(row: Any) -> LedgerEntry:
    return LedgerEntry(row["state"], row["version"],
                       loads(row["payload"]) if row["payload"] else None, row["sendcloud_id"])


def _ledger_entry(conn: Connection, key: OrderKey) -> LedgerEntry | None:
    return _ledger_entries(conn, [key]).get(key)


def _patched(entry: LedgerEntry | None, changes: Mapping[str, Any]) -> dict[str, Any] | None:
    """The full payload after a PATCH, when the one before it is known."""
    if entry is None or entry.state != "confirmed" or entry.payload is None:
        return None
    try:
        return apply_patch(entry.payload, changes)
    except RecordRejected:  # the API took it, so our model of the order was off: forget it
        return None


def _row(r: Any) -> OutboxRow:
    return OutboxRow(
        id=r["id"], key=(int(r["integration_id"]), r["order_id"]), kind=r["kind"],
        version=r["version"], payload_data=None,
        refs=[(sid, outcome) for sid, outcome in loads(r["refs"])], attempts=r["attempts"],
        throttled=r["throttled"] or 0, sendcloud_id=r["sendcloud_id"],
        reposted=bool(r["reposted"]), state=r["state"], parts_json=r["parts"] or None,
        batch_id=r["batch_id"], payload_json=r["payload"], digest=r["payload_hash"])


def _known(row: OutboxRow) -> Known:
    return Known(row.kind, datetime.fromisoformat(row.version), row.payload,
                 row.digest or payload_hash(row.payload), row.refs, row.parts)


def _newest_known(rows: Sequence[OutboxRow]) -> Known | None:
    if not rows:
        return None
    return _known(max(rows, key=lambda r: (r.version, r.id)))


def _op_record(op: Operation) -> dict[str, Any]:
    row = OutboxRow(0, op.key, op.kind, version_text(op.version), op.payload, [], 0, 0, None,
                    False, "")
    return row.as_record()


class _EnqueuePlan:
    """The decisions for one chunk, made in memory, written back in bulk."""

    def __init__(self, rows: dict[OrderKey, list[OutboxRow]]) -> None:
        self.pending: dict[OrderKey, tuple[int | None, Known]] = {}
        self.in_flight: dict[OrderKey, Known | None] = {}
        for key, key_rows in rows.items():
            for row in key_rows:
                if row.state == "pending":
                    self.pending[key] = (row.id, _known(row))
            self.in_flight[key] = _newest_known([r for r in key_rows if r.state != "pending"])
        self.changed: dict[OrderKey, dict[str, Any]] = {}
        self.dead: list[tuple[Operation, str]] = []

    def apply(self, op: Operation, sid: str, ledger_known: Known | None,
              outcomes: Counter[tuple[str, str]]) -> str:
        row_id, pending = self.pending.get(op.key, (None, None))
        decision = decide(op, sid, ledger=ledger_known, pending=pending,
                          in_flight=self.in_flight.get(op.key))
        if decision.verdict in (Verdict.SUPERSEDED, Verdict.UNCHANGED):
            outcome = "deleted" if decision.reason == "already deleted" else decision.verdict.value
            outcomes[(sid, outcome)] += 1
            return decision.verdict.value
        if decision.verdict is Verdict.DEAD:
            self.dead.append((op, decision.reason))
            outcomes[(sid, "dead_lettered")] += 1
            return decision.verdict.value
        for displaced_sid, _ in decision.displaced:
            outcomes[(displaced_sid, "superseded")] += 1
        digest = payload_hash(decision.payload)
        version = decision.version or op.version
        self.pending[op.key] = (row_id, Known(decision.kind, version, decision.payload,
                                              digest, decision.refs, decision.parts))
        self.changed[op.key] = dict(
            kind=decision.kind, version=version_text(version),
            parts=dumps(decision.parts.to_json()) if decision.parts is not None else None,
            payload=dumps(decision.payload), payload_hash=digest,
            refs=dumps([list(r) for r in decision.refs]))
        return "queued"

    def write(self, conn: Connection) -> None:
        now = time.time()
        updates, inserts = [], []
        for key, values in self.changed.items():
            row_id = self.pending[key][0]
            if row_id is not None:
                updates.append({"row_id": row_id, **values})
            else:
                inserts.append(dict(integration_id=key[0], order_id=key[1], state="pending",
                                    enqueued_at=now, attempts=0, throttled=0, reposted=False,
                                    **values))
        if updates:
            conn.execute(update(outbox).where(outbox.c.id == bindparam("row_id")), updates)
        if inserts:
            conn.execute(insert(outbox), inserts)


def _write_ledger(conn: Connection, inserts: list[dict[str, Any]],
                  updates: list[dict[str, Any]]) -> None:
    if inserts:
        conn.execute(insert(ledger), _dedupe(inserts))
    if updates:
        conn.execute(update(ledger).where(
            ledger.c.integration_id == bindparam("k_integration"),
            ledger.c.order_id == bindparam("k_order")).values(
            state=bindparam("state"), version=bindparam("version"),
            updated_at=bindparam("updated_at"), payload=bindparam("payload"),
            payload_hash=bindparam("payload_hash"), sendcloud_id=bindparam("sendcloud_id")),
            [{**{k: v for k, v in u.items() if k not in ("integration_id", "order_id")},
              "k_integration": u["integration_id"], "k_order": u["order_id"]} for u in updates])


def _dedupe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One insert per order: the last (newest) wins."""
    by_key = {(r["integration_id"], r["order_id"]): r for r in rows}
    return list(by_key.values())


def _ledger_values(entry: LedgerEntry | None, row: OutboxRow,
                   sc_id: int | None) -> dict[str, Any] | None:
    """The ledger row after `row` settled, or None when a newer version is already there."""
    if entry is not None and entry.version > row.version:
        return None  # a newer version was confirmed first: never go backwards
    text, digest = "", ""
    if row.kind == "delete":
        state = "deleted"
    elif row.kind == "patch":
        state, payload = "confirmed", _patched(entry, row.payload)
        if payload is not None:
            text, digest = dumps(payload), payload_hash(payload)
    else:
        state = "confirmed"
        text = row.payload_json or dumps(row.payload)
        digest = row.digest or payload_hash(row.payload)
    return dict(integration_id=row.key[0], order_id=row.key[1], state=state,
                version=row.version, updated_at=time.time(), payload=text, payload_hash=digest,
                sendcloud_id=sc_id if sc_id is not None else
                (entry.sendcloud_id if entry else None))
