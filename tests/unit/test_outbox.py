"""The outbox rules as a table: incoming operation × what is known → verdict."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from pipeline.outbox import Known, Verdict, decide, merge_changes
from pipeline.patching import payload_hash
from pipeline.records import Operation

KEY = (101, "A-1")


def at(hour: int) -> datetime:
    return datetime(2026, 12, 1, hour, tzinfo=UTC)


def payload(city: str = "Oss") -> dict[str, Any]:
    return {"order_id": "A-1",
            "order_details": {"integration": {"id": 101},
                              "order_items": [{"name": "Candle", "quantity": 1}]},
            "shipping_address": {"city": city}}


def op(kind: str, hour: int, body: dict[str, Any] | None = None) -> Operation:
    default = payload() if kind == "upsert" else {}
    return Operation(kind, KEY, at(hour), default if body is None else body)  # type: ignore[arg-type]


def known(kind: str, hour: int, body: dict[str, Any] | None = None,
          refs: tuple[tuple[str, str], ...] = ()) -> Known:
    body = payload() if body is None and kind == "upsert" else (body or {})
    return Known(kind, at(hour), body, payload_hash(body), refs)


CASES = [
    # (name, op, ledger, pending, in_flight, verdict, kind of the pending row)
    ("new order", op("upsert", 10), None, None, None, Verdict.PENDING, "upsert"),
    ("older than ledger", op("upsert", 9), known("upsert", 10), None, None,
     Verdict.SUPERSEDED, ""),
    ("older than in flight", op("upsert", 9), None, None, known("upsert", 10),
     Verdict.SUPERSEDED, ""),
    ("older than pending", op("upsert", 9), None, known("upsert", 10), None,
     Verdict.SUPERSEDED, ""),
    ("same as confirmed", op("upsert", 10), known("upsert", 10), None, None,
     Verdict.UNCHANGED, ""),
    ("same version, new content: later arrival wins",
     op("upsert", 10, payload("Breda")), known("upsert", 10), None, None,
     Verdict.PENDING, "upsert"),
    ("newer than ledger", op("upsert", 11, payload("Breda")), known("upsert", 10), None, None,
     Verdict.PENDING, "upsert"),
    ("delete beats older upsert", op("delete", 11), known("upsert", 10), None, None,
     Verdict.PENDING, "delete"),
    ("older upsert after delete", op("upsert", 9), known("delete", 10), None, None,
     Verdict.SUPERSEDED, ""),
    ("newer upsert after delete re-creates", op("upsert", 11), known("delete", 10), None, None,
     Verdict.PENDING, "upsert"),
    ("delete of deleted", op("delete", 11), known("delete", 10), None, None,
     Verdict.UNCHANGED, ""),
    ("patch folds into confirmed payload", op("patch", 11, {"shipping_address": {"city": "Ede"}}),
     known("upsert", 10), None, None, Verdict.PENDING, "upsert"),
    ("patch folds into pending upsert", op("patch", 11, {"shipping_address": {"city": "Ede"}}),
     None, known("upsert", 10, refs=(("s1", "upserted"),)), None, Verdict.PENDING, "upsert"),
    ("patch without a known payload stays a patch",
     op("patch", 11, {"shipping_address": {"city": "Ede"}}), None, None, None,
     Verdict.PENDING, "patch"),
    ("older order under a pending patch becomes its base",
     op("upsert", 9), None, known("patch", 11, {"shipping_address": {"city": "Ede"}},
                                  refs=(("s1", "patched"),)), None, Verdict.PENDING, "upsert"),
    ("patch of a deleted order", op("patch", 11, {"shipping_address": {"city": "Ede"}}),
     known("delete", 10), None, None, Verdict.DEAD, ""),
    ("patch naming an unknown item",
     op("patch", 11, {"order_details": {"order_items": [{"name": "Lamp", "quantity": 2}]}}),
     known("upsert", 10), None, None, Verdict.DEAD, ""),
]


@pytest.mark.parametrize(("name", "incoming", "ledger", "pending", "in_flight", "verdict",
                          "kind"), CASES, ids=[c[0] for c in CASES])
def test_decide(name: str, incoming: Operation, ledger: Known | None, pending: Known | None,
                in_flight: Known | None, verdict: Verdict, kind: str) -> None:
    decision = decide(incoming, "s2", ledger=ledger, pending=pending, in_flight=in_flight)
    assert decision.verdict is verdict
    assert decision.kind == kind


def test_fold_keeps_the_pending_upserts_record_and_applies_the_change() -> None:
    pending = known("upsert", 10, refs=(("s1", "upserted"),))
    decision = decide(op("patch", 11, {"shipping_address": {"city": "Ede"}}), "s2",
                      ledger=None, pending=pending, in_flight=None)
    assert decision.refs == (("s1", "upserted"), ("s2", "patched"))
    assert decision.displaced == ()
    assert decision.payload["shipping_address"] == {"city": "Ede"}


def test_replacing_a_pending_row_supersedes_its_records() -> None:
    pending = known("upsert", 10, refs=(("s1", "upserted"),))
    decision = decide(op("upsert", 11, payload("Breda")), "s2", ledger=None, pending=pending,
                      in_flight=None)
    assert decision.displaced == (("s1", "upserted"),)
    assert decision.refs == (("s2", "upserted"),)


@pytest.mark.parametrize(("first", "second", "merged"), [
    ({"a": 1}, {"b": 2}, {"a": 1, "b": 2}),
    ({"a": {"x": 1}}, {"a": {"y": 2}}, {"a": {"x": 1, "y": 2}}),
    ({"order_items": [{"name": "A", "quantity": 1}]},
     {"order_items": [{"name": "A", "quantity": 3}, {"name": "B", "quantity": 1}]},
     {"order_items": [{"name": "A", "quantity": 3}, {"name": "B", "quantity": 1}]}),
    ({"a": 1}, {"a": None}, {"a": None}),
])
def test_merge_changes(first: dict[str, Any], second: dict[str, Any],
                       merged: dict[str, Any]) -> None:
    assert merge_changes(first, second) == merged


def test_an_older_order_under_a_pending_patch_keeps_both_records() -> None:
    pending = known("patch", 11, {"shipping_address": {"city": "Ede"}}, refs=(("s1", "patched"),))
    decision = decide(op("upsert", 9), "s2", ledger=None, pending=pending, in_flight=None)
    assert decision.payload["shipping_address"] == {"city": "Ede"}
    assert decision.payload["order_details"]["order_items"] == [{"name": "Candle",
                                                                 "quantity": 1}]
    assert decision.refs == (("s2", "upserted"), ("s1", "patched"))
    assert decision.version == at(11)


def run(ops: list[Operation]) -> tuple[Known | None, list[str]]:
    """Feed operations through `decide` as the store does; the pending row and the verdicts."""
    pending: Known | None = None
    verdicts = []
    for n, incoming in enumerate(ops):
        d = decide(incoming, f"s{n}", ledger=None, pending=pending, in_flight=None)
        verdicts.append(d.verdict.value)
        if d.verdict is Verdict.PENDING:
            pending = Known(d.kind, d.version or incoming.version, d.payload,
                            payload_hash(d.payload), d.refs, d.parts)
    return pending, verdicts


EDE = {"shipping_address": {"city": "Ede"}}


@pytest.mark.parametrize(("sequence", "city", "version", "verdicts"), [
    # in order
    ([op("upsert", 10), op("patch", 11, EDE)], "Ede", 11, ["pending", "pending"]),
    # the patch first, its order after: the order is the base, the patch stays on top
    ([op("patch", 11, EDE), op("upsert", 10)], "Ede", 11, ["pending", "pending"]),
    # and a newer full order arriving third replaces the base, keeping the newer patch
    ([op("patch", 11, EDE), op("upsert", 10), op("upsert", 10, payload("Breda"))], "Ede", 11,
     ["pending", "pending", "pending"]),
    # a full order newer than the patch wins outright
    ([op("patch", 11, EDE), op("upsert", 10), op("upsert", 12, payload("Breda"))], "Breda", 12,
     ["pending", "pending", "pending"]),
    # an older full order after a newer one is superseded, the patch survives
    ([op("upsert", 10, payload("Breda")), op("patch", 11, EDE), op("upsert", 9)], "Ede", 11,
     ["pending", "pending", "superseded"]),
    # a patch older than the full order is superseded
    ([op("upsert", 12, payload("Breda")), op("patch", 11, EDE)], "Breda", 12,
     ["pending", "superseded"]),
])
def test_any_arrival_order_ends_as_the_newest_order_with_newer_patches(
        sequence: list[Operation], city: str, version: int, verdicts: list[str]) -> None:
    pending, seen = run(sequence)
    assert seen == verdicts
    assert pending is not None and pending.kind == "upsert"
    assert pending.payload["shipping_address"]["city"] == city
    assert pending.version == at(version)


def test_records_are_counted_once_whatever_the_order() -> None:
    sequence = [op("patch", 11, EDE), op("upsert", 10), op("upsert", 10, payload("Breda"))]
    pending: Known | None = None
    displaced: list[tuple[str, str]] = []
    for n, incoming in enumerate(sequence):
        d = decide(incoming, f"s{n}", ledger=None, pending=pending, in_flight=None)
        displaced += d.displaced
        pending = Known(d.kind, d.version or incoming.version, d.payload,
                        payload_hash(d.payload), d.refs, d.parts)
    assert pending is not None
    assert sorted(pending.refs) == [("s0", "patched"), ("s2", "upserted")]
    assert displaced == [("s1", "upserted")]
