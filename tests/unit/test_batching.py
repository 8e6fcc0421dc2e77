"""pipeline.batching: coalescing and batching as tables and properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.batching import coalesce, make_batches
from pipeline.records import Operation

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
Kind = Literal["upsert", "patch", "delete"]


def op(order_id: str, minutes: int = 0, kind: Kind = "upsert", integration: int = 7,
       tag: str = "") -> Operation:
    """An operation; `tag` tells apart operations that are otherwise equal."""
    payload: dict[str, Any] = {"order_id": order_id, "tag": tag}
    return Operation(kind=kind, key=(integration, order_id),
                     version=T0 + timedelta(minutes=minutes), payload=payload)


def tags(ops: list[Operation]) -> list[str]:
    return [operation.payload["tag"] for operation in ops]


@pytest.mark.parametrize(
    ("ops", "winners", "superseded"),
    [
        ([], [], []),
        ([op("A", 0, tag="a")], ["a"], []),
        # newest version wins, whatever the arrival order
        ([op("A", 1, tag="new"), op("A", 0, tag="old")], ["new"], ["old"]),
        ([op("A", 0, tag="old"), op("A", 1, tag="new")], ["new"], ["old"]),
        # equal versions: the later arrival wins
        ([op("A", 0, tag="first"), op("A", 0, tag="second")], ["second"], ["first"]),
        # a newer delete beats an older upsert, and the other way round
        ([op("A", 0, tag="up"), op("A", 1, "delete", tag="del")], ["del"], ["up"]),
        ([op("A", 1, tag="up"), op("A", 0, "delete", tag="del")], ["up"], ["del"]),
        # winners keep the order their key was first seen in
        ([op("A", 0, tag="a0"), op("B", 0, tag="b0"), op("A", 5, tag="a5"),
          op("C", 0, tag="c0"), op("B", 9, tag="b9")],
         ["a5", "b9", "c0"], ["a0", "b0"]),
        # the same order_id in two integrations is two orders
        ([op("A", 0, integration=1, tag="1"), op("A", 0, integration=2, tag="2")],
         ["1", "2"], []),
        # superseded ones come in input order
        ([op("A", 3, tag="a3"), op("A", 1, tag="a1"), op("A", 2, tag="a2")],
         ["a3"], ["a1", "a2"]),
    ],
)
def test_coalesce_table(ops: list[Operation], winners: list[str],
                        superseded: list[str]) -> None:
    won, lost = coalesce(ops)
    assert (tags(won), tags(lost)) == (winners, superseded)


def test_coalesce_takes_any_iterable() -> None:
    won, lost = coalesce(op(order_id, 0, tag=order_id) for order_id in "ABA")
    assert (tags(won), tags(lost)) == (["A", "B"], ["A"])


OPERATIONS = st.lists(
    st.builds(op, order_id=st.sampled_from("ABCDEFGH"), minutes=st.integers(0, 5),
              kind=st.sampled_from(["upsert", "patch", "delete"]),
              integration=st.sampled_from([1, 2]), tag=st.uuids().map(str)),
    max_size=60,
)


@given(ops=OPERATIONS)
def test_coalesce_keeps_the_newest_latest_op_per_key_and_loses_nothing(
        ops: list[Operation]) -> None:
    winners, superseded = coalesce(ops)
    assert sorted(tags(winners + superseded)) == sorted(tags(ops))  # a partition of the input
    assert len({w.key for w in winners}) == len(winners) == len({o.key for o in ops})
    for winner in winners:
        same_key = [(o.version, position) for position, o in enumerate(ops) if o.key == winner.key]
        newest_latest = max(same_key)[1]  # highest version, then the latest position
        assert ops[newest_latest] is winner


@given(ops=OPERATIONS)
def test_coalesce_is_deterministic_and_idempotent(ops: list[Operation]) -> None:
    winners, superseded = coalesce(ops)
    assert coalesce(list(ops)) == (winners, superseded)
    assert coalesce(winners) == (winners, [])
    first_seen = list(dict.fromkeys(o.key for o in ops))
    assert [w.key for w in winners] == first_seen
    assert superseded == [o for o in ops if all(o is not w for w in winners)]


# ---------------------------------------------------------------------------------------------
# make_batches


@pytest.mark.parametrize(
    ("count", "size", "lengths"),
    [(0, 100, []), (1, 100, [1]), (100, 100, [100]), (101, 100, [100, 1]),
     (250, 100, [100, 100, 50]), (5, 2, [2, 2, 1]), (3, 1, [1, 1, 1])],
)
def test_batch_sizes(count: int, size: int, lengths: list[int]) -> None:
    ops = [op(f"O-{n}", tag=str(n)) for n in range(count)]
    batches = make_batches(ops, size)
    assert [len(batch) for batch in batches] == lengths
    assert [o for batch in batches for o in batch] == ops  # input order kept


def test_batches_hold_one_version_per_order_and_mix_integrations() -> None:
    ops = [op("A", 0, integration=1, tag="a-old"), op("A", 0, integration=2, tag="a2"),
           op("B", 0, tag="b"), op("A", 3, integration=1, tag="a-new")]
    assert [tags(batch) for batch in make_batches(ops, 100)] == [["a-new", "a2", "b"]]


@pytest.mark.parametrize("kind", ["patch", "delete"])
def test_only_upserts_are_batched(kind: Kind) -> None:
    with pytest.raises(ValueError, match=kind):
        make_batches([op("A"), op("B", kind=kind)])


@pytest.mark.parametrize("size", [0, -1, 101])
def test_batch_size_must_fit_the_api(size: int) -> None:
    with pytest.raises(ValueError):
        make_batches([op("A")], size)


@given(ops=st.lists(st.builds(op, order_id=st.sampled_from([f"O-{n}" for n in range(300)]),
                              minutes=st.integers(0, 3), integration=st.sampled_from([1, 2, 3]),
                              tag=st.uuids().map(str)), max_size=400),
       size=st.integers(1, 100))
def test_batches_are_coalesced_bounded_and_deterministic(ops: list[Operation],
                                                         size: int) -> None:
    batches = make_batches(ops, size)
    flat = [o for batch in batches for o in batch]
    assert all(1 <= len(batch) <= size for batch in batches)
    assert len({o.key for o in flat}) == len(flat)  # one version per order in all batches
    assert flat == coalesce(ops)[0]
    assert make_batches(list(ops), size) == batches
