"""pipeline.records: producer records → operations, identity, version, messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.errors import RecordRejected
from pipeline.records import (
    Operation,
    order_key,
    order_version,
    parse_record,
    validate_operation,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def order(**details: Any) -> dict[str, Any]:
    """A valid order, loosely typed the way shops send it; keyword arguments go to
    order_details."""
    return {
        "order_id": " A-1 ",
        "order_number": "1001",
        "order_details": {
            "integration": {"id": "7"},
            "status": {"code": "paid"},
            "order_created_at": "2024-05-01T10:00:00Z",
            "order_items": [{"name": "Candle", "quantity": "2",
                             "total_price": {"value": "3.50", "currency": "eur"}}],
            **details,
        },
        "payment_details": {"total_price": {"value": 7, "currency": "EUR"},
                            "status": {"code": "paid"}},
        "shipping_address": {"name": "Jo", "address_line_1": "Main St", "postal_code": "1234AB",
                             "city": "Oss", "country_code": "netherlands"},
    }


def rejection(record: Any, **kwargs: Any) -> RecordRejected:
    with pytest.raises(RecordRejected) as info:
        parse_record(record, now=NOW, **kwargs)
    return info.value


# --- upserts -------------------------------------------------------------------------------------


@pytest.mark.parametrize("record", [order(), {"op": "upsert", "order": order()},
                                    {"op": " UPSERT ", "order": order()}])
def test_an_upsert_is_normalized_and_keyed(record: dict[str, Any]) -> None:
    op = parse_record(record, now=NOW)
    assert (op.kind, op.key, op.explicit_version) == ("upsert", (7, "A-1"), True)
    assert op.version == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert op.payload["shipping_address"]["country_code"] == "NL"
    assert op.payload["order_details"]["order_items"][0]["quantity"] == 2
    assert op.payload["order_details"]["integration"]["id"] == 7


@pytest.mark.parametrize(("details", "version"), [
    ({}, datetime(2024, 5, 1, 10, tzinfo=UTC)),
    ({"order_updated_at": "2024-05-02T10:00:00+02:00"}, datetime(2024, 5, 2, 8, tzinfo=UTC)),
    ({"order_updated_at": None}, datetime(2024, 5, 1, 10, tzinfo=UTC)),
    ({"order_updated_at": 1714644000}, datetime(2024, 5, 2, 10, tzinfo=UTC)),
])
def test_the_version_of_an_upsert(details: dict[str, Any], version: datetime) -> None:
    op = parse_record(order(**details), now=NOW)
    assert op.version == version
    assert op.version.tzinfo is UTC


def test_naive_order_timestamps_are_read_in_the_source_zone() -> None:
    op = parse_record(order(order_created_at="2024-05-01 12:00"), now=NOW, source_tz=AMSTERDAM)
    assert op.version == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert op.payload["order_details"]["order_created_at"] == "2024-05-01T10:00:00+00:00"


def test_a_record_that_cannot_be_normalized_keeps_its_key_for_the_dead_letters() -> None:
    record = order()
    record["shipping_address"]["country_code"] = "Korea"
    error = rejection(record)
    assert error.key == (7, "A-1")
    assert [e.pointer for e in error.errors] == ["/shipping_address/country_code"]
    assert "ambiguous" in error.reason


@pytest.mark.parametrize(("mutate", "pointers", "key"), [
    (lambda o: o.pop("order_id"), ["/order_id"], None),
    (lambda o: o["order_details"].pop("integration"), ["/order_details/integration/id"], None),
    (lambda o: o["order_details"]["integration"].update(id="seven"),
     ["/order_details/integration/id"], None),
    (lambda o: o["order_details"]["integration"].update(id=0),
     ["/order_details/integration/id"], None),
    (lambda o: o.update(order_id="  "), ["/order_id"], None),
    (lambda o: o["order_details"].pop("order_created_at"), ["/order_details/order_created_at"],
     (7, "A-1")),
    (lambda o: o["order_details"].update(order_updated_at="2024-05-02"),
     ["/order_details/order_updated_at"], (7, "A-1")),
])
def test_an_upsert_without_identity_or_version_is_rejected(mutate: Any, pointers: list[str],
                                                           key: Any) -> None:
    record = order()
    mutate(record)
    error = rejection(record)
    assert [e.pointer for e in error.errors] == pointers
    assert error.key == key


def test_parse_record_does_not_run_the_schemas() -> None:
    record = order()
    del record["payment_details"]            # required by the spec, but that is validate's job
    op = parse_record(record, now=NOW)
    with pytest.raises(RecordRejected) as info:
        validate_operation(op)
    assert info.value.key == (7, "A-1")
    assert [e.pointer for e in info.value.errors] == ["/payment_details"]


# --- patches and deletes -------------------------------------------------------------------------


def test_a_patch_with_a_version() -> None:
    record = {"op": "patch", "integration_id": "7", "order_id": "A-1",
              "version": "2024-06-01T12:00:00+02:00",
              "changes": {"shipping_address": {"country_code": "de", "city": " Berlin "}}}
    op = parse_record(record, now=NOW)
    assert (op.kind, op.key, op.explicit_version) == ("patch", (7, "A-1"), True)
    assert op.version == datetime(2024, 6, 1, 10, tzinfo=UTC)
    assert op.payload == {"shipping_address": {"country_code": "DE", "city": "Berlin"}}


@pytest.mark.parametrize("kind", ["patch", "delete"])
def test_without_a_version_the_arrival_time_is_used(kind: str) -> None:
    record: dict[str, Any] = {"op": kind, "integration_id": 7, "order_id": "A-1"}
    if kind == "patch":
        record["changes"] = {}
    arrival = datetime(2026, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    op = parse_record(record, now=arrival)
    assert op.version == NOW
    assert op.version.tzinfo is UTC
    assert op.explicit_version is False


def test_a_delete() -> None:
    op = parse_record({"op": "delete", "integration_id": 7, "order_id": 555413,
                       "version": 1714644000}, now=NOW)
    assert (op.kind, op.key, op.payload) == ("delete", (7, "555413"), {})
    assert op.version == datetime(2024, 5, 2, 10, tzinfo=UTC)
    assert validate_operation(op) is op


def test_naive_versions_are_read_in_the_source_zone() -> None:
    op = parse_record({"op": "delete", "integration_id": 7, "order_id": "A",
                       "version": "2024-05-01T12:00"}, now=NOW, source_tz=AMSTERDAM)
    assert op.version == datetime(2024, 5, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(("record", "needle", "key"), [
    ([1, 2], "JSON object", None),
    ("order", "JSON object", None),
    ({"op": "create", "order": {}}, "not one of", None),
    ({"op": None}, "not one of", None),
    ({"op": "upsert"}, "missing 'order'", None),
    ({"op": "upsert", "order": [order()]}, "'order' must be a JSON object", None),
    ({"op": "upsert", "order": order(), "version": "2024-01-01T00:00:00Z"},
     "unexpected key 'version'", None),
    ({"op": "patch", "integration_id": 7, "order_id": "A"}, "missing 'changes'", None),
    ({"op": "patch", "integration_id": 7, "order_id": "A", "chagnes": {}},
     "unexpected key 'chagnes'", None),
    ({"op": "patch", "integration_id": 7, "order_id": "A", "changes": "x"},
     "'changes' must be a JSON object", (7, "A")),
    ({"op": "delete", "order_id": "A"}, "missing 'integration_id'", None),
    ({"op": "delete", "integration_id": "seven", "order_id": "A"}, "no usable identity", None),
    ({"op": "delete", "integration_id": 7.5, "order_id": "A"}, "no usable identity", None),
    ({"op": "delete", "integration_id": True, "order_id": "A"}, "no usable identity", None),
    ({"op": "delete", "integration_id": 7, "order_id": ""}, "no usable identity", None),
    ({"op": "delete", "integration_id": 7, "order_id": "A", "version": "last week"},
     "version", (7, "A")),
    ({"op": "delete", "integration_id": 7, "order_id": "A", "version": "2024-10-27T02:30"},
     "daylight saving", (7, "A")),
    ({"op": "patch", "integration_id": 7, "order_id": "A",
      "changes": {"order_details": {"order_items": [{"name": "x", "quantity": "1.5"}]}}},
     "whole number", (7, "A")),
    ({"op": "patch", "integration_id": 7, "order_id": "A", "changes": {"order_id": "B"}},
     "cannot be changed", (7, "A")),
    ({"op": "patch", "integration_id": 7, "order_id": "A",
      "changes": {"order_details": {"integration": {"id": "8"}}}},
     "cannot be changed", (7, "A")),
])
def test_malformed_records_are_rejected(record: Any, needle: str, key: Any) -> None:
    error = rejection(record, source_tz=AMSTERDAM)
    assert needle in error.reason
    assert error.key == key
    assert error.errors, "a rejection always says what is wrong"


def test_a_patch_may_repeat_its_identity_when_it_agrees() -> None:
    record = {"op": "patch", "integration_id": 7, "order_id": "A",
              "changes": {"order_id": " A ", "order_details": {"integration": {"id": "7"}}}}
    op = parse_record(record, now=NOW)
    assert op.payload == {"order_id": "A", "order_details": {"integration": {"id": 7}}}
    assert validate_operation(op) is op


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_record(order(), now=datetime(2026, 3, 1))


# --- identity and version helpers ----------------------------------------------------------------


@pytest.mark.parametrize(("data", "key"), [
    ({"order_id": "A", "order_details": {"integration": {"id": 7}}}, (7, "A")),
    ({"order_id": 12, "order_details": {"integration": {"id": "7"}}}, (7, "12")),
])
def test_order_key(data: dict[str, Any], key: tuple[int, str]) -> None:
    assert order_key(data) == key


@pytest.mark.parametrize("data", [{}, {"order_id": "A"}, {"order_details": {"integration": {}}},
                                  {"order_id": "A", "order_details": "x"}])
def test_order_key_names_what_is_missing(data: dict[str, Any]) -> None:
    with pytest.raises(RecordRejected) as info:
        order_key(data)
    assert info.value.errors


def test_order_version_prefers_the_update_time() -> None:
    details = {"order_created_at": "2024-01-01T00:00:00+00:00",
               "order_updated_at": "2024-01-02T01:00:00+01:00"}
    assert order_version({"order_details": details}) == datetime(2024, 1, 2, tzinfo=UTC)
    with pytest.raises(RecordRejected):
        order_version({"order_details": {}})


# --- validation ----------------------------------------------------------------------------------


def test_validate_operation_passes_a_valid_upsert_through() -> None:
    op = parse_record(order(), now=NOW)
    assert validate_operation(op) is op


def test_validate_operation_reports_every_field_with_the_key() -> None:
    record = order()
    record["order_details"]["order_items"][0]["quantity"] = 0
    record["order_number"] = ""
    op = parse_record(record, now=NOW)
    with pytest.raises(RecordRejected) as info:
        validate_operation(op)
    assert info.value.key == (7, "A-1")
    assert [e.pointer for e in info.value.errors] == ["/order_details/order_items/0/quantity",
                                                      "/order_number"]
    assert "and 1 more" in info.value.reason


def test_validate_operation_checks_patches() -> None:
    op = parse_record({"op": "patch", "integration_id": 7, "order_id": "A",
                       "changes": {"order_details": {"order_items": [{"quantity": 2}]}}},
                      now=NOW)
    with pytest.raises(RecordRejected) as info:
        validate_operation(op)
    assert [e.pointer for e in info.value.errors] == ["/order_details/order_items/0/name"]


def test_validate_operation_refuses_an_upsert_filed_under_another_key() -> None:
    op = parse_record(order(), now=NOW)
    wrong = Operation("upsert", (8, "A-1"), op.version, op.payload)
    with pytest.raises(RecordRejected) as info:
        validate_operation(wrong)
    assert info.value.key == (8, "A-1")


def test_validate_operation_checks_a_delete_key() -> None:
    with pytest.raises(RecordRejected):
        validate_operation(Operation("delete", (0, "A"), NOW, {}))


# --- the Operation value -------------------------------------------------------------------------


def test_an_operation_needs_an_aware_version_and_stores_it_in_utc() -> None:
    with pytest.raises(ValueError, match="aware"):
        Operation("delete", (7, "A"), datetime(2026, 1, 1), {})
    op = Operation("delete", (7, "A"), datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
                   {})
    assert op.version == datetime(2026, 1, 1, tzinfo=UTC)
    assert op.version.tzinfo is UTC
    assert hash(op) == hash(Operation("delete", (7, "A"), datetime(2026, 1, 1, tzinfo=UTC), {}))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=10)
operations = st.builds(
    Operation,
    kind=st.sampled_from(["upsert", "patch", "delete"]),
    key=st.tuples(st.integers(1, 10**9), st.text(min_size=1, max_size=10)),
    version=st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5)),
                                                    AMSTERDAM])),
    payload=st.dictionaries(st.text(max_size=5), json_values, max_size=4),
    explicit_version=st.booleans(),
)


@given(operations)
def test_messages_round_trip_through_json(op: Operation) -> None:
    message = json.loads(json.dumps(op.to_message()))
    assert Operation.from_message(message) == op


@given(operations)
def test_a_message_does_not_share_the_payload(op: Operation) -> None:
    message = op.to_message()
    message["payload"]["__new"] = 1
    assert "__new" not in op.payload


@pytest.mark.parametrize("message", [
    {},
    {"kind": "upsert", "integration_id": 7, "order_id": "A", "version": "nope", "payload": {},
     "explicit_version": True},
    {"kind": "merge", "integration_id": 7, "order_id": "A",
     "version": "2024-01-01T00:00:00+00:00", "payload": {}, "explicit_version": True},
    {"kind": "upsert", "integration_id": "7", "order_id": "A",
     "version": "2024-01-01T00:00:00+00:00", "payload": {}, "explicit_version": True},
    {"kind": "upsert", "integration_id": 7, "order_id": "A",
     "version": "2024-01-01T00:00:00", "payload": {}, "explicit_version": True},
    {"kind": "upsert", "integration_id": 7, "order_id": "A",
     "version": "2024-01-01T00:00:00+00:00", "payload": [], "explicit_version": True},
])
def test_malformed_messages_raise_value_error(message: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Operation.from_message(message)


@given(st.sampled_from(["nl", "NLD", "Netherlands", "the netherlands"]),
       st.integers(1, 10**6), st.integers(1, 999))
def test_parsed_upserts_always_pass_validation(country: str, integration: int,
                                               quantity: int) -> None:
    record = order()
    record["shipping_address"]["country_code"] = country
    record["order_details"]["integration"]["id"] = str(integration)
    record["order_details"]["order_items"][0]["quantity"] = f"{quantity}.0"
    op = validate_operation(parse_record(record, now=NOW))
    assert op.key == (integration, "A-1")
