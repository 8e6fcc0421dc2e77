"""The state store's tables (SQLAlchemy Core). SQLite by default, PostgreSQL by URL.

- submissions: one row per `submit`/`sync` call, with the count of records and how they ended;
- chunks: records staged between normalize → validate → batch, so that messages carry ids and
  Flower never shows a customer's address;
- outbox: operations waiting to be sent (one *pending* row per order) or in flight;
- ledger: what Sendcloud is known to hold per order (confirmed version, payload, id);
- dead_letters: what could not be sent, with the payload, reason, errors and attempts;
- counters: request counts for summaries; meta: small shared flags (flush scheduling).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# Versions are stored as canonical UTC ISO strings (`2026-01-02T03:04:05.000000+00:00`), which sort
# the same lexically and in time on every backend.
VERSION = String(40)

submissions = Table(
    "submissions", metadata,
    Column("id", String(36), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("closed", Boolean, nullable=False, default=False),
    Column("records", Integer, nullable=False, default=0),
    *(Column(name, Integer, nullable=False, default=0) for name in (
        "upserted", "confirmed", "patched", "deleted", "unchanged", "superseded", "dead_lettered",
    )),
)

chunks = Table(
    "chunks", metadata,
    Column("id", String(36), primary_key=True),
    Column("submission_id", String(36), nullable=False),
    Column("stage", String(16), nullable=False),  # raw | normalized | validated
    Column("body", Text, nullable=False),  # JSON list
    Column("created_at", Float, nullable=False),
)

outbox = Table(
    "outbox", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("integration_id", BigInteger, nullable=False),
    Column("order_id", String(255), nullable=False),
    Column("kind", String(8), nullable=False),  # upsert | patch | delete
    Column("version", VERSION, nullable=False),
    Column("payload", Text, nullable=False),
    Column("payload_hash", String(64), nullable=False),
    Column("refs", Text, nullable=False),  # JSON [[submission id, outcome on success], …]
    Column("parts", Text),  # JSON of pipeline.outbox.Parts: base order + newer patches
    Column("state", String(8), nullable=False),  # pending | inflight | posted
    Column("batch_id", String(36)),
    Column("enqueued_at", Float, nullable=False),
    # A claimed row belongs to its batch until then; past it, the row is presumed orphaned (its
    # message was lost) and goes back to pending. Every touch by a task extends it.
    Column("lease_until", Float),
    Column("attempts", Integer, nullable=False, default=0),
    # 429s have their own, larger budget: they say "later", not "something is wrong".
    Column("throttled", Integer, nullable=False, default=0),
    Column("sendcloud_id", BigInteger),
    Column("reposted", Boolean, nullable=False, default=False),
    Index("ix_outbox_key", "integration_id", "order_id", "state"),
    Index("ix_outbox_state", "state", "kind", "enqueued_at"),
    Index("ix_outbox_batch", "batch_id"),
)

ledger = Table(
    "ledger", metadata,
    Column("integration_id", BigInteger, primary_key=True, autoincrement=False),
    Column("order_id", String(255), primary_key=True),
    Column("state", String(10), nullable=False),  # confirmed | deleted
    Column("version", VERSION, nullable=False),
    Column("payload", Text, nullable=False),
    Column("payload_hash", String(64), nullable=False),
    Column("sendcloud_id", BigInteger),
    Column("updated_at", Float, nullable=False),
)

dead_letters = Table(
    "dead_letters", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("submission_id", String(36)),
    Column("integration_id", BigInteger),
    Column("order_id", String(255)),
    Column("record", Text, nullable=False),  # JSON: a record as a producer would send it
    Column("reason", Text, nullable=False),
    Column("errors", Text, nullable=False),  # JSON [{"pointer", "detail"}]
    Column("attempts", Integer, nullable=False, default=0),
    Column("first_seen", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("replayed_at", Float),
    Index("ix_dead_letters_submission", "submission_id"),
)

counters = Table(
    "counters", metadata,
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False, default=0),
)

meta = Table(
    "meta", metadata,
    Column("name", String(32), primary_key=True),
    Column("value", Float, nullable=False),
)

alerts = Table(
    "alerts", metadata,
    Column("name", String(32), primary_key=True),
    Column("message", Text, nullable=False),
    Column("at", Float, nullable=False),
)
