"""Merging a partial update (`PATCH /orders/{id}`) into a stored order.

Objects merge key by key, lists are replaced, `null` sets null. Order items are the exception
the spec documents: each patched item names the stored item it changes by `name` (items cannot
be added or removed here — that is what the batch upsert is for). The service point is replaced
whole, since it is identified by one of two mutually exclusive keys.
"""

from __future__ import annotations

import copy
from typing import Any

from emulator.errors import ITEM_NOT_FOUND_DETAIL, ErrorObject, error
from emulator.validate import FIELD_REQUIRED

_REPLACED_WHOLE = frozenset({"service_point_details"})


def merge(stored: dict[str, Any], patch: dict[str, Any], ptr: str
          ) -> tuple[dict[str, Any], list[ErrorObject]]:
    """A new order: `stored` with `patch` applied. `stored` itself is not modified."""
    errors: list[ErrorObject] = []
    merged = copy.deepcopy(stored)
    for key, value in patch.items():
        if key == "order_details" and type(value) is dict:
            details = merged.setdefault("order_details", {})
            for dkey, dvalue in value.items():
                if dkey == "order_items" and type(dvalue) is list:
                    _merge_items(details, dvalue, f"{ptr}/order_details/order_items", errors)
                else:
                    details[dkey] = _merge_value(details.get(dkey), dvalue)
        elif key in _REPLACED_WHOLE:
            merged[key] = copy.deepcopy(value)
        else:
            merged[key] = _merge_value(merged.get(key), value)
    return merged, errors


def _merge_value(old: Any, new: Any) -> Any:
    if type(old) is dict and type(new) is dict:
        out = dict(old)
        for k, v in new.items():
            out[k] = _merge_value(old.get(k), v)
        return out
    return copy.deepcopy(new)


def _merge_items(details: dict[str, Any], patches: list[Any], ptr: str,
                 errors: list[ErrorObject]) -> None:
    items = details.get("order_items")
    items = list(items) if type(items) is list else []
    for n, patch in enumerate(patches):
        if type(patch) is not dict:
            continue  # already reported by validation
        name = patch.get("name")
        if name is None:
            errors.append(error(400, "invalid", FIELD_REQUIRED, pointer=f"{ptr}/{n}/name"))
            continue
        index = next((i for i, item in enumerate(items)
                      if type(item) is dict and item.get("name") == name), None)
        if index is None:
            # Exactly the spec's example, odd pointer included.
            errors.append(error(400, "invalid", ITEM_NOT_FOUND_DETAIL, title="Invalid",
                                pointer="order/order_details/order_items"))
            continue
        items[index] = _merge_value(items[index], patch)
    details["order_items"] = items
