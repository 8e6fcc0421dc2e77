"""Confirming that posted orders exist in Sendcloud (the API saves asynchronously).

The POST answered with Sendcloud's ids, and a batch of new orders gets ids close together. So
the GET is filtered by the batch's integrations, sorted by id, and starts at the batch's lowest
id with a cursor built as the spec documents (base64 of `p=<position>`): one page holds the
whole batch, whatever else other workers created meanwhile. Steady state: one GET per batch.

- Ids far apart (updates of old orders): one such GET per cluster of ids, up to
  MAX_CLUSTERS; past that, and for orders whose id is unknown, a scan of the newest orders
  (date floor, newest update first, bounded pages).
- One or two orders: looked up by order_id (as cheap, and exact).

An order counts as confirmed when the version Sendcloud shows is at least the one we sent; an
older or missing one is "not visible yet" and is checked again later, up to a bound; then it is
posted once more; then dead-lettered as "not visible".
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline.client import SendcloudClient
from pipeline.errors import ApiError, ConfigError, FieldError, RateLimited
from pipeline.outbox_store import OutboxRow
from pipeline.retry import Action, decide
from pipeline.sender import DONE, Services, Step

log = logging.getLogger(__name__)
PAGE_SIZE = 200
MAX_PAGES = 5  # past this, the orders are not where a fresh write lands: look again later
CONFIRM_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)  # ≈ 1 minute in all before reposting
NOT_VISIBLE = "not visible"


MAX_CLUSTERS = 4


@dataclass(frozen=True)
class Lookup:
    filters: dict[str, Any]
    wanted: frozenset[tuple[int, str]]
    last_id: int | None = None  # ascending by id: stop reading past this one


def plan_lookups(rows: Sequence[OutboxRow]) -> list[Lookup]:
    """The GETs that find these orders (see the module docstring)."""
    if len(rows) <= 2:
        return [Lookup({"integration": r.key[0], "order_id": r.key[1]}, frozenset([r.key]))
                for r in rows]
    integrations = sorted({r.key[0] for r in rows})
    known = sorted((r for r in rows if r.sendcloud_id is not None),
                   key=lambda r: r.sendcloud_id or 0)
    clusters = _clusters(known)
    if len(clusters) > MAX_CLUSTERS:
        return [_scan(rows, integrations)]
    lookups = [_id_range(cluster, integrations) for cluster in clusters]
    unknown = [r for r in rows if r.sendcloud_id is None]
    if unknown:
        lookups.append(_scan(unknown, integrations))
    return lookups


def _clusters(rows: Sequence[OutboxRow]) -> list[list[OutboxRow]]:
    """Runs of rows (sorted by id) whose ids fit in one page."""
    out: list[list[OutboxRow]] = []
    for row in rows:
        if out and (row.sendcloud_id or 0) - (out[-1][0].sendcloud_id or 0) < PAGE_SIZE:
            out[-1].append(row)
        else:
            out.append([row])
    return out


def _id_range(cluster: Sequence[OutboxRow], integrations: list[int]) -> Lookup:
    first, last = cluster[0].sendcloud_id or 0, cluster[-1].sendcloud_id or 0
    return Lookup({"integration": integrations, "sort": "pk",
                   "cursor": position_cursor(first - 1), "page_size": last - first + 1},
                  frozenset(r.key for r in cluster), last_id=last)


def position_cursor(position: int) -> str:
    """A cursor that starts after `position`, encoded as the spec describes (`p=<position>`)."""
    return base64.b64encode(f"p={position}".encode()).decode("ascii")


def _scan(rows: Sequence[OutboxRow], integrations: list[int]) -> Lookup:
    filters: dict[str, Any] = {"integration": integrations, "sort": "-order_updated_at,-pk",
                               "page_size": PAGE_SIZE}
    filters.update(_date_floor(rows))
    return Lookup(filters, frozenset(r.key for r in rows))


def _date_floor(rows: Sequence[OutboxRow]) -> dict[str, str]:
    """`*_min` filters only: whether the API reads them as the shop's dates or as its own
    save time, every order of the batch is on or after them, so nothing is filtered out."""
    updated = [_at(r.payload, "order_updated_at") for r in rows]
    if all(updated):
        return {"order_updated_at_min": min(u for u in updated if u)[:10]}
    created = [_at(r.payload, "order_created_at") for r in rows]
    if all(created):
        return {"order_created_at_min": min(c for c in created if c)[:10]}
    return {}


def _at(payload: Mapping[str, Any], name: str) -> str | None:
    details = payload.get("order_details")
    value = details.get(name) if isinstance(details, Mapping) else None
    return value if isinstance(value, str) and len(value) >= 10 else None


def find(client: SendcloudClient, lookup: Lookup) -> dict[tuple[int, str], dict[str, Any]]:
    """Visible orders of `lookup.wanted`, stopping as soon as all are found."""
    found: dict[tuple[int, str], dict[str, Any]] = {}
    for order in _bounded(client.iter_orders(**lookup.filters), MAX_PAGES * PAGE_SIZE):
        if lookup.last_id is not None and _id(order) > lookup.last_id:
            break  # ascending by id: the rest of the batch is not visible yet
        key = _key(order)
        if key in lookup.wanted:
            found[key] = order
            if len(found) == len(lookup.wanted):
                break
    return found


def _bounded(orders: Iterator[dict[str, Any]], limit: int) -> Iterable[dict[str, Any]]:
    for seen, order in enumerate(orders):
        if seen >= limit:
            return
        yield order


def _id(order: Mapping[str, Any]) -> int:
    try:
        return int(order["id"])
    except (KeyError, TypeError, ValueError):
        return 0


def _key(order: Mapping[str, Any]) -> tuple[int, str] | None:
    try:
        return int(order["order_details"]["integration"]["id"]), str(order["order_id"])
    except (KeyError, TypeError, ValueError):
        return None


def is_current(visible: Mapping[str, Any], sent: Mapping[str, Any]) -> bool:
    """Sendcloud shows the version we sent, or a newer one."""
    shown, ours = _version(visible), _version(sent)
    return ours is None or (shown is not None and shown >= ours)


def _version(order: Mapping[str, Any]) -> datetime | None:
    details = order.get("order_details")
    if not isinstance(details, Mapping):
        return None
    value = details.get("order_updated_at") or details.get("order_created_at")
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def confirm_batch(svc: Services, batch_id: str, attempt: int, rand: float = 0.5) -> Step:
    """Look for the posted orders of a batch; settle the ones found. `attempt` counts earlier
    looks (0 for the first)."""
    rows = [r for r in svc.store.outbox.rows(batch_id) if r.state == "posted"]
    if not rows:
        return DONE
    visible: dict[int, int] = {}
    try:
        for lookup in plan_lookups(rows):
            found = find(svc.client, lookup)
            for row in rows:
                order = found.get(row.key)
                if order is not None and is_current(order, row.payload):
                    visible[row.id] = int(order["id"])
    except (ApiError, ConfigError) as error:
        return _lookup_failed(svc, batch_id, error, attempt, rand)
    if visible:
        svc.store.outbox.settle(list(visible), visible)
    missing = [r for r in rows if r.id not in visible]
    if not missing:
        return DONE
    if attempt < len(CONFIRM_DELAYS):
        return Step(retry_in=CONFIRM_DELAYS[attempt])
    return _give_up(svc, missing)


MAX_LOOKS = 20  # failed or empty looks in all before the orders are posted again


def _lookup_failed(svc: Services, batch_id: str, error: ApiError | ConfigError, attempt: int,
                   rand: float) -> Step:
    """A GET failed. The orders stay posted; look again soon unless operators must act. The
    wait grows only a little: a failed read costs nothing, a late confirmation costs latency."""
    log.warning("confirm %s: look %d failed: %r", batch_id, attempt + 1, error)
    decision = decide(error, min(attempt, 3), rand, svc.policy)
    if decision.action is Action.STOP:
        svc.store.set_alert("stopped", str(error))
        return Step(stop=error)
    if attempt + 1 >= MAX_LOOKS:
        rows = [r for r in svc.store.outbox.rows(batch_id) if r.state == "posted"]
        return _give_up(svc, rows)
    svc.store.bump("retried")
    if isinstance(error, RateLimited):
        svc.limiter.penalize("read", decision.countdown)
        return Step(retry_in=decision.countdown)
    return Step(retry_in=max(decision.countdown, 1.0))


def _give_up(svc: Services, missing: Sequence[OutboxRow]) -> Step:
    """Post each invisible order once more; one that stays invisible is dead-lettered. An order
    whose newer version (or delete) has settled meanwhile is not missing: it is superseded."""
    moot = []
    for row in missing:
        entry = svc.store.outbox.ledger_entry(row.key)
        if entry is not None and entry.version > row.version:
            moot.append(row.id)
    if moot:
        svc.store.outbox.supersede(moot)
    missing = [r for r in missing if r.id not in moot]
    again = [r.id for r in missing if not r.reposted]
    gone = {r.id: [FieldError("", "Sendcloud accepted the order but never showed it")]
            for r in missing if r.reposted}
    if again:
        svc.store.outbox.repost(again)
    if gone:
        svc.store.outbox.dead_letter(gone, NOT_VISIBLE)
    return Step(done=True, flush=bool(again))
