"""What happens to an operation when it reaches the outbox: a pure decision.

The outbox holds at most one *pending* row per order and any number of rows that are in flight
or posted and waiting for confirmation. A pending row is made of *parts*: the newest full order
known for it (the base, if any) and the patches newer than that base, applied in version order.
Keeping the parts apart is what lets records arrive in any order — chunks of one file are
ingested in parallel — and still end as "the newest full order, with the newer patches on top".

Given an incoming operation and what is already known of its order, `decide` says whether the
operation is superseded, unchanged, dead, or becomes (part of) the pending row. Pure, so the rules
read and test as a table (tests/unit/test_outbox.py).
"""

from __future__ import annotations

from collections import Counter
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
    PENDING = "pending"  # becomes the pending row (replacing or extending the old one)


@dataclass(frozen=True)
class Patch:
    version: datetime
    changes: Mapping[str, Any]
    refs: tuple[Ref, ...]


@dataclass(frozen=True)
class Parts:
    """A pending row's makings: an optional full order and the patches newer than it."""

    base_version: datetime | None
    base: Mapping[str, Any] | None
    base_refs: tuple[Ref, ...]
    patches: tuple[Patch, ...] = ()  # in version order; equal versions in arrival order

    @property
    def refs(self) -> tuple[Ref, ...]:
        return (*self.base_refs, *(r for p in self.patches for r in p.refs))

    @property
    def version(self) -> datetime:
        versions = [p.version for p in self.patches]
        if self.base_version is not None:
            versions.append(self.base_version)
        return max(versions)

    def compose(self) -> tuple[str, dict[str, Any]]:
        """(kind, payload) of the row: an upsert when there is a base, else one merged patch.
        Raises RecordRejected when a patch does not fit the base (unknown item, new order_id)."""
        if self.base is None:
            merged: dict[str, Any] = {}
            for p in self.patches:
                merged = merge_changes(merged, p.changes)
            return "patch", merged
        order = dict(self.base)
        for p in self.patches:
            order = apply_patch(order, p.changes)
        return "upsert", order

    def with_patch(self, patch: Patch) -> Parts:
        ordered = sorted((*self.patches, patch), key=lambda p: p.version)  # stable: arrival
        return Parts(self.base_version, self.base, self.base_refs, tuple(ordered))

    def to_json(self) -> dict[str, Any]:
        return {"base_version": _iso(self.base_version), "base": self.base,
                "base_refs": [list(r) for r in self.base_refs],
                "patches": [{"version": _iso(p.version), "changes": p.changes,
                             "refs": [list(r) for r in p.refs]} for p in self.patches]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Parts:
        return cls(_dt(data["base_version"]), data["base"], _refs(data["base_refs"]),
                   tuple(Patch(_dt(p["version"]) or datetime.min, p["changes"], _refs(p["refs"]))
                         for p in data["patches"]))


@dataclass(frozen=True)
class Known:
    """One version of an order that is already known: the ledger's, or an outbox row's."""

    kind: str  # upsert | patch | delete  (ledger: upsert = present, delete = deleted)
    version: datetime
    payload: Mapping[str, Any]
    payload_hash: str
    refs: Sequence[Ref] = ()
    parts: Parts | None = None  # pending rows only

    def as_parts(self) -> Parts | None:
        """The parts of a pending row (synthesized for rows written without them)."""
        if self.parts is not None or self.kind == "delete":
            return self.parts
        if self.kind == "upsert":
            return Parts(self.version, self.payload, tuple(self.refs))
        return Parts(None, None, (), (Patch(self.version, self.payload, tuple(self.refs)),))


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    kind: str = ""  # kind of the new pending row
    payload: dict[str, Any] = field(default_factory=dict)
    refs: tuple[Ref, ...] = ()  # refs the new pending row carries
    displaced: tuple[Ref, ...] = ()  # refs of a replaced pending row: now superseded
    reason: str = ""
    version: datetime | None = None  # of the new pending row, when not the operation's own
    parts: Parts | None = None


SUPERSEDED = Decision(Verdict.SUPERSEDED)


def decide(op: Operation, submission: str, *, ledger: Known | None, pending: Known | None,
           in_flight: Known | None) -> Decision:
    """The rules, newest operation per order winning (CONTRACT §1):

    - a full order older than the newest full order or delete known → superseded; otherwise it
      becomes the pending row's base, and the pending patches newer than it stay on top;
    - a patch older than the newest full order → superseded; otherwise it joins the pending
      row's patches (on the newest full order known, when there is one: one POST slot instead
      of a PATCH request); a patch of an order whose newest state is a delete → dead;
    - an upsert identical to what Sendcloud holds → unchanged; a delete of a deleted order → done;
    - a delete newer than everything known replaces the pending row (its records superseded).
    """
    ref: Ref = (submission, SUCCESS_OUTCOME[op.kind])
    committed = _newest(ledger, in_flight)  # sent, or being sent: full states
    if op.kind == "delete":
        return _delete(op, ref, pending, _newest(ledger, pending, in_flight))
    if op.kind == "upsert":
        return _upsert(op, ref, pending, ledger, in_flight)
    return _patch(op, ref, pending, committed, _newest(ledger, pending, in_flight))


def _delete(op: Operation, ref: Ref, pending: Known | None, newest: Known | None) -> Decision:
    if newest is not None and newest.version > op.version:
        return SUPERSEDED
    if newest is not None and newest.kind == "delete" and pending is None:
        return Decision(Verdict.UNCHANGED, reason="already deleted")
    displaced = tuple(pending.refs) if pending is not None else ()
    return Decision(Verdict.PENDING, "delete", {}, (ref,), displaced)


def _upsert(op: Operation, ref: Ref, pending: Known | None, ledger: Known | None,
            in_flight: Known | None) -> Decision:
    known = [(k, k is pending) for k in (ledger, in_flight, pending) if k is not None]
    if any(_floor(k, unsent) > op.version for k, unsent in known):
        return SUPERSEDED
    before = pending.as_parts() if pending is not None else None
    kept = tuple(p for p in before.patches if p.version > op.version) if before else ()
    # Patches already on their way in a composite row stay on top of this older base too; the
    # in-flight row settles their records, so they ride along here without refs.
    flying = in_flight.parts if in_flight is not None and in_flight.parts is not None else None
    carried = tuple(Patch(p.version, p.changes, ()) for p in (flying.patches if flying else ())
                    if p.version > op.version)
    ordered = tuple(sorted((*carried, *kept), key=lambda p: p.version))
    parts = Parts(op.version, op.payload, (ref,), ordered)
    committed = _newest(ledger, in_flight)
    # The pending row's records that do not carry over (its base, older patches) are superseded.
    left = Counter(pending.refs if pending is not None else ())
    left.subtract(r for p in kept for r in p.refs)
    decision = _from_parts(parts, tuple(left.elements()))
    if pending is None and committed is not None and committed.kind == "upsert" and \
            committed.payload_hash == payload_hash(decision.payload):
        return Decision(Verdict.UNCHANGED)
    return decision


def _floor(known: Known, unsent: bool) -> datetime:
    """The version a full order must reach to replace `known`: its base's version when it is a
    composite (a newer patch on an older order), else its own. Unsent patches alone set no
    floor: any full order may become their base."""
    parts = known.parts
    if parts is not None and parts.base is not None and parts.base_version is not None:
        return parts.base_version
    if unsent and known.kind == "patch":
        return datetime.min.replace(tzinfo=known.version.tzinfo)
    return known.version


def _patch(op: Operation, ref: Ref, pending: Known | None, committed: Known | None,
           newest: Known | None) -> Decision:
    if newest is not None and newest.kind == "delete":
        if newest.version > op.version:
            return SUPERSEDED
        return Decision(Verdict.DEAD, reason="the order was deleted; a patch cannot revive it")
    patch = Patch(op.version, op.payload, (ref,))
    before = pending.as_parts() if pending is not None else None
    if before is not None:
        if before.base_version is not None and op.version < before.base_version:
            return SUPERSEDED
        parts = before.with_patch(patch)
    elif committed is not None and committed.version > op.version:
        return SUPERSEDED
    else:
        parts = Parts(None, None, (), (patch,))
    if parts.base is None and committed is not None and committed.kind == "upsert" \
            and committed.version <= min(p.version for p in parts.patches):
        # The full order is known (sent or confirmed): fold the patches into it.
        parts = Parts(committed.version, committed.payload, (), parts.patches)
    return _from_parts(parts, ())


def _from_parts(parts: Parts, displaced: tuple[Ref, ...]) -> Decision:
    try:
        kind, payload = parts.compose()
    except RecordRejected as exc:
        return Decision(Verdict.DEAD, reason=exc.reason)
    return Decision(Verdict.PENDING, kind, payload, parts.refs, displaced,
                    version=parts.version, parts=parts)


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


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _refs(items: Sequence[Sequence[str]]) -> tuple[Ref, ...]:
    return tuple((str(a), str(b)) for a, b in items)
