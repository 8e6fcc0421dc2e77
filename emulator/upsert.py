"""The batch upsert's business rules, on top of schema validation.

`plan_batch` decides, for every order of a validated batch, which stored order it updates (or
that it creates one), and collects the rule violations the spec documents — foreign
integration, unknown or non-string `id`, changed `order_id` — with the keys the request must
hold while it is processed. It only reads the store, so it can run again after an await.

Two orders with the same `(integration, order_id)` in one batch are refused with a pointer at
the later one: a batch is all-or-nothing and unordered in the spec, so "last wins" would be a
guess, and a clear error points the client at its own bug (see README).
"""

from __future__ import annotations

from typing import Any

from emulator.config import Account
from emulator.state import Key, Store
from emulator.validate import Errors

Plan = list[tuple[dict[str, Any], int | None]]  # (cleaned order, targeted pk)


def _integration_id(order: dict[str, Any]) -> int | None:
    details = order.get("order_details")
    if type(details) is not dict:
        return None
    integration = details.get("integration")
    if type(integration) is not dict:
        return None
    value = integration.get("id")
    return value if type(value) is int else None


def parse_pk(text: str) -> int | None:
    """A Sendcloud id as sent in a path or an `id` field: decimal digits, ≥ 1."""
    if not (text.isascii() and text.isdecimal()) or len(text) > 18:
        return None
    value = int(text)
    return value if value >= 1 else None


def plan_batch(
    store: Store, account: Account, raw: list[Any], cleaned: list[dict[str, Any]], errs: Errors
) -> tuple[Plan, set[Key]]:
    plan: Plan = []
    keys: set[Key] = set()
    first_at: dict[Key, int] = {}
    for i, (sent, order) in enumerate(zip(raw, cleaned, strict=True)):
        if type(sent) is not dict:
            continue
        ptr = f"/data/attributes/[{i}]"
        integration = _integration_id(order)
        order_id = order.get("order_id")
        if type(order_id) is not str:
            order_id = None
        if integration is not None and integration not in account.integrations:
            errs.append((ptr + "/order_details/integration/id",
                         f"Integration with id {integration} does not exist"))
            integration = None
        target: int | None = None
        sent_id = sent.get("id")
        if type(sent_id) is str:
            pk = parse_pk(sent_id)
            record = None if pk is None else store.get(pk, account.integrations)
            if record is None:
                errs.append((ptr + "/id", f"Order with id {sent_id} does not exist"))
            else:
                target = record.pk
                keys.add(record.key)
                if order_id is not None and order_id != record.order_id:
                    errs.append((ptr + "/order_id",
                                 f"Order id {record.order_id} cannot be changed"))
                elif integration is not None and integration != record.integration_id:
                    errs.append((ptr + "/order_details/integration/id",
                                 f"Integration of order {record.pk} cannot be changed"))
        if integration is not None and order_id is not None:
            key = (integration, order_id)
            if key in first_at:
                errs.append((ptr + "/order_id",
                             f"Order id {order_id} of integration {integration} is already at "
                             f"[{first_at[key]}] in this request"))
            else:
                first_at[key] = i
            keys.add(key)
        plan.append((order, target))
    return plan, keys
