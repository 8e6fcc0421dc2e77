"""The ingest stages over one staged chunk of records: normalize → validate → batch.

Each stage reads the chunk, writes the next stage's items and its rejects (dead letters) in one
transaction, and does nothing when the chunk has already moved on: a redelivered message is
harmless. Rejected records never cost an API request.

The items a stage decodes are its own and are written out again at once, so operations share
payloads with their messages (`copy=False`): a deep copy per order per stage is CPU for nothing.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, tzinfo
from typing import Any

from pipeline.errors import FieldError, RecordRejected
from pipeline.records import Operation, parse_record, validate_operation
from pipeline.store import Store


def normalize_chunk(store: Store, chunk_id: str, *, now: datetime | None = None,
                    source_tz: tzinfo = UTC) -> int:
    """Raw records → normalized operations. Returns how many records were rejected."""
    chunk = store.read_chunk(chunk_id)
    if chunk is None or chunk[1] != "raw":
        return 0
    now = now or datetime.now(UTC)
    ops: list[dict[str, Any]] = []
    rejects: list[tuple[Any, RecordRejected]] = []
    for record in chunk[2]:
        try:
            ops.append(parse_record(record, now=now, source_tz=source_tz).to_message(copy=False))
        except RecordRejected as rejected:
            rejects.append((record, rejected))
        except Exception as exc:  # a bug must cost one record, not the chunk: keep it, say why
            rejects.append((record, RecordRejected(f"cannot be read: {type(exc).__name__}",
                                                   [FieldError("", str(exc)[:200])])))
    store.advance_chunk(chunk_id, "normalized", ops, rejects, came_from="raw")
    return len(rejects)


def validate_chunk(store: Store, chunk_id: str) -> int:
    """Normalized operations → operations the client's pre-flight accepts."""
    chunk = store.read_chunk(chunk_id)
    if chunk is None or chunk[1] != "normalized":
        return 0
    valid: list[dict[str, Any]] = []
    rejects: list[tuple[Any, RecordRejected]] = []
    for message in chunk[2]:
        op = Operation.from_message(message, copy=False)
        try:
            valid.append(validate_operation(op).to_message(copy=False))
        except RecordRejected as rejected:
            rejects.append((_as_record(op), rejected))
        except Exception as exc:  # as in normalize: one record, not the chunk
            rejects.append((_as_record(op), RecordRejected(
                f"cannot be validated: {type(exc).__name__}", [FieldError("", str(exc)[:200])],
                key=op.key)))
    store.advance_chunk(chunk_id, "validated", valid, rejects, came_from="normalized")
    return len(rejects)


def batch_chunk(store: Store, chunk_id: str) -> Counter[str]:
    """Valid operations → the outbox (coalesced with what is already there)."""
    chunk = store.read_chunk(chunk_id)
    if chunk is None or chunk[1] != "validated":
        return Counter()
    sid, _, messages = chunk
    ops = [Operation.from_message(m, copy=False) for m in messages]
    return store.outbox.enqueue(sid, ops, chunk_id=chunk_id)


def _as_record(op: Operation) -> dict[str, Any]:
    """An operation as the producer record that would make it again (for dead letters)."""
    if op.kind == "upsert":
        return op.payload
    record: dict[str, Any] = {"op": op.kind, "integration_id": op.key[0], "order_id": op.key[1]}
    if op.explicit_version:
        record["version"] = op.version.isoformat()
    if op.kind == "patch":
        record["changes"] = op.payload
    return record
