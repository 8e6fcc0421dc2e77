"""Sending one claimed batch, and what to do next: the logic behind the upsert, patch and
delete tasks, without Celery. A task calls one function here and turns the returned `Step` into
Celery actions (retry with a countdown, schedule confirm, schedule the halves of a bisection).

Outcomes follow ARCHITECTURE's table; the decision itself is `pipeline.retry.decide`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field

from pipeline.client import SendcloudClient, UpsertedOrder
from pipeline.errors import (
    ApiError,
    BatchRejected,
    ConfigError,
    FieldError,
    NotFound,
    OrderSyncError,
    RateLimited,
)
from pipeline.isolate import plan_isolation
from pipeline.outbox_store import OutboxRow
from pipeline.ratelimit import Limiter
from pipeline.retry import Action, RetryPolicy, decide
from pipeline.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    store: Store
    client: SendcloudClient
    limiter: Limiter
    policy: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True)
class Step:
    """What the task should do after this attempt."""

    confirm: str | None = None  # batch id to confirm
    resend: tuple[str, ...] = ()  # new batch ids to send now (bisection halves, survivors)
    retry_in: float | None = None  # send this batch again after so many seconds
    stop: OrderSyncError | None = None  # configuration problem: operators must act
    done: bool = False  # nothing more to do for this batch
    flush: bool = False  # rows went back to pending: make sure a flush is scheduled


DONE = Step(done=True)
PATCH_WAIT = 30.0  # seconds a patch of an unknown order waits for its order before giving up


def send_upserts(svc: Services, batch_id: str, rand: float) -> Step:
    """POST one claimed batch of ≤ 100 orders and classify the outcome."""
    rows = svc.store.outbox.rows(batch_id)
    if not rows:
        return DONE  # a redelivered message for a batch that already ended
    if all(row.state == "posted" for row in rows):
        return Step(confirm=batch_id)  # the worker died between the POST and the ack
    svc.store.outbox.begin_attempt(batch_id)
    try:
        answer = svc.client.upsert_orders([_with_id(row) for row in rows])
    except (ApiError, ConfigError) as error:
        return _after_failure(svc, batch_id, rows, error, rand)
    svc.store.outbox.mark_posted(batch_id, _ids_by_key(rows, answer))
    return Step(confirm=batch_id)


def _after_failure(svc: Services, batch_id: str, rows: Sequence[OutboxRow],
                   error: ApiError | ConfigError, rand: float) -> Step:
    # `rows` were read before this attempt was counted: their counts are the earlier failures.
    earlier = rows[0].throttled if isinstance(error, RateLimited) else rows[0].attempts
    decision = decide(error, earlier, rand, svc.policy)
    log.info("batch %s (%d orders): %s → %s", batch_id, len(rows), type(error).__name__,
             decision.action.value)
    if decision.action is Action.RETRY:
        svc.store.bump("retried")
        if isinstance(error, RateLimited):
            svc.store.outbox.note_throttled(batch_id)
            svc.limiter.penalize("write", decision.countdown)
        return Step(retry_in=decision.countdown)
    if decision.action is Action.ISOLATE and isinstance(error, BatchRejected):
        return _isolate(svc, batch_id, rows, error)
    if decision.action is Action.DEAD_LETTER:
        svc.store.outbox.dead_letter({row.id: _api_field_errors(error) for row in rows},
                                     decision.reason)
        return DONE
    # STOP: keep every order for after the fix, and tell operators (and a waiting `sync`).
    svc.store.outbox.release(batch_id)
    svc.store.set_alert("stopped", _stop_message(error))
    return Step(stop=error)


def _isolate(svc: Services, batch_id: str, rows: Sequence[OutboxRow],
             error: BatchRejected) -> Step:
    plan = plan_isolation(len(rows), error)
    if plan.dead:
        svc.store.outbox.dead_letter({rows[i].id: errors for i, errors in plan.dead.items()},
                                     "rejected by Sendcloud")
    groups = [[rows[i].id for i in group] for group in plan.resend]
    return Step(resend=tuple(svc.store.outbox.split(batch_id, groups)), done=not groups)


def send_single(svc: Services, batch_id: str, rand: float) -> Step:
    """PATCH or DELETE the one order of a claimed batch. Both need Sendcloud's id: from the
    POST that created it, the ledger, or a lookup by integration and order_id."""
    rows = svc.store.outbox.rows(batch_id)
    if not rows:
        return DONE
    row = rows[0]
    svc.store.outbox.begin_attempt(batch_id)
    try:
        sendcloud_id = find_sendcloud_id(svc, row)
        if sendcloud_id is None:
            return _absent(svc, row)
        if row.kind == "delete":
            _delete(svc.client, sendcloud_id)
        else:
            svc.client.patch_order(sendcloud_id, row.payload)
    except (ApiError, ConfigError) as error:
        return _after_failure(svc, batch_id, rows, error, rand)
    svc.store.outbox.settle([row.id], {row.id: sendcloud_id})
    return DONE


def _delete(client: SendcloudClient, sendcloud_id: int) -> None:
    with suppress(NotFound):  # already gone: a delete is done when the order is absent
        client.delete_order(sendcloud_id)


def _absent(svc: Services, row: OutboxRow) -> Step:
    """The order is not in Sendcloud: a delete is done. A patch waits once more for its order
    (it may still be on its way through the pipeline), then has nothing to change."""
    if row.kind == "delete":
        svc.store.outbox.settle([row.id])
    elif not row.reposted:
        svc.store.outbox.hold(row.id, PATCH_WAIT)
        return Step(done=True, flush=True)
    else:
        detail = "the order does not exist in Sendcloud, so it cannot be patched"
        svc.store.outbox.dead_letter({row.id: [FieldError("", detail)]}, "order not found")
    return DONE


def find_sendcloud_id(svc: Services, row: OutboxRow) -> int | None:
    if row.sendcloud_id is not None:
        return row.sendcloud_id
    entry = svc.store.outbox.ledger_entry(row.key)
    if entry is not None and entry.sendcloud_id is not None and entry.state == "confirmed":
        return entry.sendcloud_id
    integration_id, order_id = row.key
    for order in svc.client.iter_orders(integration=integration_id, order_id=order_id):
        if str(order.get("order_id")) == order_id:
            return int(order["id"])
    return None


def _with_id(row: OutboxRow) -> dict[str, object]:
    """The payload as sent: with Sendcloud's id (a string) once we know it, so the API updates
    that order even if the producer's payload did not carry it."""
    if row.sendcloud_id is None or "id" in row.payload:
        return row.payload
    return {**row.payload, "id": str(row.sendcloud_id)}


def _ids_by_key(rows: Sequence[OutboxRow], answer: Sequence[UpsertedOrder]
                ) -> dict[tuple[int, str], int]:
    """The API answers in request order; match by position, checking order_id."""
    ids: dict[tuple[int, str], int] = {}
    for row, item in zip(rows, answer, strict=False):
        if item.order_id == row.key[1]:
            ids[row.key] = item.id
    return ids


def _api_field_errors(error: ApiError | ConfigError) -> list[FieldError]:
    if not isinstance(error, ApiError):
        return [FieldError("", str(error))]
    items = [FieldError(item.pointer or "", item.detail or item.title or item.code or "")
             for item in error.errors]
    return items or [FieldError("", error.message)]


def _stop_message(error: ApiError | ConfigError) -> str:
    if isinstance(error, ApiError) and error.status in (401, 403):
        return (f"Sendcloud refused the credentials ({error.status}): check SENDCLOUD_PUBLIC_KEY "
                "and SENDCLOUD_SECRET_KEY")
    return f"{error} — check SENDCLOUD_API_URL"
