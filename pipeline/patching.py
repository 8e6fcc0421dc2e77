"""What a PATCH does to an order, computed locally.

Folding a patch into the full order lets the pipeline send it in the next batch POST (1/100 of a
write) instead of a PATCH (one write per order), and tells it when a patch changes nothing.

Semantics, from the spec's partial-update description:
- nested objects merge key by key; a scalar or an array replaces what was there;
- `order_details.order_items` is the exception: each item in the change is matched to the
  existing item with the same `name` and merged into it; items cannot be added or removed
  (that needs the POST endpoint), so an unknown name is an error, as the API reports it;
- `order_id` cannot change, and neither can `order_details.integration.id` (the other half of the
  order's identity).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from pipeline.codec import canonical
from pipeline.errors import FieldError, RecordRejected
from pipeline.normalize import clone_json

_ITEMS_PATH = ("order_details", "order_items")
_SERVICE_POINT_PATH = ("service_point_details",)
_SERVICE_POINT_IDS = ("id", "carrier_service_point_id")
ITEM_NOT_FOUND = "Could not find specified item."


def apply_patch(order: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """The order as the API would hold it after PATCHing `changes`. Pure: inputs are untouched.
    Raises RecordRejected for an unknown item name or a change of identity."""
    _check_identity(order, changes)
    merged = _merge(order, changes, ())
    assert isinstance(merged, dict)  # both arguments are mappings
    return merged


def payload_hash(order: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON (sorted keys, no whitespace): equal orders, equal hashes,
    whatever the key order. Used to skip sending an order that has not changed."""
    return hashlib.sha256(canonical(order)).hexdigest()


def _check_identity(order: Mapping[str, Any], changes: Mapping[str, Any]) -> None:
    if "order_id" in changes and changes["order_id"] != order.get("order_id"):
        detail = f"Order id {order.get('order_id')} cannot be changed"
        raise RecordRejected(detail, [FieldError("/order_id", detail)])
    old, new = _integration_id(order), _integration_id(changes)
    if new is not None and new != old:
        detail = f"Integration {old} of an order cannot be changed"
        raise RecordRejected(detail, [FieldError("/order_details/integration/id", detail)])


def _integration_id(data: Mapping[str, Any]) -> Any:
    details = data.get("order_details")
    integration = details.get("integration") if isinstance(details, Mapping) else None
    return integration.get("id") if isinstance(integration, Mapping) else None


def _merge(old: Any, new: Any, path: tuple[str, ...]) -> Any:
    if path == _ITEMS_PATH:
        return _merge_items(old, new)
    if not (isinstance(old, Mapping) and isinstance(new, Mapping)):
        return clone_json(new)
    if path == _SERVICE_POINT_PATH:
        old = _without_other_identifier(old, new)
    out = clone_json(old)
    for key, value in new.items():
        out[key] = _merge(old.get(key), value, (*path, key))
    return out


def _without_other_identifier(old: Mapping[str, Any], new: Mapping[str, Any]) -> Mapping[str, Any]:
    """A service point is identified by `id` *or* `carrier_service_point_id`. Switching from one
    to the other must drop the old identifier, or the merged object names two service points."""
    named = [k for k in _SERVICE_POINT_IDS if new.get(k) is not None]
    if not named:
        return old
    return {k: v for k, v in old.items() if k not in _SERVICE_POINT_IDS or k in named}


def _merge_items(old: Any, new: Any) -> Any:
    if not isinstance(new, list):
        return clone_json(new)  # not a valid change; validation reports it
    items: list[Any] = clone_json(old) if isinstance(old, list) else []
    for index, change in enumerate(new):
        position = _find_item(items, change, index)
        items[position] = _merge(items[position], change, ())
    return items


def _find_item(items: list[Any], change: Any, index: int) -> int:
    pointer = f"/order_details/order_items/{index}/name"
    name = change.get("name") if isinstance(change, Mapping) else None
    if name is None:
        raise RecordRejected(ITEM_NOT_FOUND, [FieldError(
            pointer, "An item change needs the item's `name` to find the item it changes.")])
    matches = [i for i, item in enumerate(items)
               if isinstance(item, Mapping) and item.get("name") == name]
    if not matches:
        raise RecordRejected(ITEM_NOT_FOUND, [FieldError(
            pointer, f"{ITEM_NOT_FOUND} No item is named {name!r}; add items with a POST.")])
    if len(matches) > 1:
        detail = f"{len(matches)} items are named {name!r}: which one this changes is ambiguous."
        raise RecordRejected(detail, [FieldError(pointer, detail)])
    return matches[0]
