"""How a `Step` from pipeline/ becomes Celery actions, and the flush that sends partial batches
after the linger. Shared by the send and confirm tasks."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Task

from pipeline import dispatch
from pipeline.sender import Step
from tasks.app import app
from tasks.context import services, settings

log = logging.getLogger("ordersync")
FLUSH_FLAG = "flush"
CONFIRM_FIRST_DELAY = 0.5  # the API saves asynchronously: give it a moment before looking


def follow(task: Task[Any, Any], batch_id: str, step: Step) -> None:
    if step.stop is not None:
        log.error("batch %s stopped: %s", batch_id, step.stop)
    for new_batch in step.resend:
        send_upsert(new_batch)
    if step.confirm is not None:
        app.send_task("ordersync.confirm", (step.confirm,), countdown=CONFIRM_FIRST_DELAY)
    if step.flush:
        schedule_flush()
    if step.retry_in is not None:
        raise task.retry(countdown=step.retry_in, max_retries=None)


def send_upsert(batch_id: str) -> None:
    app.send_task("ordersync.upsert", (batch_id,))


def send_dispatch(out: dispatch.Dispatch) -> None:
    for batch_id in out.upserts:
        send_upsert(batch_id)
    for kind, batch_id in out.singles:
        app.send_task(f"ordersync.{kind}", (batch_id,))
    if out.remaining:
        schedule_flush()


def dispatch_full() -> None:
    store = services().store
    if store.alerts().get("stopped"):
        return
    send_dispatch(dispatch.full_batches(store))


def schedule_flush() -> None:
    """One flush at a time: the flag says one is already on its way."""
    linger = settings().linger
    if services().store.claim_flag(FLUSH_FLAG, time.time() + linger + 1.0):
        app.send_task("ordersync.flush", countdown=linger)


@app.task(name="ordersync.flush")
def flush() -> int:
    """Send what has lingered long enough; reschedule while anything is pending."""
    store = services().store
    store.clear_flag(FLUSH_FLAG)
    if store.alerts().get("stopped"):
        return 0  # an operator must fix the configuration; `sync` clears the alert
    out = dispatch.due_batches(store, settings().linger)
    send_dispatch(out)
    return len(out.upserts) + len(out.singles)
