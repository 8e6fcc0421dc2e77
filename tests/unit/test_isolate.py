"""pipeline.isolate: the planner as tables, `isolate` against fake servers as properties.

A fake server is a function of the batch, like the real all-or-nothing API: it accepts a batch
with no bad order and rejects any other, naming the bad ones (pointer modes) or not."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.errors import ApiErrorItem, BatchRejected, FieldError
from pipeline.isolate import IsolationPlan, isolate, plan_isolation

REQUIRED = FieldError("/order_id", "Field required")
Server = Callable[[Sequence[int]], BatchRejected | None]


def pointer_server(bad: set[int]) -> Server:
    """Names every bad order of the batch at once (the spec: "All errors are returned together")."""
    def send(batch: Sequence[int]) -> BatchRejected | None:
        named = {position: [REQUIRED] for position, item in enumerate(batch) if item in bad}
        return BatchRejected("400", status=400, pointers=named) if named else None
    return send


def first_pointer_server(bad: set[int]) -> Server:
    """Names only the first bad order of the batch (a stricter validator that stops early)."""
    def send(batch: Sequence[int]) -> BatchRejected | None:
        for position, item in enumerate(batch):
            if item in bad:
                return BatchRejected("400", status=400, pointers={position: [REQUIRED]})
        return None
    return send


def pointerless_server(bad: set[int]) -> Server:
    """Says something is wrong, not where (like the spec's WrongPayloadFormatRequested)."""
    def send(batch: Sequence[int]) -> BatchRejected | None:
        if not bad.intersection(batch):
            return None
        item = ApiErrorItem(status="400", code="non_field_errors", detail="Wrong format")
        return BatchRejected("400", status=400, errors=[item])
    return send


def wild_pointer_server(bad: set[int]) -> Server:
    """Points at an index outside the batch: unusable, so the client must bisect."""
    def send(batch: Sequence[int]) -> BatchRejected | None:
        if not bad.intersection(batch):
            return None
        return BatchRejected("400", status=400, pointers={len(batch) + 3: [REQUIRED]})
    return send


# ---------------------------------------------------------------------------------------------
# plan_isolation


def rejected(pointers: dict[int, list[FieldError]] | None = None,
             errors: list[ApiErrorItem] | None = None) -> BatchRejected:
    return BatchRejected("POST /orders → 400: bad", status=400, pointers=pointers, errors=errors)


TOO_MANY = ApiErrorItem(status="400", code="invalid",
                        detail="Orders list should have at most 100 items, not 101",
                        pointer="/data/attributes/")


@pytest.mark.parametrize(
    ("size", "error", "expected"),
    [
        # pointers: dead-letter the named ones, send the rest as one batch
        (3, rejected({1: [REQUIRED]}), IsolationPlan({1: [REQUIRED]}, [[0, 2]])),
        (4, rejected({0: [REQUIRED], 3: [REQUIRED]}),
         IsolationPlan({0: [REQUIRED], 3: [REQUIRED]}, [[1, 2]])),
        (2, rejected({0: [REQUIRED], 1: [REQUIRED]}),
         IsolationPlan({0: [REQUIRED], 1: [REQUIRED]}, [])),
        (1, rejected({0: [REQUIRED]}), IsolationPlan({0: [REQUIRED]}, [])),
        # out-of-range indices are ignored; the in-range ones still count
        (3, rejected({2: [REQUIRED], 7: [REQUIRED], -1: [REQUIRED]}),
         IsolationPlan({2: [REQUIRED]}, [[0, 1]])),
        # no usable pointer: bisect
        (3, rejected({7: [REQUIRED]}), IsolationPlan({}, [[0], [1, 2]])),
        (4, rejected(), IsolationPlan({}, [[0, 1], [2, 3]])),
        (5, rejected(), IsolationPlan({}, [[0, 1], [2, 3, 4]])),
        (100, rejected(), IsolationPlan({}, [list(range(50)), list(range(50, 100))])),
        # ... down to a single order, which is the culprit: the body says why
        (1, rejected(errors=[TOO_MANY]),
         IsolationPlan({0: [FieldError(
             "", "Orders list should have at most 100 items, not 101 (at /data/attributes/)")]},
             [])),
        (1, rejected(errors=[ApiErrorItem(code="non_field_errors", detail="Wrong format")]),
         IsolationPlan({0: [FieldError("", "Wrong format")]}, [])),
        (1, rejected(), IsolationPlan({0: [FieldError("", "POST /orders → 400: bad")]}, [])),
    ],
)
def test_plan_table(size: int, error: BatchRejected, expected: IsolationPlan) -> None:
    assert plan_isolation(size, error) == expected


def test_an_empty_batch_has_no_plan() -> None:
    with pytest.raises(ValueError):
        plan_isolation(0, rejected())


@given(size=st.integers(1, 100), data=st.data())
def test_a_plan_partitions_the_batch(size: int, data: st.DataObject) -> None:
    indices = st.integers(-5, 120)
    pointers = data.draw(st.dictionaries(indices, st.just([REQUIRED]), max_size=10))
    plan = plan_isolation(size, rejected(pointers))
    resent = [index for group in plan.resend for index in group]
    assert sorted([*plan.dead, *resent]) == list(range(size))
    assert all(group for group in plan.resend)
    # progress: something is dead-lettered or every group is smaller than the batch
    assert plan.dead or all(len(group) < size for group in plan.resend)


# ---------------------------------------------------------------------------------------------
# isolate against fake servers


def batches(max_size: int = 100) -> st.SearchStrategy[tuple[int, set[int]]]:
    """(n, bad): n orders 0..n-1, of which `bad` are invalid."""
    return st.integers(1, max_size).flatmap(
        lambda n: st.tuples(st.just(n), st.sets(st.integers(0, n - 1), max_size=n)))


SERVERS = [pointer_server, first_pointer_server, pointerless_server, wild_pointer_server]


@pytest.mark.parametrize("server", SERVERS, ids=lambda server: server.__name__)
@given(case=batches())
def test_every_valid_order_is_sent_once_and_every_invalid_one_is_dead(
        server: Callable[[set[int]], Server], case: tuple[int, set[int]]) -> None:
    n, bad = case
    result = isolate(list(range(n)), server(bad))
    assert sorted(result.sent) == [item for item in range(n) if item not in bad]
    assert set(result.dead) == bad
    assert len(result.sent) + len(result.dead) == n  # nothing dropped, nothing twice


@given(case=batches())
def test_bisection_cost_is_bounded(case: tuple[int, set[int]]) -> None:
    n, bad = case
    result = isolate(list(range(n)), pointerless_server(bad))
    k = len(bad)
    assert result.requests <= 2 * k * math.ceil(math.log2(n)) + 1
    assert all(errors == [FieldError("", "Wrong format")] for errors in result.dead.values())


@given(case=batches())
def test_pointers_cost_at_most_two_requests(case: tuple[int, set[int]]) -> None:
    # 1 when nothing is bad, 1 when everything is (nothing left to resend), 2 otherwise.
    n, bad = case
    result = isolate(list(range(n)), pointer_server(bad))
    k = len(bad)
    assert result.requests == (2 if 0 < k < n else 1)
    assert all(errors == [REQUIRED] for errors in result.dead.values())


@given(case=batches())
def test_one_pointer_at_a_time_costs_one_request_per_bad_order(case: tuple[int, set[int]]) -> None:
    n, bad = case
    result = isolate(list(range(n)), first_pointer_server(bad))
    assert result.requests == len(bad) + (1 if len(bad) < n else 0)


@pytest.mark.parametrize(
    ("n", "bad", "requests"),
    [
        (1, set(), 1),
        (1, {0}, 1),
        (2, {1}, 3),  # [0,1] ✗ → [0] ✓, [1] ✗
        (4, {0, 3}, 7),  # [0..3] ✗ → [0,1] ✗, [2,3] ✗ → [0] ✗ [1] ✓ [2] ✓ [3] ✗
        (100, {42}, 15),  # 1 + 2·7 levels
        (100, set(), 1),
    ],
)
def test_bisection_table(n: int, bad: set[int], requests: int) -> None:
    result = isolate(list(range(n)), pointerless_server(bad))
    assert result.requests == requests
    assert set(result.dead) == bad


def test_dead_keys_are_positions_in_the_input() -> None:
    items = ["a", "b", "c", "d", "e"]
    result = isolate(items, pointerless_server_for({"d"}))
    assert result.dead == {3: [FieldError("", "Wrong format")]}
    assert result.sent == ["a", "b", "c", "e"]


def pointerless_server_for(bad: set[str]) -> Callable[[Sequence[str]], BatchRejected | None]:
    def send(batch: Sequence[str]) -> BatchRejected | None:
        if bad.intersection(batch):
            return BatchRejected("400", errors=[ApiErrorItem(detail="Wrong format")])
        return None
    return send


def test_nothing_to_send_costs_nothing() -> None:
    assert isolate([], pointer_server(set())).requests == 0
