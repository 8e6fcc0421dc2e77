"""What happens to an operation when it reaches the outbox: a pure decision.

The outbox holds at most one *pending* row per order (the newest version wins: coalescing) and
any number of rows that are in flight or posted and waiting for confirmation. Given an incoming
operation and what is already known of its order, `decide` says whether the operation is
superseded, unchanged, folded into a full payload, or becomes (or replaces) the pending row.

Keeping this pure lets the store stay a thin transaction around it, and lets the rules be read
and tested as a table (tests/unit/test_outbox.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pipeline.errors import RecordRejected
from pipeline.patching import apply_patch, payload_hash
from pipeline.records import Operation

# What a record counts as once its row settles successfully (CONTRACT §3 summary keys).
SUCCESS_OUTCOME = {"upsert": "upserted", "patch": "patched", "delete": "deleted"}

Ref = tuple[str, str]  # (submission id, outcome on success)


class Verdict(StrEnum):
    SUPERSEDED = "superseded"  # a newer version is already known: settle the record at once
    UNCHANGED = "unchanged"  # Sendcloud already holds exactly this: no request
    DEAD = "dead"  # cannot be applied (patch of a deleted order, bad patch): dead-letter
    PENDING = "pending"  # becomes the pending row (replacing any older pending row)


@dataclass(frozen=True)
class Known:
    """One version of an order that is already known: the ledger's, or an outbox row's."""

    kind: str  # upsert | patch | delete  (ledger: upsert = present, delete = deleted)
    version: datetime
    payload: Mapping[str, Any]
    payload_hash: str
    refs: Sequence[Ref] = ()


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    kind: str = ""  # kind of the new pending row
    payload: dict[str, Any] = field(default_factory=dict)
    refs: tuple[Ref, ...] = ()  # refs the new pending row carries
    displaced: tuple[Ref, ...] = ()  # refs of a replaced pending row: now superseded
    reason: str = ""
    version: datetime | None = None  # of the new pending row, when not the operation's own


def decide(op: Operation, submission: str, *, ledger: Known | None, pending: Known | None,
           in_flight: Known | None) -> Decision:
    """The rules, newest operation per order winning (CONTRACT §1):

    - older than the newest version known anywhere (pending, in flight, ledger) → superseded;
    - an upsert identical to the newest known state → unchanged;
    - a patch folds into the newest full payload when there is one (one POST slot instead of a
      PATCH request); a patch of an order whose newest state is a delete → dead;
    - a delete of an order already deleted → settles as deleted with no request;
    - otherwise it becomes the pending row; a pending row it replaces is superseded.
    """
    ref: Ref = (submission, SUCCESS_OUTCOME[op.kind])
    newest = _newest(ledger, pending, in_flight)
    if op.kind == "upsert" and newest is pending and pending is not None \
            and pending.kind == "patch" and pending.version >= op.version:
        return _under_patch(op, ref, pending)
    if newest is not None and newest.version > op.version:
        return Decision(Verdict.SUPERSEDED)
    if op.kind == "upsert":
        if newest is not None and newest.kind == "upsert" and \
                newest.payload_hash == payload_hash(op.payload):
            return Decision(Verdict.UNCHANGED)
        return _pending("upsert", op.payload, (ref,), pending)
    if op.kind == "delete":
        if newest is not None and newest.kind == "delete" and pending is None:
            return Decision(Verdict.UNCHANGED, reason="already deleted")
        return _pending("delete", {}, (ref,), pending)
    return _decide_patch(op, ref, newest, pending)


def _decide_patch(op: Operation, ref: Ref, newest: Known | None,
                  pending: Known | None) -> Decision:
    if newest is not None and newest.kind == "delete":
        return Decision(Verdict.DEAD, reason="the order was deleted; a patch cannot revive it")
    try:
        if newest is not None and newest.kind == "upsert":
            folded = apply_patch(newest.payload, op.payload)
            # The folded row answers for the upsert it grew from too, when that is still pending.
            still_pending = pending is not None and pending.kind == "upsert"
            carried = tuple(pending.refs) if pending is not None and still_pending else ()
            kept = pending if not carried else None
            return _pending("upsert", folded, (*carried, ref), kept)
        if pending is not None and pending.kind == "patch":
            merged = merge_changes(pending.payload, op.payload)
            return Decision(Verdict.PENDING, "patch", merged, (*pending.refs, ref))
    except RecordRejected as exc:
        return Decision(Verdict.DEAD, reason=exc.reason)
    return _pending("patch", op.payload, (ref,), pending)


def _under_patch(op: Operation, ref: Ref, pending: Known) -> Decision:
    """An older full order arrives after a newer patch that could not be applied yet (its order
    was unknown): the order is the base, the patch goes on top. A patch changes some fields; it
    does not make the rest of an older order stale."""
    try:
        patched = apply_patch(op.payload, pending.payload)
    except RecordRejected as exc:
        return Decision(Verdict.DEAD, reason=exc.reason)
    return Decision(Verdict.PENDING, "upsert", patched, (*pending.refs, ref),
                    version=pending.version)


def _pending(kind: str, payload: Mapping[str, Any], refs: tuple[Ref, ...],
             replaced: Known | None) -> Decision:
    displaced = tuple(replaced.refs) if replaced is not None else ()
    return Decision(Verdict.PENDING, kind, dict(payload), refs, displaced)


def _newest(*known: Known | None) -> Known | None:
    """The newest known version; on a tie the later stage wins (pending over in-flight over
    ledger), because it arrived later."""
    best: Known | None = None
    for item in known:
        if item is not None and (best is None or item.version >= best.version):
            best = item
    return best


def merge_changes(first: Mapping[str, Any], second: Mapping[str, Any]) -> dict[str, Any]:
    """Two partial-update bodies as one: nested objects merge key by key, `order_items` merge
    by `name` (a new name is appended), anything else in `second` wins."""
    out: dict[str, Any] = dict(first)
    for name, value in second.items():
        before = out.get(name)
        if name == "order_items" and isinstance(before, list) and isinstance(value, list):
            out[name] = _merge_items(before, value)
        elif isinstance(before, Mapping) and isinstance(value, Mapping):
            out[name] = merge_changes(before, value)
        else:
            out[name] = value
    return out


def _merge_items(first: list[Any], second: list[Any]) -> list[Any]:
    merged = list(first)
    positions = {item.get("name"): i for i, item in enumerate(merged) if isinstance(item, dict)}
    for item in second:
        where = positions.get(item.get("name")) if isinstance(item, dict) else None
        if where is None:
            merged.append(item)
        else:
            merged[where] = merge_changes(merged[where], item)
    return merged
