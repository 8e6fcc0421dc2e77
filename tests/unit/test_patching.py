"""pipeline.patching: what a PATCH does to an order, and the "unchanged" hash."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.errors import RecordRejected
from pipeline.patching import apply_patch, payload_hash
from pipeline.schemas import validate_order


def order() -> dict[str, Any]:
    return {
        "order_id": "A-1",
        "order_number": "1001",
        "order_details": {
            "integration": {"id": 7},
            "status": {"code": "unpaid", "message": "Waiting"},
            "order_created_at": "2024-05-01T10:00:00+00:00",
            "order_items": [
                {"name": "Candle", "quantity": 1,
                 "total_price": {"value": 3.5, "currency": "EUR"},
                 "measurement": {"weight": {"value": 1, "unit": "kg"}}},
                {"name": "Vase", "quantity": 1, "total_price": {"value": 10, "currency": "EUR"}},
            ],
            "tags": ["a", "b"],
        },
        "payment_details": {"total_price": {"value": 13.5, "currency": "EUR"},
                            "status": {"code": "unpaid"}},
        "shipping_address": {"name": "Jo", "address_line_1": "Main St", "postal_code": "1234AB",
                             "city": "Oss", "country_code": "NL"},
        "service_point_details": {"id": "10875349", "post_number": "P1"},
    }


def with_changes(**paths: Any) -> dict[str, Any]:
    """order() with values set at 'a__b__c' paths (list indexes as digits)."""
    data = order()
    for path, value in paths.items():
        *parents, name = path.split("__")
        target: Any = data
        for token in parents:
            target = target[int(token)] if token.isdigit() else target[token]
        target[name] = value
    return data


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, order()),
    # nested objects merge key by key
    ({"order_details": {"status": {"code": "paid"}}},
     with_changes(order_details__status={"code": "paid", "message": "Waiting"})),
    ({"shipping_address": {"city": "Breda"}}, with_changes(shipping_address__city="Breda")),
    # scalars and arrays other than order_items replace
    ({"order_details": {"tags": ["c"]}}, with_changes(order_details__tags=["c"])),
    ({"order_details": {"tags": None}}, with_changes(order_details__tags=None)),
    ({"order_number": "1002"}, with_changes(order_number="1002")),
    # new keys are added
    ({"order_details": {"notes": "Ring twice"}}, with_changes(order_details__notes="Ring twice")),
    ({"customs_details": {"shipment_type": "gift"}},
     with_changes(customs_details={"shipment_type": "gift"})),
    # items are found by name and merged, the others stay
    ({"order_details": {"order_items": [{"name": "Vase", "quantity": 3}]}},
     with_changes(order_details__order_items__1__quantity=3)),
    ({"order_details": {"order_items": [{"name": "Candle",
                                         "measurement": {"weight": {"value": 2}}}]}},
     with_changes(order_details__order_items__0__measurement={"weight": {"value": 2,
                                                                        "unit": "kg"}})),
    ({"order_details": {"order_items": [{"name": "Vase", "quantity": 2},
                                        {"name": "Candle", "quantity": 4}]}},
     with_changes(order_details__order_items__0__quantity=4,
                  order_details__order_items__1__quantity=2)),
    # the identity may be repeated unchanged
    ({"order_id": "A-1", "order_details": {"integration": {"id": 7}}}, order()),
    # switching the service point identifier drops the other one
    ({"service_point_details": {"carrier_service_point_id": "91233"}},
     with_changes(service_point_details={"post_number": "P1",
                                         "carrier_service_point_id": "91233"})),
    ({"service_point_details": {"post_number": "P2"}},
     with_changes(service_point_details__post_number="P2")),
])
def test_apply_patch(changes: dict[str, Any], expected: dict[str, Any]) -> None:
    assert apply_patch(order(), changes) == expected


@pytest.mark.parametrize(("changes", "pointer", "reason"), [
    ({"order_details": {"order_items": [{"name": "Lamp", "quantity": 1}]}},
     "/order_details/order_items/0/name", "Could not find specified item."),
    ({"order_details": {"order_items": [{"name": "Vase"}, {"quantity": 1}]}},
     "/order_details/order_items/1/name", "Could not find specified item."),
    ({"order_id": "A-2"}, "/order_id", "Order id A-1 cannot be changed"),
    ({"order_details": {"integration": {"id": 8}}}, "/order_details/integration/id",
     "cannot be changed"),
])
def test_apply_patch_refuses(changes: dict[str, Any], pointer: str, reason: str) -> None:
    with pytest.raises(RecordRejected) as info:
        apply_patch(order(), changes)
    assert [e.pointer for e in info.value.errors] == [pointer]
    assert reason in info.value.reason


def test_an_item_name_used_twice_is_ambiguous() -> None:
    data = with_changes(order_details__order_items__1__name="Candle")
    with pytest.raises(RecordRejected, match="ambiguous"):
        apply_patch(data, {"order_details": {"order_items": [{"name": "Candle", "quantity": 2}]}})


def test_items_of_an_order_without_items_cannot_be_patched() -> None:
    data = order()
    del data["order_details"]["order_items"]
    with pytest.raises(RecordRejected, match="Could not find specified item"):
        apply_patch(data, {"order_details": {"order_items": [{"name": "Candle"}]}})


def test_a_patched_valid_order_stays_valid() -> None:
    changes = {"order_details": {"status": {"code": "paid"},
                                 "order_items": [{"name": "Candle", "quantity": 2}]},
               "service_point_details": {"carrier_service_point_id": "91233"}}
    assert validate_order(apply_patch(order(), changes)) == []


# --- properties ----------------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=3),
    max_leaves=8)
changes_strategy = st.fixed_dictionaries({}, optional={
    "order_number": st.text(min_size=1, max_size=5),
    "order_details": st.fixed_dictionaries({}, optional={
        "status": st.fixed_dictionaries({"code": st.text(min_size=1, max_size=5)}),
        "tags": st.lists(st.text(max_size=3), max_size=2),
        "order_items": st.lists(st.fixed_dictionaries(
            {"name": st.sampled_from(["Candle", "Vase"])},
            optional={"quantity": st.integers(1, 9),
                      "measurement": st.fixed_dictionaries(
                          {"weight": st.fixed_dictionaries({"value": st.integers(1, 9)})})}),
            max_size=3),
    }),
    "shipping_address": st.dictionaries(st.sampled_from(["city", "name", "x"]), scalars,
                                        max_size=2),
    "extra": json_values,
})


@given(changes_strategy)
def test_patching_twice_is_patching_once(changes: dict[str, Any]) -> None:
    once = apply_patch(order(), changes)
    assert apply_patch(once, changes) == once


@given(changes_strategy)
def test_apply_patch_leaves_its_inputs_alone(changes: dict[str, Any]) -> None:
    data, before_changes = order(), copy.deepcopy(changes)
    result = apply_patch(data, changes)
    assert data == order()
    assert changes == before_changes
    result["order_details"]["order_items"][0]["name"] = "mutated"   # no shared structure
    assert data["order_details"]["order_items"][0]["name"] == "Candle"


@given(changes_strategy)
def test_untouched_items_survive_a_patch(changes: dict[str, Any]) -> None:
    result = apply_patch(order(), changes)
    assert [i["name"] for i in result["order_details"]["order_items"]] == ["Candle", "Vase"]


# --- payload_hash --------------------------------------------------------------------------------


def test_the_hash_ignores_key_order() -> None:
    data = order()
    reordered = {k: data[k] for k in reversed(list(data))}
    reordered["shipping_address"] = dict(reversed(list(data["shipping_address"].items())))
    assert payload_hash(reordered) == payload_hash(data)


def test_the_hash_is_a_stable_sha256() -> None:
    assert payload_hash({}) == \
        "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    assert payload_hash({"b": 1, "a": "é"}) == payload_hash({"a": "é", "b": 1})


@given(json_values, json_values)
def test_equal_hashes_mean_equal_canonical_json(a: Any, b: Any) -> None:
    # 1 and True are equal in Python but not in JSON: the hash must tell them apart.
    same_json = json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert (payload_hash({"v": a}) == payload_hash({"v": b})) == same_json


@given(changes_strategy)
def test_a_patch_that_changes_nothing_keeps_the_hash(changes: dict[str, Any]) -> None:
    once = apply_patch(order(), changes)
    assert payload_hash(apply_patch(once, changes)) == payload_hash(once)
