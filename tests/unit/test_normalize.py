"""pipeline.normalize: loose input → canonical v3 order, as tables and properties."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import Schema, fields

from pipeline.errors import RecordRejected
from pipeline.normalize import (
    ORDER_RULES,
    Each,
    Obj,
    Unreadable,
    normalize_changes,
    normalize_order,
    normalize_timestamp,
    resolve_country,
)
from pipeline.schemas import CHANGES_SCHEMA, ORDER_SCHEMA, validate_order

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def order(**overrides: Any) -> dict[str, Any]:
    """A small valid canonical order; keyword arguments replace top-level keys."""
    base: dict[str, Any] = {
        "order_id": "A-1",
        "order_number": "1001",
        "order_details": {
            "integration": {"id": 7},
            "status": {"code": "paid"},
            "order_created_at": "2024-05-01T10:00:00+00:00",
            "order_items": [{"name": "Candle", "quantity": 1,
                             "total_price": {"value": 3.5, "currency": "EUR"}}],
        },
        "payment_details": {"total_price": {"value": 3.5, "currency": "EUR"},
                            "status": {"code": "paid"}},
        "shipping_address": {"name": "Jo", "address_line_1": "Main St", "postal_code": "1234AB",
                             "city": "Oss", "country_code": "NL"},
    }
    base.update(overrides)
    return base


def at(data: Any, pointer: str) -> Any:
    """The value at a JSON pointer."""
    for token in pointer.split("/")[1:]:
        data = data[int(token)] if isinstance(data, list) else data[token]
    return data


def rejected_pointers(data: dict[str, Any], **kwargs: Any) -> list[str]:
    with pytest.raises(RecordRejected) as info:
        normalize_order(data, **kwargs)
    return [e.pointer for e in info.value.errors]


# --- countries -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("given_value", "code"), [
    ("NL", "NL"), ("nl", "NL"), (" nl ", "NL"), ("NLD", "NL"), ("nld", "NL"),
    ("Netherlands", "NL"), ("the netherlands", "NL"), ("The Netherlands", "NL"),
    ("Kingdom of the Netherlands", "NL"), ("Holland", "NL"),
    ("Germany", "DE"), ("DEU", "DE"), ("United Kingdom", "GB"), ("UK", "GB"), ("u.k.", "GB"),
    ("Great Britain", "GB"), ("USA", "US"), ("U.S.A.", "US"), ("United States", "US"),
    ("United States of America", "US"), ("South Korea", "KR"), ("Republic of Korea", "KR"),
    ("Côte d'Ivoire", "CI"), ("Cote d'Ivoire", "CI"), ("Ivory Coast", "CI"),
    ("Bosnia & Herzegovina", "BA"), ("Türkiye", "TR"), ("Turkey", "TR"),
    ("Democratic Republic of the Congo", "CD"), ("Bolivia", "BO"), ("in", "IN"),
])
def test_country_names_and_codes_resolve_to_alpha_2(given_value: str, code: str) -> None:
    assert resolve_country(given_value) == code


@pytest.mark.parametrize(("given_value", "reason"), [
    ("Korea", "ambiguous"),            # North or South
    ("Congo", "ambiguous"),            # CG or CD
    ("Virgin Islands", "ambiguous"),   # VG or VI
    ("XX", "not an ISO 3166-1"),
    ("Atlantis", "not a country"),
    ("", "not a country"),
    ("Nederland", "not a country"),    # no guessing from other languages
])
def test_unknown_or_ambiguous_countries_are_rejected(given_value: str, reason: str) -> None:
    with pytest.raises(Unreadable, match=reason):
        resolve_country(given_value)


@pytest.mark.parametrize("pointer", [
    "/shipping_address/country_code",
    "/billing_address/country_code",
    "/order_details/order_items/0/country_of_origin",
    "/customs_details/tax_numbers/sender/0/country_code",
    "/customs_details/tax_numbers/receiver/0/country_code",
    "/customs_details/tax_numbers/importer_of_record/0/country_code",
])
def test_every_country_field_is_normalized_and_rejected_with_its_pointer(pointer: str) -> None:
    data = order(
        billing_address={"name": "Jo", "address_line_1": "x", "postal_code": "1",
                         "city": "Oss", "country_code": "NL"},
        customs_details={"tax_numbers": {role: [{"name": "VAT", "country_code": "NL"}]
                                          for role in ("sender", "receiver",
                                                       "importer_of_record")}},
    )
    data["order_details"]["order_items"][0]["country_of_origin"] = "NL"
    loose = copy.deepcopy(data)
    parent, _, name = pointer.rpartition("/")
    at(loose, parent)[name] = "the netherlands"
    assert at(normalize_order(loose), pointer) == "NL"
    at(loose, parent)[name] = "Korea"
    assert rejected_pointers(loose) == [pointer]


# --- currencies and numbers ----------------------------------------------------------------------


@pytest.mark.parametrize(("given_value", "expected"), [
    ("eur", "EUR"), (" Usd ", "USD"), ("GBP", "GBP"), ("chf", "CHF"),
])
def test_currencies_are_upper_case_iso_4217(given_value: str, expected: str) -> None:
    data = order()
    data["payment_details"]["total_price"]["currency"] = given_value
    assert normalize_order(data)["payment_details"]["total_price"]["currency"] == expected


@pytest.mark.parametrize("given_value", ["euro", "€", "XYZ", ""])
def test_unknown_currencies_are_rejected(given_value: str) -> None:
    data = order()
    data["payment_details"]["total_price"]["currency"] = given_value
    assert rejected_pointers(data) == ["/payment_details/total_price/currency"]


@pytest.mark.parametrize(("given_value", "expected"), [
    (2, 2), ("2", 2), (" 2 ", 2), ("2.0", 2), (2.0, 2), ("+3", 3),
    (True, True),        # not a number: left for the schema to report, never read as 1
    (None, None), ([2], [2]),
])
def test_quantities_become_integers(given_value: Any, expected: Any) -> None:
    data = order()
    data["order_details"]["order_items"][0]["quantity"] = given_value
    result = normalize_order(data)["order_details"]["order_items"][0]["quantity"]
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize("given_value", ["2.5", 2.5, "two", "", "1,0", "1e3", float("nan")])
def test_fractional_or_unreadable_quantities_are_rejected(given_value: Any) -> None:
    data = order()
    data["order_details"]["order_items"][0]["quantity"] = given_value
    assert rejected_pointers(data) == ["/order_details/order_items/0/quantity"]


@pytest.mark.parametrize(("given_value", "expected"), [
    ("3.50", 3.5), (" 3.5 ", 3.5), ("3", 3), (3.0, 3), (19.99, 19.99), ("-1.25", -1.25),
    (".5", 0.5), ("0.1", 0.1),
])
def test_prices_become_json_numbers(given_value: Any, expected: float) -> None:
    data = order()
    data["payment_details"]["total_price"]["value"] = given_value
    result = normalize_order(data)["payment_details"]["total_price"]["value"]
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize("given_value", ["3,50", "1.234,56", "1,234.56", "€3.50", "3.5 EUR",
                                         float("inf")])
def test_prices_that_need_a_guess_are_rejected(given_value: Any) -> None:
    data = order()
    data["payment_details"]["total_price"]["value"] = given_value
    assert rejected_pointers(data) == ["/payment_details/total_price/value"]


@pytest.mark.parametrize(("given_value", "expected"), [
    ("3.99", "3.99"), (" 3.99 ", "3.99"), (3.99, "3.99"), (5, "5"), (0.1, "0.1"),
    (None, None), ("3,99", "3,99"),  # a string stays a string; the schema's pattern rejects it
])
def test_costs_values_become_decimal_strings(given_value: Any, expected: Any) -> None:
    data = order()
    data["payment_details"]["discount_granted"] = {"value": given_value, "currency": "eur"}
    costs = normalize_order(data)["payment_details"]["discount_granted"]
    assert costs == {"value": expected, "currency": "EUR"}


@pytest.mark.parametrize(("measurement", "expected"), [
    ({"weight": {"value": "1.5", "unit": "KG"}}, {"weight": {"value": 1.5, "unit": "kg"}}),
    ({"volume": {"value": "4", "unit": "L"}}, {"volume": {"value": 4, "unit": "l"}}),
    ({"dimension": {"length": "10", "width": 20.0, "height": "0.5", "unit": "CM"}},
     {"dimension": {"length": 10, "width": 20, "height": 0.5, "unit": "cm"}}),
    ({"weight": {"value": 1, "unit": "stone"}}, {"weight": {"value": 1, "unit": "stone"}}),
])
def test_measurements(measurement: dict[str, Any], expected: dict[str, Any]) -> None:
    data = order(shipping_details={"measurement": measurement})
    assert normalize_order(data)["shipping_details"]["measurement"] == expected


def test_a_fractional_volume_is_rejected() -> None:
    data = order(shipping_details={"measurement": {"volume": {"value": "4.5", "unit": "l"}}})
    assert rejected_pointers(data) == ["/shipping_details/measurement/volume/value"]


# --- identifiers, strings, enums -----------------------------------------------------------------


@pytest.mark.parametrize(("pointer", "given_value", "expected"), [
    ("/id", 669, "669"),
    ("/id", " 669 ", "669"),
    ("/order_id", 555413, "555413"),
    ("/order_number", " OX-12 ", "OX-12"),
    ("/order_details/integration/id", "7", 7),
    ("/order_details/integration/id", " 7 ", 7),
    ("/order_details/status/code", "  paid ", "paid"),
    ("/shipping_address/city", "\tOss\n", "Oss"),
    ("/shipping_address/house_number", 15, "15"),
    # a number has already lost a postal code's leading zeros: left for the schema to reject
    ("/shipping_address/postal_code", 1234, 1234),
    ("/shipping_address/state_province_code", " nb ", "NB"),
    ("/shipping_details/ship_with/type", "Shipping_Option_Code", "shipping_option_code"),
    ("/customs_details/shipment_type", "GIFT", "gift"),
    ("/customs_details/export_type", "private ", "private"),
])
def test_scalar_rules(pointer: str, given_value: Any, expected: Any) -> None:
    data = order(shipping_details={"ship_with": {"type": "x"}},
                 customs_details={"shipment_type": "x", "export_type": "x"}, id="1")
    parent, _, name = pointer.rpartition("/")
    at(data, parent)[name] = given_value
    assert at(normalize_order(data), pointer) == expected


def test_unknown_keys_are_kept_exactly_and_copied() -> None:
    extra = {"nested": [{"a": " padded "}], "n": 1.0}
    data = order(custom_field=extra)
    data["order_details"]["order_items"][0]["properties"] = {"size": " L "}
    result = normalize_order(data)
    assert result["custom_field"] == extra
    assert result["custom_field"] is not extra
    assert result["order_details"]["order_items"][0]["properties"] == {"size": " L "}


def test_nothing_is_invented() -> None:
    assert normalize_order({}) == {}
    assert normalize_changes({"order_details": {}}) == {"order_details": {}}


def test_input_is_not_modified() -> None:
    data = order()
    data["order_details"]["order_items"][0]["quantity"] = "2"
    before = copy.deepcopy(data)
    normalize_order(data)
    assert data == before


def test_every_problem_is_reported_at_once() -> None:
    data = order()
    data["shipping_address"]["country_code"] = "Korea"
    data["order_details"]["order_items"][0]["quantity"] = "1.5"
    data["payment_details"]["total_price"]["currency"] = "euro"
    data["order_details"]["order_created_at"] = "yesterday"
    with pytest.raises(RecordRejected) as info:
        normalize_order(data)
    assert {e.pointer for e in info.value.errors} == {
        "/shipping_address/country_code", "/order_details/order_items/0/quantity",
        "/payment_details/total_price/currency", "/order_details/order_created_at"}
    assert "and 3 more" in info.value.reason


@pytest.mark.parametrize("data", [None, [], "order", 7])
def test_non_objects_are_rejected(data: Any) -> None:
    with pytest.raises(RecordRejected) as info:
        normalize_order(data)
    assert info.value.errors[0].pointer == ""


# --- timestamps ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("given_value", "source_tz", "expected"), [
    ("2018-02-27T10:00:00.555Z", UTC, "2018-02-27T10:00:00.555+00:00"),
    ("2018-02-27T10:00:00+02:00", UTC, "2018-02-27T10:00:00+02:00"),      # offset kept
    ("2018-02-27T10:00:00+0200", AMSTERDAM, "2018-02-27T10:00:00+02:00"),
    ("2018-02-27t10:00:00z", UTC, "2018-02-27T10:00:00+00:00"),
    ("2018-02-27T10:00:00.555309+00:00", UTC, "2018-02-27T10:00:00.555309+00:00"),
    ("2018-02-27 10:00:00", UTC, "2018-02-27T10:00:00+00:00"),
    ("2018-02-27 10:00:00", AMSTERDAM, "2018-02-27T09:00:00+00:00"),     # CET, naive → UTC
    ("2018-07-27T10:00", AMSTERDAM, "2018-07-27T08:00:00+00:00"),        # CEST
    (1519725600, AMSTERDAM, "2018-02-27T10:00:00+00:00"),                # epoch is always UTC
    (1519725600.5, UTC, "2018-02-27T10:00:00.500+00:00"),
    ("1519725600", UTC, "2018-02-27T10:00:00+00:00"),
    (" 1519725600.25 ", UTC, "2018-02-27T10:00:00.250+00:00"),
    (datetime(2018, 2, 27, 10, tzinfo=timezone(timedelta(hours=1))), UTC,
     "2018-02-27T10:00:00+01:00"),
    (datetime(2018, 2, 27, 10), AMSTERDAM, "2018-02-27T09:00:00+00:00"),
])
def test_timestamps(given_value: Any, source_tz: tzinfo, expected: str) -> None:
    assert normalize_timestamp(given_value, source_tz=source_tz) == expected
    assert normalize_timestamp(expected) == expected


@pytest.mark.parametrize(("given_value", "reason"), [
    ("2024-10-27T02:30:00", "happens twice"),          # DST ends: 02:30 occurs twice
    ("2024-03-31T02:30:00", "does not exist"),         # DST starts: 02:30 is skipped
    ("2018-02-27", "without a time"),
    ("20180227", "could be epoch seconds or a YYYYMMDD date"),
    ("27/02/2018 10:00", "not an ISO 8601"),           # day or month first?
    ("yesterday", "not an ISO 8601"),
    (1519725600555, "milliseconds"),
    (-1, "out of range"),
    (True, "not a timestamp"),
    ({"at": 1}, "not a timestamp"),
])
def test_unreadable_timestamps_are_rejected(given_value: Any, reason: str) -> None:
    with pytest.raises(RecordRejected, match=reason):
        normalize_timestamp(given_value, source_tz=AMSTERDAM)


@pytest.mark.parametrize("pointer", [
    "/order_details/order_created_at",
    "/order_details/order_updated_at",
    "/order_details/order_items/0/delivery_dates/handover_at",
    "/order_details/order_items/0/delivery_dates/deliver_at",
])
def test_every_timestamp_field_is_normalized(pointer: str) -> None:
    data = order()
    data["order_details"]["order_items"][0]["delivery_dates"] = {}
    parent, _, name = pointer.rpartition("/")
    at(data, parent)[name] = "2018-02-27 11:00"
    assert at(normalize_order(data, source_tz=AMSTERDAM), pointer) == "2018-02-27T10:00:00+00:00"


def test_null_delivery_dates_stay_null() -> None:
    data = order()
    data["order_details"]["order_items"][0]["delivery_dates"] = {"handover_at": None}
    item = normalize_order(data)["order_details"]["order_items"][0]
    assert item["delivery_dates"] == {"handover_at": None}


# --- the rules cover the spec --------------------------------------------------------------------


def _schema_paths(schema: Schema, prefix: str = "") -> Iterator[str]:
    for name, field in schema.fields.items():
        path = f"{prefix}/{name}"
        yield path
        inner = field.inner if isinstance(field, fields.List) else field
        if isinstance(inner, fields.Nested) and isinstance(inner.schema, Schema):
            yield from _schema_paths(inner.schema, path)


def _rule_paths(rule: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(rule, Each):
        yield from _rule_paths(rule.item, prefix)
    elif isinstance(rule, Obj):
        for name, sub in rule.fields.items():
            yield f"{prefix}/{name}"
            yield from _rule_paths(sub, f"{prefix}/{name}")


def test_normalization_rules_and_schemas_name_the_same_fields() -> None:
    schema_paths = set(_schema_paths(ORDER_SCHEMA)) | set(_schema_paths(CHANGES_SCHEMA))
    assert set(_rule_paths(ORDER_RULES)) == schema_paths


# --- properties ----------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=8) \
    | st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=8)
countries = st.sampled_from(["nl", "NL", " Netherlands ", "NLD", "the netherlands", "de",
                             "Germany", "United Kingdom", "UK", "usa", "Belgium", "fr"])
currencies = st.sampled_from(["eur", "EUR", " Usd ", "gbp"])
quantities = st.integers(1, 999).flatmap(
    lambda n: st.sampled_from([n, str(n), f"{n}.0", float(n), f" {n} "]))
amounts = st.one_of(
    st.decimals(min_value=0, max_value=10**6, places=2).map(str),
    st.floats(min_value=0, max_value=1e6),
    st.integers(0, 10**6),
)
zones = st.sampled_from([UTC, AMSTERDAM, ZoneInfo("America/New_York"),
                         timezone(timedelta(hours=5, minutes=30))])
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1))
timestamps = st.one_of(
    st.builds(lambda m, z: m.replace(tzinfo=z).isoformat(), moments, zones),
    moments.map(lambda m: m.isoformat(sep=" ")),                # naive: read in source_tz
    st.integers(946_684_800, 4_000_000_000),                    # epoch seconds
    st.integers(946_684_800, 4_000_000_000).map(str),
    st.builds(lambda m, z: m.replace(tzinfo=z), moments, zones),
)
texts = st.text(min_size=1, max_size=12).filter(lambda s: s.strip()).map(lambda s: f" {s} ")


@st.composite
def loose_orders(draw: st.DrawFn) -> dict[str, Any]:
    """Orders as shops send them: unambiguous but untidy, with extra keys of their own."""
    price = st.fixed_dictionaries({"value": amounts, "currency": currencies})
    item = st.fixed_dictionaries(
        {"name": texts, "quantity": quantities, "total_price": price},
        optional={"unit_price": price, "country_of_origin": countries, "sku": texts,
                  "properties": st.dictionaries(st.text(max_size=5), json_values, max_size=2),
                  "measurement": st.fixed_dictionaries({"weight": st.fixed_dictionaries({
                      "value": st.integers(1, 50).map(str), "unit": st.sampled_from(
                          ["kg", "KG", "g", "Lbs"])})})})
    address = st.fixed_dictionaries(
        {"name": texts, "address_line_1": texts, "postal_code": texts, "city": texts,
         "country_code": countries},
        optional={"house_number": st.integers(1, 300) | texts, "company_name": texts})
    data = draw(st.fixed_dictionaries(
        {
            "order_id": texts | st.integers(1, 10**9),
            "order_number": texts,
            "order_details": st.fixed_dictionaries(
                {"integration": st.fixed_dictionaries(
                    {"id": st.integers(1, 10**6) | st.integers(1, 10**6).map(str)}),
                 "status": st.fixed_dictionaries({"code": texts}),
                 "order_created_at": timestamps,
                 "order_items": st.lists(item, min_size=1, max_size=3)},
                optional={"order_updated_at": timestamps,
                          "tags": st.lists(texts, max_size=2)}),
            "payment_details": st.fixed_dictionaries(
                {"total_price": price, "status": st.fixed_dictionaries({"code": texts})},
                optional={"discount_granted": st.fixed_dictionaries(
                    {"value": amounts, "currency": currencies})}),
        },
        optional={"shipping_address": address, "billing_address": address,
                  "id": st.integers(1, 10**6)}))
    extras = draw(st.dictionaries(st.sampled_from(["x_shop", "meta", "channel"]), json_values,
                                  max_size=2))
    return {**data, **extras}


def _normalized_or_none(data: dict[str, Any], source_tz: tzinfo) -> dict[str, Any] | None:
    try:
        return normalize_order(data, source_tz=source_tz)
    except RecordRejected as exc:
        # Only a wall-clock time inside a DST change may be refused in these orders.
        assert all("daylight saving" in e.detail for e in exc.errors), exc.errors
        return None


def _pointers(data: Any, prefix: str = "") -> set[str]:
    if isinstance(data, dict):
        return {prefix} | {p for k, v in data.items() for p in _pointers(v, f"{prefix}/{k}")}
    if isinstance(data, list):
        return {prefix} | {p for i, v in enumerate(data) for p in _pointers(v, f"{prefix}/{i}")}
    return {prefix}


@settings(max_examples=300)
@given(loose_orders(), zones)
def test_normalize_is_idempotent(data: dict[str, Any], source_tz: tzinfo) -> None:
    once = _normalized_or_none(data, source_tz)
    if once is not None:
        assert normalize_order(once, source_tz=source_tz) == once
        # …and whatever zone the second pass assumes: canonical timestamps carry their offset.
        assert normalize_order(once) == once


@given(loose_orders(), zones)
def test_normalize_keeps_the_shape_and_the_input(data: dict[str, Any], source_tz: tzinfo) -> None:
    before = copy.deepcopy(data)
    once = _normalized_or_none(data, source_tz)
    assert data == before
    if once is not None:
        assert _pointers(once) == _pointers(data)  # no key added, none dropped


@settings(max_examples=200)
@given(loose_orders(), zones)
def test_loose_but_unambiguous_orders_validate_once_normalized(data: dict[str, Any],
                                                               source_tz: tzinfo) -> None:
    once = _normalized_or_none(data, source_tz)
    if once is not None:
        assert validate_order(once) == []


@given(json_values)
def test_unknown_values_of_any_shape_survive(value: Any) -> None:
    assert normalize_order({"anything": value}) == {"anything": value}
