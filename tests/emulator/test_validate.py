"""The hand-written order validator, without HTTP: messages, pointers, cleaning, and a
cross-check that whatever it accepts also satisfies the spec's own `order` schema.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.validate import Errors, check_order, check_patch, parse_datetime
from tests.emulator.conftest import make_order
from tests.emulator.test_robustness import ORDER_PATHS, json_values, mutate


def errors_of(order: Any) -> Errors:
    errs: Errors = []
    check_order(order, "", errs)
    return errs


def with_(path: str, value: Any) -> dict[str, Any]:
    order = make_order("A")
    *parents, leaf = path.split("/")
    node: Any = order
    for p in parents:
        node = node[int(p)] if p.isdigit() else node.setdefault(p, {})
    if isinstance(node, list):
        node[int(leaf)] = value
    else:
        node[leaf] = value
    return order


def test_a_valid_order_has_no_errors() -> None:
    assert errors_of(make_order("A")) == []


@pytest.mark.parametrize(("path", "value", "detail"), [
    ("order_id", 5, "Input should be a valid string"),
    ("order_id", "", "String should have at least 1 character"),
    ("order_number", None, "Input should be a valid string"),
    ("order_details/integration/id", "101", "Input should be a valid integer"),
    ("order_details/integration/id", True, "Input should be a valid integer"),
    ("order_details/integration/id", 1.5,
     "Input should be a valid integer, got a number with a fractional part"),
    ("order_details/order_created_at", "yesterday", "Input should be a valid datetime"),
    ("order_details/order_created_at", "2018-02-27T10:00:00", "Input should have timezone info"),
    ("order_details/order_created_at", "2018-02-30T10:00:00Z", "Input should be a valid datetime"),
    ("order_details/order_items", {}, "Input should be a valid list"),
    ("order_details/order_items/0/quantity", -1, "Input should be greater than 0"),
    ("order_details/order_items/0/quantity", "2", "Input should be a valid integer"),
    ("order_details/order_items/0/total_price/currency", "eur",
     "Input should be 'EUR', 'GBP' or 'USD'"),
    ("order_details/order_items/0/total_price/value", "3.5", "Input should be a valid number"),
    ("order_details/order_items/0/country_of_origin", "NLD",
     "String should have at most 2 characters"),
    ("order_details/order_items/0/country_of_origin", "ZZ", "Invalid country alpha2 code"),
    ("order_details/order_items/0/image_url", "ftp://x", "Input should be a valid URL"),
    ("order_details/order_items/0/manufacturer_product_id", "x" * 71,
     "String should have at most 70 characters"),
    ("order_details/order_items/0/measurement", {"weight": {"value": 0, "unit": "kg"}},
     "Input should be greater than 0"),
    ("order_details/order_items/0/properties", [1], "Input should be a valid dictionary"),
    ("order_details/tags", ["a", 1], "Input should be a valid string"),
    ("payment_details/status/code", "", "String should have at least 1 character"),
    ("payment_details/is_cash_on_delivery", "yes", "Input should be a valid boolean"),
    ("payment_details/freight_costs", {"value": "abc", "currency": "EUR"},
     "String should match pattern '[\\d]+(\\.[\\d]+)?'"),
    ("payment_details/freight_costs", {"value": 5.99, "currency": "EUR"},
     "Input should be a valid string"),
    ("shipping_address/country_code", "nl", "Invalid country alpha2 code"),
    ("shipping_address/email", "not-an-email", "value is not a valid email address"),
    ("shipping_address/postal_code", "", "String should have at least 1 character"),
    ("customs_details", {"shipment_type": "bribe"},
     "Input should be 'gift', 'commercial_goods', 'commercial_sample' or 'returned_goods'"),
    ("shipping_details", {"ship_with": {"type": "x", "properties": {
        "shipping_option_code": None, "contract_id": 0}}},
     "Input should be 'shipping_option_code'"),
    ("service_point_details", {"post_number": "1"},
     "Either id or carrier_service_point_id is required"),
    ("service_point_details", {"id": "1", "carrier_service_point_id": "2"},
     "Provide either id or carrier_service_point_id, not both"),
    ("shipping_details", {"measurement": {"volume": {"value": 1.5, "unit": "l"}}},
     "Input should be a valid integer, got a number with a fractional part"),
    ("order_details/order_items/0/total_price/value", float("inf"),
     "Input should be a finite number"),
])
def test_messages(path: str, value: Any, detail: str) -> None:
    errs = errors_of(with_(path, value))
    assert detail in [d for _, d in errs], errs


def test_pointers_nest_with_bare_list_indexes() -> None:
    order = make_order("A")
    order["order_details"]["order_items"].append({"name": "x"})
    errs: Errors = []
    check_order(order, "/data/attributes/[3]", errs)
    assert errs == [
        ("/data/attributes/[3]/order_details/order_items/1/quantity", "Field required"),
        ("/data/attributes/[3]/order_details/order_items/1/total_price", "Field required"),
    ]


def test_required_fields() -> None:
    assert errors_of({}) == [(f"/{k}", "Field required") for k in (
        "order_id", "order_number", "order_details", "payment_details")]


def test_nulls_where_the_spec_allows_them() -> None:
    order = make_order("A")
    order["customs_details"] = None
    order["payment_details"]["invoice_date"] = None
    order["payment_details"]["is_cash_on_delivery"] = None
    order["order_details"]["order_items"][0].update(
        mid_code=None, delivery_dates=None, manufacturer_product_id=None)
    assert errors_of(order) == []
    assert errors_of(with_("shipping_details", None)) == [
        ("/shipping_details", "Input should be a valid dictionary")]


def test_cleaning_drops_unknown_keys_and_normalises_integral_floats() -> None:
    order = make_order("A", extra=1)
    order["order_details"]["integration"]["id"] = 101.0
    order["order_details"]["order_items"][0]["properties"] = {"any": {"thing": [1]}}
    cleaned = check_order(order, "", [])
    assert "extra" not in cleaned
    assert cleaned["order_details"]["integration"]["id"] == 101
    assert type(cleaned["order_details"]["integration"]["id"]) is int
    assert cleaned["order_details"]["order_items"][0]["properties"] == {"any": {"thing": [1]}}


def test_patch_schema_has_no_required_fields_and_aliases_phone() -> None:
    errs: Errors = []
    cleaned = check_patch({"customer_details": {"phone": "+31"}}, "", errs)
    assert errs == []
    assert cleaned == {"customer_details": {"phone_number": "+31"}}
    check_patch({"order_details": {"integration": {"id": 0}}}, "", errs)
    assert errs == [("/order_details/integration/id",
                     "Input should be greater than or equal to 1")]


def test_parse_datetime() -> None:
    assert parse_datetime("2018-02-27T10:00:00.556Z") is not None
    assert parse_datetime("2018-02-27 10:00:00+02:00") is not None
    assert parse_datetime("2018-02-27T10:00:00") is None
    assert parse_datetime("20180227T100000Z") is None


@settings(max_examples=300, deadline=None)
@given(path=st.sampled_from(ORDER_PATHS), value=json_values, delete=st.booleans())
def test_what_is_accepted_satisfies_the_spec_schema(path: tuple[Any, ...], value: Any,
                                                    delete: bool) -> None:
    from tests.emulator.conftest import _SPEC

    if _SPEC is None:
        pytest.skip("official spec not available")
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    order = mutate(make_order("A"), path, value, delete)
    errs: Errors = []
    cleaned = check_order(copy.deepcopy(order), "", errs)
    if errs:
        return
    registry = Registry().with_resource(
        "urn:spec", Resource.from_contents(_SPEC, default_specification=DRAFT202012))
    validator = Draft202012Validator({"$ref": "urn:spec#/components/schemas/order"},
                                     registry=registry)
    problems = [e.message for e in validator.iter_errors(cleaned)]
    assert not problems, (order, problems)
