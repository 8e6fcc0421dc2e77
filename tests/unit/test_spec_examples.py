"""The official spec's own examples, run through normalize, the schemas and apply_patch.

Every request example must pass; every documented field error must be found by the pre-flight
at the same pointer, once a valid example is broken the way the error describes. When Sendcloud
publishes a new example this test either passes or says what it does not yet understand.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.errors import RecordRejected
from pipeline.normalize import normalize_changes, normalize_order
from pipeline.patching import apply_patch
from pipeline.schemas import validate_changes, validate_order

SPEC_PATH = (Path(__file__).resolve().parents[2].parent
             / "shared/reference/sendcloud/orders/openapi.yaml")
# "/data/attributes/[1]/order_details/integration" → order 1, "/order_details/integration"
_BATCH_POINTER = re.compile(r"^/data/attributes/\[(\d+)\](/.+)$")


def _load_spec() -> dict[str, Any] | None:
    if not SPEC_PATH.exists():
        return None
    spec: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    return spec


SPEC = _load_spec()


def _examples(operation: dict[str, Any], *where: str) -> dict[str, Any]:
    node: Any = operation
    for key in where:
        node = node.get(key, {}) if isinstance(node, dict) else {}
    return {name: example["value"] for name, example in node.items()}


def _operation(path: str, method: str) -> dict[str, Any]:
    return SPEC["paths"][path][method] if SPEC else {}


def _request_examples(path: str, method: str) -> dict[str, Any]:
    return _examples(_operation(path, method), "requestBody", "content", "application/json",
                     "examples")


def _error_examples(path: str, method: str) -> dict[str, Any]:
    return _examples(_operation(path, method), "responses", "400", "content",
                     "application/json", "examples")


def _posted_orders() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, orders in _request_examples("/orders", "post").items():
        for index, order in enumerate(orders):
            yield f"{name}[{index}]", order


POSTED = dict(_posted_orders())
PATCHES = _request_examples("/orders/{id}", "patch")
FIELD_ERRORS = {
    name: [(e["detail"], m.group(2)) for e in value["errors"]
           if (m := _BATCH_POINTER.match(e.get("source", {}).get("pointer", "")))]
    for name, value in _error_examples("/orders", "post").items()
}
FIELD_ERRORS = {name: errors for name, errors in FIELD_ERRORS.items() if errors}


def test_the_spec_is_available() -> None:
    if SPEC is not None:
        assert POSTED and PATCHES and FIELD_ERRORS, "the spec's examples moved: update the paths"
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"the Orders API spec is missing: {SPEC_PATH}")
    pytest.skip(f"the Orders API spec is not checked out at {SPEC_PATH}")


# --- request examples ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(POSTED))
def test_every_posted_example_order_is_valid(name: str) -> None:
    order = normalize_order(POSTED[name])
    assert validate_order(order) == []


@pytest.mark.parametrize("name", sorted(POSTED))
def test_posted_examples_are_already_canonical(name: str) -> None:
    """Sendcloud's own examples need no normalization beyond the timestamp format."""
    order = normalize_order(POSTED[name])
    assert normalize_order(order) == order
    assert _without_timestamps(order) == _without_timestamps(POSTED[name])


@pytest.mark.parametrize("name", sorted(PATCHES))
def test_every_patch_example_is_valid(name: str) -> None:
    assert validate_changes(normalize_changes(PATCHES[name])) == []


@pytest.mark.parametrize("name", sorted(PATCHES))
def test_every_patch_example_applies_to_its_order_and_keeps_it_valid(name: str) -> None:
    changes = normalize_changes(PATCHES[name])
    order = normalize_order(_order_for_patch(changes))
    patched = apply_patch(order, changes)
    assert validate_order(patched) == []
    assert patched != order or not changes


def _order_for_patch(changes: dict[str, Any]) -> dict[str, Any]:
    """A posted example with the same order_id that has every item the patch names."""
    names = {i["name"] for i in changes.get("order_details", {}).get("order_items", [])}
    for order in POSTED.values():
        items = {i["name"] for i in order["order_details"]["order_items"]}
        if order["order_id"] == changes.get("order_id", order["order_id"]) and names <= items:
            return order
    raise AssertionError("no posted example matches this patch example")


def _response_orders() -> Iterator[tuple[str, dict[str, Any]]]:
    listed = _examples(_operation("/orders", "get"), "responses", "200", "content",
                       "application/json", "examples")
    for name, body in listed.items():
        for index, order in enumerate(body["data"]):
            yield f"list:{name}[{index}]", order
    single = _examples(_operation("/orders/{id}", "get"), "responses", "200", "content",
                       "application/json", "examples")
    for name, body in single.items():
        yield f"get:{name}", body["data"]


RETURNED = dict(_response_orders())


@pytest.mark.parametrize("name", sorted(RETURNED))
def test_orders_as_the_api_returns_them_can_be_sent_again(name: str) -> None:
    """A producer that syncs back what it read (ids, created_at, delivery_dates: null) must
    not be dead-lettered for it."""
    assert validate_order(normalize_order(RETURNED[name])) == []


def _without_timestamps(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _without_timestamps(v) for k, v in data.items()
                if not k.endswith("_at")}
    if isinstance(data, list):
        return [_without_timestamps(v) for v in data]
    return data


# --- documented field errors ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FIELD_ERRORS))
def test_documented_field_errors_are_caught_at_the_same_pointer(name: str) -> None:
    errors = FIELD_ERRORS[name]
    if any("does not exist" in detail for detail, _ in errors):
        pytest.skip("only the API knows which integrations belong to the account")
    pointers = {pointer for _, pointer in errors}
    order = normalize_order(_example_having(pointers))
    if any("cannot be changed" in detail for detail, _ in errors):
        assert _patch_pointers(order, pointers) == pointers
        return
    for detail, pointer in errors:
        _break(order, pointer, detail)
    assert {e.pointer for e in validate_order(order)} == pointers


def _example_having(pointers: set[str]) -> dict[str, Any]:
    """The first posted example in which every pointed-at field exists (so it can be broken)."""
    for order in POSTED.values():
        if all(_exists(order, pointer) for pointer in pointers):
            return copy.deepcopy(order)
    raise AssertionError(f"no posted example has {sorted(pointers)}")


def _exists(data: Any, pointer: str) -> bool:
    for token in pointer.split("/")[1:]:
        if isinstance(data, list) and token.isdigit() and int(token) < len(data):
            data = data[int(token)]
        elif isinstance(data, dict) and token in data:
            data = data[token]
        else:
            return False
    return True


def _break(order: dict[str, Any], pointer: str, detail: str) -> None:
    """Break the field the way the documented error describes it."""
    *parents, name = pointer.split("/")[1:]
    parent: Any = order
    for token in parents:
        parent = parent[int(token)] if isinstance(parent, list) else parent[token]
    if detail == "Field required":
        del parent[name]
    elif detail == "Input should be greater than 0":
        parent[name] = -1                           # "such as a negative quantity"
    elif detail == "Input should be a valid string":
        parent[name] = int(parent.get(name) or 669)  # e.g. "id": 669 instead of "669"
    else:
        pytest.fail(f"new documented error {detail!r} at {pointer}: teach this test to cause it")


def _patch_pointers(order: dict[str, Any], pointers: set[str]) -> set[str]:
    """An immutable field changed by an upsert or a patch: apply_patch must refuse it."""
    changes = {p.lstrip("/"): f"{order[p.lstrip('/')]}-changed" for p in pointers}
    with pytest.raises(RecordRejected) as info:
        apply_patch(order, changes)
    return {e.pointer for e in info.value.errors}


@pytest.mark.skipif(SPEC is None, reason="the Orders API spec is not checked out")
def test_the_documented_unknown_item_error_of_a_patch() -> None:
    documented = _error_examples("/orders/{id}", "patch")
    error = documented["MissingRequiredField"]["errors"][0]
    changes = normalize_changes(PATCHES["UpdateOrderItem"])
    order = normalize_order(_order_for_patch(changes))
    changes["order_details"]["order_items"][0]["name"] = "No such candle"
    with pytest.raises(RecordRejected) as info:
        apply_patch(order, changes)
    assert info.value.reason == error["detail"]
    # The API points at "order/order_details/order_items"; we also name the item.
    documented_pointer = "/" + error["source"]["pointer"].removeprefix("order/")
    assert info.value.errors[0].pointer.startswith(documented_pointer)
