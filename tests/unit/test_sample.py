"""pipeline.sample: realistic, schema-valid, reproducible, exact rates, streamed."""

from __future__ import annotations

import copy
import heapq
import inspect
import io
import json
import os
import re
import tracemalloc
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import pycountry
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pipeline.sample as sample_module
from pipeline.sample import (
    CLIENT_DEFECTS,
    COUNTRIES,
    KINDS,
    REORDER_WINDOW,
    SERVER_REJECTED_INTEGRATION,
    SampleRecord,
    SampleSpec,
    generate,
    generate_labeled,
    write_jsonl,
)

SPEC_PATH = (Path(__file__).resolve().parents[2].parent
             / "shared/reference/sendcloud/orders/openapi.yaml")

EVERYTHING = SampleSpec(count=600, seed=11, invalid_client_rate=0.05, invalid_server_rate=0.03,
                        update_rate=0.3, out_of_order_rate=0.4, patch_rate=0.2, delete_rate=0.1,
                        loose_rate=0.2)

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
POSTCODE = {
    "NL": r"^[1-9]\d{3} [A-Z]{2}$",
    "DE": r"^\d{5}$",
    "FR": r"^\d{5}$",
    "BE": r"^[1-9]\d{3}$",
    "GB": r"^[A-Z]{1,2}\d[A-Z\d]? \d[ABD-HJLNP-UW-Z]{2}$",
    "US": r"^\d{5}$",
    "ES": r"^\d{5}$",
    "IT": r"^\d{5}$",
    "AT": r"^[1-9]\d{3}$",
}
CURRENCY = {"GB": "GBP", "US": "USD"}  # everyone else pays in EUR
SUBDIVISIONS = {subdivision.code for subdivision in pycountry.subdivisions}
PHONE = re.compile(r"^\+\d{8,15}$")
EMAIL = re.compile(r"^[a-z0-9.]+@example\.(com|org|net)$")


# --- helpers ---------------------------------------------------------------------------------


def order_of(record: dict[str, Any]) -> dict[str, Any]:
    """The order object of an upsert record, in either of the two forms of CONTRACT §1."""
    if record.get("op") == "upsert":
        inner: dict[str, Any] = record["order"]
        return inner
    assert "op" not in record
    return record


def key_of(record: dict[str, Any]) -> tuple[int, str]:
    if record.get("op") in ("patch", "delete"):
        return record["integration_id"], record["order_id"]
    order = order_of(record)
    return order["order_details"]["integration"]["id"], order["order_id"]


def version_of(record: dict[str, Any]) -> datetime:
    if record.get("op") in ("patch", "delete"):
        return datetime.fromisoformat(record["version"])
    details = order_of(record)["order_details"]
    moment = datetime.fromisoformat(details.get("order_updated_at") or details["order_created_at"])
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # loose: naive means UTC


def cents(price: dict[str, Any]) -> int:
    return round(float(price["value"]) * 100)


def canonical_orders(samples: list[SampleRecord]) -> Iterator[dict[str, Any]]:
    for sample in samples:
        if sample.kind in ("upsert", "update", "stale", "invalid_server") and not sample.loose:
            yield order_of(sample.record)


def tiny_normalize(order: dict[str, Any]) -> dict[str, Any]:
    """Undo exactly the looseness CONTRACT §1 allows; stands in for pipeline.normalize here."""
    fixed = copy.deepcopy(order)
    for key in ("shipping_address", "billing_address"):
        if key in fixed:
            fixed[key]["country_code"] = pycountry.countries.lookup(
                fixed[key]["country_code"]).alpha_2
    details = fixed["order_details"]
    for key in ("order_created_at", "order_updated_at"):
        if key in details and not details[key].endswith("Z"):
            details[key] += "Z"
    prices = [fixed["payment_details"][k] for k in ("total_price", "subtotal_price",
                                                      "estimated_shipping_price")]
    for item in details["order_items"]:
        item["quantity"] = int(item["quantity"])
        prices += [item["unit_price"], item["total_price"]]
    for price in prices:
        price["value"] = float(price["value"])
    for price in [*prices, fixed["payment_details"].get("discount_granted")]:
        if price:
            price["currency"] = price["currency"].upper()
    return fixed


# --- the official schema ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> Callable[[str], Any]:
    """Validator factory for a component schema of the official spec, $refs resolved."""
    if not SPEC_PATH.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"the official Orders spec is missing in CI: {SPEC_PATH}")
        pytest.skip(f"official Orders spec not found at {SPEC_PATH}")
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    document = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    # OpenAPI 3.1 schemas are JSON Schema 2020-12; register the whole document so that
    # "#/components/schemas/…" references resolve inside it.
    registry = Registry().with_resource(
        "urn:sendcloud:orders", Resource.from_contents(document, default_specification=DRAFT202012))

    def validator(name: str) -> Any:
        return Draft202012Validator({"$ref": f"urn:sendcloud:orders#/components/schemas/{name}"},
                                    registry=registry,
                                    format_checker=Draft202012Validator.FORMAT_CHECKER)

    return validator


def test_every_canonical_order_is_valid_against_the_official_schema(schema: Any) -> None:
    order_schema = schema("order")
    samples = list(generate_labeled(EVERYTHING))
    checked = 0
    for order in canonical_orders(samples):
        errors = sorted(order_schema.iter_errors(order), key=str)
        assert not errors, f"{order['order_id']}: {errors[0].message} at {list(errors[0].path)}"
        checked += 1
    assert checked > 500


def test_a_plain_spec_is_all_schema_valid_orders(schema: Any) -> None:
    order_schema = schema("order")
    records = list(generate(SampleSpec(count=300, seed=3)))
    assert len(records) == 300
    for record in records:
        order_schema.validate(order_of(record))


def test_patch_changes_fit_the_official_partial_update_body(schema: Any) -> None:
    partial = schema("order-partial-update")
    patches = [s.record for s in generate_labeled(EVERYTHING) if s.kind == "patch"]
    assert patches
    for patch in patches:
        partial.validate(patch["changes"])


def test_loose_orders_become_schema_valid_after_normalization(schema: Any) -> None:
    order_schema = schema("order")
    loose = [s for s in generate_labeled(EVERYTHING) if s.loose]
    assert loose
    for sample in loose:
        order_schema.validate(tiny_normalize(order_of(sample.record)))


def test_client_defects_the_schema_alone_can_see(schema: Any) -> None:
    # quantity 0 and "Atlantis" pass the official schema: only a real pre-flight catches them.
    order_schema = schema("order")
    spec = SampleSpec(count=400, seed=5, invalid_client_rate=0.25)
    for sample in generate_labeled(spec):
        if sample.defect in ("missing_order_number", "bad_currency"):
            assert not order_schema.is_valid(sample.record)


# --- determinism -----------------------------------------------------------------------------


def test_same_spec_same_records() -> None:
    assert list(generate(EVERYTHING)) == list(generate(EVERYTHING))


def test_another_seed_other_records() -> None:
    other = SampleSpec(count=50, seed=12)
    assert list(generate(SampleSpec(count=50, seed=11))) != list(generate(other))


def test_order_content_does_not_depend_on_the_rates() -> None:
    # Loosening and the envelope draw from their own streams: same orders, written differently.
    plain = list(generate_labeled(SampleSpec(count=200, seed=9, update_rate=0.5)))
    loose = list(generate_labeled(SampleSpec(count=200, seed=9, update_rate=0.5, loose_rate=1.0)))
    assert [s.kind for s in plain] == [s.kind for s in loose]
    assert all(s.loose for s in loose)
    for strict, sloppy in zip(plain, loose, strict=True):
        assert sloppy.record != strict.record
        assert tiny_normalize(order_of(sloppy.record)) == order_of(strict.record)


def test_prefix_is_stable_when_count_grows() -> None:
    first = [order_of(r) for r in generate(SampleSpec(count=20, seed=4))]
    longer = [order_of(r) for r in islice(generate(SampleSpec(count=200, seed=4)), 20)]
    assert first == longer


# --- rates are exact -------------------------------------------------------------------------


def test_rates_give_exact_counts() -> None:
    samples = list(generate_labeled(EVERYTHING))
    kinds = Counter(s.kind for s in samples)
    assert set(kinds) <= set(KINDS)
    assert kinds["invalid_client"] == 30  # 5 % of 600
    assert kinds["invalid_server"] == 18  # 3 % of 600
    valid = 600 - 30 - 18
    assert kinds["upsert"] + kinds["stale"] == valid  # one first version per valid order
    assert kinds["update"] == int(valid * 0.3 + 0.5)
    assert kinds["stale"] == int(kinds["update"] * 0.4 + 0.5)
    assert kinds["patch"] == int(valid * 0.2 + 0.5)
    assert kinds["delete"] == int(valid * 0.1 + 0.5)
    loose_orders = {key_of(s.record) for s in samples if s.loose}
    assert len(loose_orders) == int(valid * 0.2 + 0.5)
    assert {key_of(s.record)[0] for s in samples if s.kind == "invalid_server"} == {
        SERVER_REJECTED_INTEGRATION}
    assert {s.defect for s in samples if s.kind == "invalid_client"} == set(CLIENT_DEFECTS)


def test_every_record_is_a_contract_record() -> None:
    for sample in generate_labeled(EVERYTHING):
        record = sample.record
        op = record.get("op")
        if op == "patch":
            assert set(record) == {"op", "integration_id", "order_id", "version", "changes"}
        elif op == "delete":
            assert set(record) == {"op", "integration_id", "order_id", "version"}
        elif op == "upsert":
            assert set(record) == {"op", "order"}
        else:
            assert op is None and "order_details" in record
        if op in ("patch", "delete"):
            assert ISO_Z.match(record["version"])


def test_client_defects_are_the_documented_ones() -> None:
    spec = SampleSpec(count=200, seed=5, invalid_client_rate=1.0)
    samples = list(generate_labeled(spec))
    assert len(samples) == 200 and all(s.kind == "invalid_client" for s in samples)
    for sample in samples:
        order = sample.record
        if sample.defect == "quantity_zero":
            assert order["order_details"]["order_items"][0]["quantity"] == 0
        elif sample.defect == "missing_order_number":
            assert "order_number" not in order
        elif sample.defect == "unknown_country":
            assert order["shipping_address"]["country_code"] == "Atlantis"
        else:
            assert sample.defect == "bad_currency"
            assert order["payment_details"]["total_price"]["currency"] == "EURO"


# --- identity and versions -------------------------------------------------------------------


def test_identity_is_unique_and_stable() -> None:
    firsts: Counter[tuple[int, str]] = Counter()
    integrations_by_id: dict[str, set[int]] = defaultdict(set)
    for sample in generate_labeled(EVERYTHING):
        integration, order_id = key_of(sample.record)
        integrations_by_id[order_id].add(integration)
        if sample.kind in ("upsert", "stale", "invalid_client", "invalid_server"):
            firsts[(integration, order_id)] += 1  # the order's first version, exactly once
    assert set(firsts.values()) == {1}
    assert all(len(ids) == 1 for ids in integrations_by_id.values())
    assert len(integrations_by_id) == EVERYTHING.count
    integrations = {next(iter(ids)) for ids in integrations_by_id.values()}
    assert integrations == {*EVERYTHING.integrations, SERVER_REJECTED_INTEGRATION}


def test_versions_grow_and_late_versions_really_are_late() -> None:
    by_order: dict[tuple[int, str], list[tuple[int, SampleRecord]]] = defaultdict(list)
    newest_order = -1
    for position, sample in enumerate(generate_labeled(EVERYTHING)):
        key = key_of(sample.record)
        by_order[key].append((position, sample))
        # How far behind its own order a record arrives, counted in orders (order ids are
        # numbered in generation order): bounded by the reorder window, whatever the count.
        index = int(key[1].rsplit("-", 1)[1]) - 1
        newest_order = max(newest_order, index)
        assert newest_order - index <= 3 * REORDER_WINDOW
    late_seen = 0
    for key, entries in by_order.items():
        kinds = {s.kind: (pos, version_of(s.record)) for pos, s in entries}
        assert len(kinds) == len(entries), f"{key}: a kind twice"
        first = kinds.get("upsert") or kinds.get("stale")
        if first is None:
            assert set(kinds) <= {"invalid_client", "invalid_server"}
            continue
        newest = first[1]
        if "update" in kinds:
            assert kinds["update"][1] > first[1]
            newest = kinds["update"][1]
        if "stale" in kinds:  # the older version arrives after the newer one
            assert kinds["stale"][0] > kinds["update"][0]
            late_seen += 1
        else:
            assert "update" not in kinds or kinds["update"][0] > kinds["upsert"][0]
        if "patch" in kinds:
            assert kinds["patch"][1] > newest
            newest = kinds["patch"][1]
        if "delete" in kinds:
            assert kinds["delete"][1] > newest
            others = [pos for pos, s in entries if s.kind not in ("delete", "stale")]
            assert kinds["delete"][0] > max(others)
    assert late_seen > 0


def test_patches_change_the_status_of_the_newest_version() -> None:
    newest: dict[tuple[int, str], str] = {}
    for sample in generate_labeled(EVERYTHING):
        if sample.kind in ("upsert", "update"):
            key = key_of(sample.record)
            status = order_of(sample.record)["order_details"]["status"]["code"]
            newest[key] = status if sample.kind == "update" else newest.get(key, status)
    for sample in generate_labeled(EVERYTHING):
        if sample.kind == "patch":
            code = sample.record["changes"]["order_details"]["status"]["code"]
            assert code != newest[key_of(sample.record)]


# --- realism ---------------------------------------------------------------------------------


def test_orders_look_real() -> None:
    samples = list(generate_labeled(SampleSpec(count=1500, seed=21)))
    countries: Counter[str] = Counter()
    service_points = 0
    for sample in samples:
        order = order_of(sample.record)
        address = order["shipping_address"]
        country = address["country_code"]
        countries[country] += 1
        assert re.match(POSTCODE[country], address["postal_code"]), address
        if country in ("US", "IT"):
            region = address["state_province_code"]
            assert region.startswith(country + "-")
            assert region in SUBDIVISIONS
        else:
            assert "state_province_code" not in address
        if "phone_number" in address:
            assert PHONE.match(address["phone_number"])
        customer = order["customer_details"]
        assert EMAIL.match(customer["email"]), customer
        assert customer["name"].strip()

        # Money: the shop's currency everywhere, item lines and totals add up to the cent.
        currency = CURRENCY.get(country, "EUR")
        payment = order["payment_details"]
        items = order["order_details"]["order_items"]
        assert 1 <= len(items) <= 4
        subtotal = 0
        for item in items:
            assert item["quantity"] >= 1
            assert cents(item["total_price"]) == cents(item["unit_price"]) * item["quantity"]
            assert item["unit_price"]["currency"] == item["total_price"]["currency"] == currency
            subtotal += cents(item["total_price"])
        assert cents(payment["subtotal_price"]) == subtotal
        discount = cents(payment.get("discount_granted") or {"value": "0"})
        assert cents(payment["total_price"]) == (
            subtotal + cents(payment["estimated_shipping_price"]) - discount)
        assert payment["total_price"]["currency"] == currency

        # Customs only leaving the EU, and then complete.
        if country in ("GB", "US"):
            customs = order["customs_details"]
            assert customs["commercial_invoice_number"]
            assert customs["shipment_type"] and customs["export_type"]
            assert customs["tax_numbers"]["sender"]
            for item in items:
                assert re.match(r"^\d{4}\.\d{2}$", item["hs_code"])
                assert pycountry.countries.get(alpha_2=item["country_of_origin"]) is not None
                assert item["measurement"]["weight"]["value"] > 0
        else:
            assert "customs_details" not in order

        point = order.get("service_point_details")
        if point:
            service_points += 1
            assert ("id" in point) != ("carrier_service_point_id" in point)
        details = order["order_details"]
        assert ISO_Z.match(details["order_created_at"])
        assert ISO_Z.match(details.get("order_updated_at", details["order_created_at"]))
    assert set(countries) == set(POSTCODE) == {c.code for c in COUNTRIES}
    assert countries.most_common(1)[0][0] == "NL"
    assert service_points > 0


def test_integrations_come_from_the_spec() -> None:
    spec = SampleSpec(count=100, seed=2, integrations=(201,))
    assert {key_of(r)[0] for r in generate(spec)} == {201}


# --- streaming -------------------------------------------------------------------------------


def test_generation_is_lazy() -> None:
    stream = generate(SampleSpec(count=10**12, seed=1, update_rate=0.5, out_of_order_rate=0.5,
                                 patch_rate=0.5, delete_rate=0.5))
    assert inspect.isgenerator(stream)
    assert len(list(islice(stream, 50))) == 50  # would never return if it built the list first


def _peak_bytes(count: int) -> int:
    spec = SampleSpec(count=count, seed=8, update_rate=0.5, out_of_order_rate=0.5, patch_rate=0.5,
                      delete_rate=0.5, loose_rate=0.3, invalid_client_rate=0.05)
    tracemalloc.start()
    try:
        for _ in generate(spec):
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_count() -> None:
    small, large = _peak_bytes(200), _peak_bytes(2_000)
    # Ten times the records, about the same peak: only the reorder window is ever held.
    assert large < small * 1.5 + 256 * 1024, (small, large)


def test_records_held_back_are_bounded_by_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    held: list[int] = []

    class CountingHeap:
        @staticmethod
        def heappush(heap: list[Any], item: Any) -> None:
            heapq.heappush(heap, item)
            held.append(len(heap))

        heappop = staticmethod(heapq.heappop)

    monkeypatch.setattr(sample_module, "heapq", CountingHeap)
    spec = SampleSpec(count=5_000, seed=8, update_rate=1.0, out_of_order_rate=0.5,
                      patch_rate=1.0, delete_rate=1.0)
    assert sum(1 for _ in generate(spec)) == 5_000 * 4
    # Each order has ≤ 4 records, none waits more than 3 windows: never a growing backlog.
    assert max(held) <= 4 * 3 * REORDER_WINDOW


# --- writing and the spec object -------------------------------------------------------------


def test_write_jsonl_writes_one_ascii_line_per_record() -> None:
    records = list(generate(SampleSpec(count=40, seed=6, update_rate=0.5, patch_rate=0.3)))
    buffer = io.StringIO()
    assert write_jsonl(iter(records), buffer) == len(records)
    text = buffer.getvalue()
    assert text.isascii() and text.endswith("\n")
    assert [json.loads(line) for line in text.splitlines()] == records


@pytest.mark.parametrize("bad", [
    {"count": -1},
    {"integrations": ()},
    {"update_rate": 1.5},
    {"loose_rate": -0.1},
    {"invalid_client_rate": 0.6, "invalid_server_rate": 0.5},
])
def test_spec_rejects_nonsense(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SampleSpec(**bad)


def test_empty_spec_yields_nothing() -> None:
    assert list(generate(SampleSpec(count=0))) == []


rates = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(count=st.integers(0, 60), seed=st.integers(-(2**31), 2**31), client=rates, server=rates,
       update=rates, late=rates, patch=rates, delete=rates, loose=rates)
def test_record_accounting_holds_for_any_spec(count: int, seed: int, client: float,
                                              server: float, update: float, late: float,
                                              patch: float, delete: float, loose: float) -> None:
    client, server = client / 2, server / 2  # their sum must stay ≤ 1
    spec = SampleSpec(count=count, seed=seed, invalid_client_rate=client,
                      invalid_server_rate=server, update_rate=update, out_of_order_rate=late,
                      patch_rate=patch, delete_rate=delete, loose_rate=loose)
    samples = list(generate_labeled(spec))
    kinds = Counter(s.kind for s in samples)
    # Every order has exactly one first version (or is invalid), each extra op belongs to one.
    firsts = kinds["upsert"] + kinds["stale"] + kinds["invalid_client"] + kinds["invalid_server"]
    assert firsts == count
    assert kinds["stale"] <= kinds["update"]
    keys = {key_of(s.record) for s in samples}
    assert len(keys) == count
    assert samples == list(generate_labeled(spec))
