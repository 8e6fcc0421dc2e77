"""pipeline.schemas: the marshmallow pre-flight, as tables of broken orders and their pointers."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.errors import FieldError
from pipeline.schemas import to_field_errors, validate_changes, validate_order

Mutation = Callable[[dict[str, Any]], None]


def order() -> dict[str, Any]:
    """A valid canonical order with most optional parts present."""
    return {
        "id": "669",
        "order_id": "A-1",
        "order_number": "1001",
        "order_details": {
            "integration": {"id": 7},
            "status": {"code": "paid", "message": "Paid"},
            "order_created_at": "2024-05-01T10:00:00+00:00",
            "order_updated_at": "2024-05-02T10:00:00.555+02:00",
            "order_items": [
                {"name": "Candle", "quantity": 2, "country_of_origin": "NL",
                 "unit_price": {"value": 1.75, "currency": "EUR"},
                 "total_price": {"value": 3.5, "currency": "EUR"},
                 "measurement": {"weight": {"value": 0.5, "unit": "kg"}},
                 "delivery_dates": {"handover_at": None,
                                    "deliver_at": "2024-05-03T10:00:00+00:00"}},
                {"name": "Vase", "quantity": 1, "total_price": {"value": 10, "currency": "EUR"}},
            ],
            "tags": ["fragile"],
        },
        "payment_details": {
            "total_price": {"value": 13.5, "currency": "EUR"},
            "status": {"code": "paid"},
            "is_cash_on_delivery": None,
            "discount_granted": {"value": "3.99", "currency": "EUR"},
            "other_costs": None,
        },
        "customs_details": {
            "shipment_type": "commercial_goods", "export_type": "commercial_b2c",
            "tax_numbers": {"sender": [{"name": "VAT", "country_code": "NL",
                                        "value": "NL987654321B02"}]},
        },
        "customer_details": {"name": "Jo", "email": "jo@example.com"},
        "shipping_address": {"name": "Jo", "address_line_1": "Main St", "postal_code": "1234AB",
                             "city": "Oss", "country_code": "NL", "email": "jo@example.com"},
        "shipping_details": {
            "is_local_pickup": False,
            "measurement": {"dimension": {"length": 10, "width": 20.5, "height": 0,
                                          "unit": "cm"},
                            "volume": {"value": 0, "unit": "l"}},
            "ship_with": {"type": "shipping_option_code",
                          "properties": {"shipping_option_code": "postnl:standard",
                                         "contract_id": 517}},
        },
        "service_point_details": {"id": "10875349", "extra_data": {"partner_name": "PostNL"}},
    }


def setter(pointer: str, value: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        parent, name = _parent(data, pointer)
        parent[name] = value
    return mutate


def deleter(pointer: str) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        parent, name = _parent(data, pointer)
        del parent[name]
    return mutate


def _parent(data: Any, pointer: str) -> tuple[Any, Any]:
    tokens = pointer.split("/")[1:]
    for token in tokens[:-1]:
        data = data[int(token)] if isinstance(data, list) else data[token]
    last = tokens[-1]
    return data, int(last) if isinstance(data, list) else last


def test_the_reference_order_is_valid() -> None:
    assert validate_order(order()) == []


@pytest.mark.parametrize(("mutate", "pointer", "detail"), [
    # required fields
    (deleter("/order_id"), "/order_id", "required"),
    (deleter("/order_number"), "/order_number", "required"),
    (deleter("/order_details"), "/order_details", "required"),
    (deleter("/payment_details"), "/payment_details", "required"),
    (deleter("/order_details/integration"), "/order_details/integration", "required"),
    (deleter("/order_details/integration/id"), "/order_details/integration/id", "required"),
    (deleter("/order_details/status"), "/order_details/status", "required"),
    (deleter("/order_details/status/code"), "/order_details/status/code", "required"),
    (deleter("/order_details/order_created_at"), "/order_details/order_created_at", "required"),
    (deleter("/order_details/order_items"), "/order_details/order_items", "required"),
    (deleter("/order_details/order_items/0/name"), "/order_details/order_items/0/name",
     "required"),
    (deleter("/order_details/order_items/1/quantity"), "/order_details/order_items/1/quantity",
     "required"),
    (deleter("/order_details/order_items/0/total_price"),
     "/order_details/order_items/0/total_price", "required"),
    (deleter("/payment_details/total_price/currency"), "/payment_details/total_price/currency",
     "required"),
    (deleter("/payment_details/status"), "/payment_details/status", "required"),
    (deleter("/customer_details/name"), "/customer_details/name", "required"),
    (deleter("/shipping_details/ship_with/type"), "/shipping_details/ship_with/type",
     "required"),
    (deleter("/shipping_details/measurement/dimension/unit"),
     "/shipping_details/measurement/dimension/unit", "required"),
    # minLength
    (setter("/order_id", ""), "/order_id", "length"),
    (setter("/order_number", ""), "/order_number", "length"),
    (setter("/order_details/status/code", ""), "/order_details/status/code", "length"),
    (setter("/shipping_address/name", ""), "/shipping_address/name", "length"),
    (setter("/shipping_address/city", ""), "/shipping_address/city", "length"),
    (setter("/order_details/order_items/0/item_id", ""),
     "/order_details/order_items/0/item_id", "length"),
    (setter("/order_details/order_items/0/manufacturer_product_id", "x" * 71),
     "/order_details/order_items/0/manufacturer_product_id", "length"),
    # types: strict, nothing coerced
    (setter("/id", 669), "/id", "string"),
    (setter("/order_id", 555413), "/order_id", "string"),
    (setter("/order_details/integration/id", "7"), "/order_details/integration/id", "integer"),
    (setter("/order_details/integration/id", True), "/order_details/integration/id", "integer"),
    (setter("/order_details/order_items/0/quantity", "2"),
     "/order_details/order_items/0/quantity", "integer"),
    (setter("/order_details/order_items/0/quantity", 2.0),
     "/order_details/order_items/0/quantity", "integer"),
    (setter("/payment_details/total_price/value", "13.5"), "/payment_details/total_price/value",
     "number"),
    (setter("/payment_details/total_price/value", False), "/payment_details/total_price/value",
     "number"),
    (setter("/payment_details/is_cash_on_delivery", "yes"),
     "/payment_details/is_cash_on_delivery", "boolean"),
    (setter("/shipping_address/postal_code", 1234), "/shipping_address/postal_code", "string"),
    (setter("/order_details/order_items", {}), "/order_details/order_items", "list"),
    (setter("/order_details", "x"), "/order_details", "type"),
    (setter("/order_details/tags", None), "/order_details/tags", "null"),
    # ranges
    (setter("/order_details/order_items/0/quantity", 0),
     "/order_details/order_items/0/quantity", "greater than 0"),
    (setter("/order_details/order_items/0/quantity", -1),
     "/order_details/order_items/0/quantity", "greater than 0"),
    (setter("/order_details/integration/id", 0), "/order_details/integration/id", "greater"),
    (setter("/order_details/order_items/0/measurement/weight/value", 0),
     "/order_details/order_items/0/measurement/weight/value", "greater than 0"),
    (setter("/shipping_details/measurement/dimension/length", -1),
     "/shipping_details/measurement/dimension/length", "greater"),
    (setter("/shipping_details/measurement/volume/value", 1.5),
     "/shipping_details/measurement/volume/value", "integer"),
    (setter("/shipping_details/ship_with/properties/contract_id", 0),
     "/shipping_details/ship_with/properties/contract_id", "greater"),
    # enums
    (setter("/payment_details/total_price/currency", "CHF"),
     "/payment_details/total_price/currency", "one of"),
    (setter("/order_details/order_items/0/measurement/weight/unit", "stone"),
     "/order_details/order_items/0/measurement/weight/unit", "one of"),
    (setter("/customs_details/shipment_type", "bribe"), "/customs_details/shipment_type",
     "one of"),
    (setter("/customs_details/export_type", "B2B"), "/customs_details/export_type", "one of"),
    (setter("/shipping_details/ship_with/type", "carrier_code"),
     "/shipping_details/ship_with/type", "one of"),
    # formats
    (setter("/shipping_address/country_code", "XX"), "/shipping_address/country_code",
     "3166-1"),
    (setter("/shipping_address/country_code", "nl"), "/shipping_address/country_code",
     "3166-1"),
    (setter("/order_details/order_items/0/country_of_origin", "NLD"),
     "/order_details/order_items/0/country_of_origin", "length"),
    (setter("/customs_details/tax_numbers/sender/0/country_code", "ZZ"),
     "/customs_details/tax_numbers/sender/0/country_code", "3166-1"),
    (setter("/payment_details/discount_granted/value", "3,99"),
     "/payment_details/discount_granted/value", "decimal"),
    (setter("/payment_details/discount_granted/value", "-3.99"),
     "/payment_details/discount_granted/value", "decimal"),
    (setter("/payment_details/discount_granted/value", 3.99),
     "/payment_details/discount_granted/value", "string"),
    (setter("/payment_details/discount_granted/currency", "EURO"),
     "/payment_details/discount_granted/currency", "4217"),
    (setter("/order_details/order_created_at", "2024-05-01"),
     "/order_details/order_created_at", "ISO 8601"),
    (setter("/order_details/order_created_at", "2024-05-01T10:00:00"),
     "/order_details/order_created_at", "offset"),
    (setter("/order_details/order_created_at", 1714557600),
     "/order_details/order_created_at", "ISO 8601"),
    (setter("/order_details/order_items/0/delivery_dates/deliver_at", "soon"),
     "/order_details/order_items/0/delivery_dates/deliver_at", "ISO 8601"),
    (setter("/shipping_address/email", "jo at example.com"), "/shipping_address/email", "email"),
    # the address's required fields, only when an address is present
    (deleter("/shipping_address/country_code"), "/shipping_address/country_code", "required"),
    (deleter("/shipping_address/address_line_1"), "/shipping_address/address_line_1",
     "required"),
    # service point: exactly one identifier
    (setter("/service_point_details", {"id": "1", "carrier_service_point_id": "2"}),
     "/service_point_details", "exactly one"),
    (setter("/service_point_details", {"post_number": "1"}), "/service_point_details",
     "exactly one"),
])
def test_a_broken_field_is_reported_at_its_pointer(mutate: Mutation, pointer: str,
                                                   detail: str) -> None:
    data = order()
    mutate(data)
    errors = validate_order(data)
    assert {e.pointer for e in errors} == {pointer}, errors
    assert any(detail.lower() in e.detail.lower() for e in errors), errors


def test_an_address_names_every_missing_required_field() -> None:
    data = order()
    data["billing_address"] = {"name": "Jo", "company_name": "Sendcloud"}
    assert validate_order(data) == [
        FieldError(f"/billing_address/{name}", "Field required.")
        for name in ("address_line_1", "city", "country_code", "postal_code")]


@pytest.mark.parametrize("mutate", [
    deleter("/shipping_address"),                               # optional as a whole
    deleter("/service_point_details"),
    setter("/service_point_details", {"carrier_service_point_id": "91233"}),
    setter("/customs_details", None),
    setter("/customs_details/tax_numbers", None),
    setter("/order_details/order_items/0/delivery_dates", None),  # as GET returns it
    setter("/order_details/order_items/0/mid_code", None),
    setter("/payment_details/insurance_costs", {"value": None, "currency": None}),
    setter("/payment_details/total_price/value", -5),            # refunds: no minimum in spec
    setter("/shipping_address/country_code", "GB"),
    setter("/order_details/order_items", []),
    setter("/shipping_details/ship_with/properties/shipping_option_code", None),
    setter("/x_unknown", {"anything": [1, 2]}),                   # unknown keys are the API's call
    setter("/order_details/order_items/0/x_custom", 1),
    setter("/created_at", "2018-02-27T10:00:00.555Z"),           # read-only, as GET returns it
])
def test_valid_variations_pass(mutate: Mutation) -> None:
    data = order()
    mutate(data)
    assert validate_order(data) == []


def test_all_problems_are_reported_sorted_by_pointer() -> None:
    data = order()
    items = data["order_details"]["order_items"]
    items.extend(copy.deepcopy(items[1]) for _ in range(10))
    items[10]["quantity"] = 0
    items[2]["quantity"] = 0
    del data["order_id"]
    data["shipping_address"]["country_code"] = "XX"
    errors = validate_order(data)
    assert [e.pointer for e in errors] == [
        "/order_details/order_items/2/quantity",   # 2 before 10: indexes sort as numbers
        "/order_details/order_items/10/quantity",
        "/order_id",
        "/shipping_address/country_code",
    ]


@pytest.mark.parametrize("data", [None, [], "order"])
def test_a_non_object_is_one_error_about_the_whole(data: Any) -> None:
    assert [e.pointer for e in validate_order(data)] == [""]
    assert [e.pointer for e in validate_changes(data)] == [""]


# --- partial updates -----------------------------------------------------------------------------


@pytest.mark.parametrize("changes", [
    {},
    {"order_details": {"status": {"code": "fulfilled"}}},
    {"order_details": {"notes": None, "tags": None}},
    {"order_details": {"order_items": [{"name": "Candle", "quantity": 3}]}},
    {"order_details": {"order_items": [{"name": "Candle",
                                        "measurement": {"weight": {"value": 2}}}]}},
    {"payment_details": {"total_price": {"value": 4}}},
    {"shipping_address": {"city": "Breda"}},
    {"service_point_details": {"post_number": "123"}},
    {"customer_details": {"phone": "+31600000000"}},
    {"id": "669", "order_id": "555413"},
])
def test_valid_changes(changes: dict[str, Any]) -> None:
    assert validate_changes(changes) == []


@pytest.mark.parametrize(("changes", "pointer"), [
    ({"order_details": {"order_items": [{"quantity": 3}]}},
     "/order_details/order_items/0/name"),             # PATCH finds items by name
    ({"order_details": {"order_items": [{"name": "C", "quantity": "3"}]}},
     "/order_details/order_items/0/quantity"),
    ({"order_details": {"order_items": [{"name": "C", "quantity": 0}]}},
     "/order_details/order_items/0/quantity"),
    ({"order_details": {"integration": {"id": 0}}}, "/order_details/integration/id"),
    ({"shipping_address": {"country_code": "Netherlands"}}, "/shipping_address/country_code"),
    ({"service_point_details": {"id": "1", "carrier_service_point_id": "2"}},
     "/service_point_details"),
    ({"order_details": {"order_updated_at": "2024-01-01"}}, "/order_details/order_updated_at"),
    ({"payment_details": {"total_price": {"currency": "usd"}}},
     "/payment_details/total_price/currency"),
])
def test_invalid_changes(changes: dict[str, Any], pointer: str) -> None:
    assert [e.pointer for e in validate_changes(changes)] == [pointer]


# --- error conversion ----------------------------------------------------------------------------


def test_marshmallow_errors_become_json_pointers() -> None:
    messages = {
        "a/b": ["Bad slash."],
        "t~": {"_schema": ["Bad object."]},
        "items": {3: {"quantity": ["One.", "Two."]}},
        "_schema": ["Bad whole."],
    }
    assert to_field_errors(messages) == [
        FieldError("", "Bad whole."),
        FieldError("/a~1b", "Bad slash."),
        FieldError("/items/3/quantity", "One."),
        FieldError("/items/3/quantity", "Two."),
        FieldError("/t~0", "Bad object."),
    ]


# --- speed ---------------------------------------------------------------------------------------


def test_validation_keeps_up_with_large_files() -> None:
    """At least 1,000 orders a second on one core (the brief); measured on a full order, best of
    three runs so a busy machine does not make it flaky."""
    data, count = order(), 300
    best = min(_seconds(lambda: [validate_order(data) for _ in range(count)]) for _ in range(3))
    assert count / best > 1000, f"{count / best:.0f} orders/s"


def _seconds(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


# --- properties ----------------------------------------------------------------------------------


@given(st.sampled_from(["/order_id", "/order_number", "/order_details/integration/id",
                        "/order_details/order_created_at", "/payment_details/total_price"]),
       st.none() | st.booleans() | st.lists(st.integers(), max_size=2) | st.floats())
def test_garbage_in_a_required_field_is_always_reported_there(pointer: str, value: Any) -> None:
    data = order()
    setter(pointer, value)(data)
    assert pointer in {e.pointer for e in validate_order(data)}


@given(st.dictionaries(st.text(min_size=1, max_size=8).filter(lambda k: k not in order()),
                       st.integers() | st.text(max_size=5), max_size=4))
def test_extra_top_level_keys_never_make_an_order_invalid(extra: dict[str, Any]) -> None:
    assert validate_order({**order(), **extra}) == []
