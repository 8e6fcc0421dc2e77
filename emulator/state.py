"""The order store: records, versions, indexes, in-flight keys.

Every mutation runs synchronously on the event loop, so a check-then-write never interleaves
with another request: that is what makes the store correct under concurrent clients without
locks. Requests that must *hold* orders across an await (latency, slow answers) mark their keys
in `in_flight`; a second request touching one of those keys gets the documented conflict.

Asynchronous saving (`--visibility-delay`) is modelled with versions: each accepted write adds
a version that reads see only from `visible_at` on. Writes (upsert matching, PATCH, DELETE)
always see the newest version, as the real API's write path would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from emulator.persist import Row, SqliteFile
from emulator.validate import utc_micros

Key = tuple[int, str]  # (integration id, order_id): the upsert identity


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_HIDDEN = ("id", "created_at", "modified_at")  # what the view adds to a stored order


@dataclass(slots=True)
class Version:
    """One accepted state of an order.

    Kept as the JSON text of the API view, not as dicts: strings are invisible to the cyclic
    garbage collector and ~5x smaller, so a store of 100k orders neither bloats memory nor
    causes long GC pauses, and GETs are answered without encoding anything.
    """

    visible_at: float
    created_at: float
    modified_at: float
    text: str  # the order as the API shows it: `id` as a string, Sendcloud's timestamps
    # Derived once, for filters and sorting.
    order_number: str
    order_id_lc: str
    status_lc: str
    created_us: int | None
    updated_us: int | None
    order_number_lc: str = ""

    def __post_init__(self) -> None:
        self.order_number_lc = self.order_number.lower()

    @classmethod
    def make(cls, pk: int, order: dict[str, Any], visible_at: float, created_at: float,
             modified_at: float) -> Version:
        view: dict[str, Any] = {
            "id": str(pk),
            "order_id": order["order_id"],
            "order_number": order["order_number"],
            "created_at": iso(created_at),
            "modified_at": iso(modified_at),
        }
        for k, v in order.items():
            if k not in view:
                view[k] = v
        details = order["order_details"]
        return cls(
            visible_at, created_at, modified_at,
            json.dumps(view, ensure_ascii=False, separators=(",", ":")),
            order["order_number"], order["order_id"].lower(),
            details["status"]["code"].lower(),
            utc_micros(details.get("order_created_at")),
            utc_micros(details.get("order_updated_at")),
        )

    @property
    def order(self) -> dict[str, Any]:
        """The order as stored (as accepted, minus what the view adds)."""
        order: dict[str, Any] = json.loads(self.text)
        for k in _HIDDEN:
            del order[k]
        return order

    def to_json(self) -> dict[str, Any]:
        return {"visible_at": self.visible_at, "created_at": self.created_at,
                "modified_at": self.modified_at, "view": self.text}

    @classmethod
    def from_json(cls, pk: int, data: dict[str, Any]) -> Version:
        order: dict[str, Any] = json.loads(data["view"])
        for k in _HIDDEN:
            del order[k]
        return cls.make(pk, order, data["visible_at"], data["created_at"], data["modified_at"])


@dataclass(slots=True)
class Record:
    pk: int
    integration_id: int
    order_id: str
    versions: list[Version]
    deleted_at: float | None = None

    @property
    def latest(self) -> Version:
        return self.versions[-1]

    @property
    def key(self) -> Key:
        return (self.integration_id, self.order_id)

    def visible(self, now: float) -> Version | None:
        versions = self.versions
        last = versions[-1]
        if last.visible_at <= now:
            return last
        for v in reversed(versions):
            if v.visible_at <= now:
                return v
        return None

    def add(self, version: Version, now: float) -> None:
        # Keep only what a reader can still see: the newest visible version and newer ones.
        kept = [v for v in self.versions if v.visible_at > now]
        current = self.visible(now)
        self.versions = ([current] if current is not None else []) + kept + [version]

    def row(self) -> Row:
        return (self.pk, self.integration_id, self.order_id,
                [v.to_json() for v in self.versions], self.deleted_at)


@dataclass
class Store:
    visibility_delay: float = 0.0
    db: SqliteFile | None = None
    records: dict[int, Record] = field(default_factory=dict)  # live orders, ascending pk
    deleted: dict[int, Record] = field(default_factory=dict)
    by_key: dict[Key, int] = field(default_factory=dict)
    by_order_id: dict[str, set[int]] = field(default_factory=dict)  # lower-cased order_id
    # Every pk ever indexed, ascending (pks only grow): lets a pk-sorted page start at its
    # cursor by bisection. Deleted pks stay in it and are skipped on the walk.
    pk_list: list[int] = field(default_factory=list)
    next_pk: int = 1
    in_flight: set[Key] = field(default_factory=set)

    def load(self) -> None:
        if self.db is None:
            return
        rows, self.next_pk = self.db.load()
        for pk, integration_id, order_id, versions, deleted_at in rows:
            record = Record(pk, integration_id, order_id,
                            [Version.from_json(pk, v) for v in versions], deleted_at)
            if deleted_at is None:
                self._index(record)
            else:
                self.deleted[pk] = record

    # --- lookups ---------------------------------------------------------------------------

    def get(self, pk: int, integrations: frozenset[int]) -> Record | None:
        record = self.records.get(pk)
        if record is None or record.integration_id not in integrations:
            return None
        return record

    def find(self, key: Key) -> Record | None:
        pk = self.by_key.get(key)
        return None if pk is None else self.records[pk]

    def count(self) -> int:
        return len(self.records)

    # --- in-flight keys (real overlap → conflict) ------------------------------------------

    def try_hold(self, keys: set[Key]) -> bool:
        if not keys.isdisjoint(self.in_flight):
            return False
        self.in_flight |= keys
        return True

    def release(self, keys: set[Key]) -> None:
        self.in_flight -= keys

    # --- writes ----------------------------------------------------------------------------

    def upsert(self, orders: list[tuple[dict[str, Any], int | None]], now: float
               ) -> list[dict[str, Any]]:
        """Apply a validated, planned batch: (order, targeted pk or None) pairs, in order."""
        visible_at = now + self.visibility_delay
        answer: list[dict[str, Any]] = []
        touched: list[Record] = []
        for order, target in orders:
            key: Key = (order["order_details"]["integration"]["id"], order["order_id"])
            pk = target if target is not None else self.by_key.get(key)
            if pk is not None:
                record = self.records[pk]
                version = Version.make(pk, order, visible_at, record.latest.created_at, now)
                self._replace(record, version, now)
            else:
                pk = self.next_pk
                self.next_pk += 1
                record = Record(pk, key[0], key[1], [Version.make(pk, order, visible_at, now, now)])
                self._index(record)
            touched.append(record)
            answer.append({"id": pk, "order_id": order["order_id"],
                           "order_number": order["order_number"]})
        self._persist(touched)
        return answer

    def replace(self, record: Record, order: dict[str, Any], now: float) -> None:
        """A PATCH: the merged order becomes the newest version."""
        version = Version.make(record.pk, order, now + self.visibility_delay,
                               record.latest.created_at, now)
        self._replace(record, version, now)
        self._persist([record])

    def delete(self, record: Record, now: float) -> None:
        # Deletion is immediate (the answer is a synchronous 204), visibility delay or not.
        record.deleted_at = now
        del self.records[record.pk]
        del self.by_key[record.key]
        ids = self.by_order_id.get(record.order_id.lower())
        if ids is not None:
            ids.discard(record.pk)
            if not ids:
                del self.by_order_id[record.order_id.lower()]
        self.deleted[record.pk] = record
        self._persist([record])

    def reset(self) -> None:
        # Ids keep counting up: a client's stale id must never name a new order.
        self.records.clear()
        self.deleted.clear()
        self.by_key.clear()
        self.by_order_id.clear()
        self.pk_list.clear()
        if self.db is not None:
            self.db.clear(self.next_pk)

    def _replace(self, record: Record, version: Version, now: float) -> None:
        if self.visibility_delay <= 0:
            record.versions = [version]
        else:
            record.add(version, now)

    def _index(self, record: Record) -> None:
        self.records[record.pk] = record
        self.pk_list.append(record.pk)
        self.by_key[record.key] = record.pk
        self.by_order_id.setdefault(record.order_id.lower(), set()).add(record.pk)

    def _persist(self, records: list[Record]) -> None:
        if self.db is not None:
            self.db.save([r.row() for r in records], self.next_pk)
