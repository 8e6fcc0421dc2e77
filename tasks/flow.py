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


# Options every ordersync task shares. An unexpected exception (a database hiccup, a bug) is
# retried with backoff instead of failing: with acks_late a failed task's message is gone.
TASK_OPTIONS: dict[str, Any] = {
    "autoretry_for": (Exception,), "retry_backoff": 2, "retry_backoff_max": 60,
    "retry_jitter": True, "retry_kwargs": {"max_retries": 50},
}


def follow(task: Task[Any, Any], batch_id: str, step: Step) -> None:
    store = services().store
    if step.stop is not None:
        log.error("batch %s stopped: %s", batch_id, step.stop)
    publish_or_release([("upsert", b) for b in step.resend])
    if step.confirm is not None:
        app.send_task("ordersync.confirm", (step.confirm,), countdown=CONFIRM_FIRST_DELAY)
    if step.flush:
        schedule_flush()
    if step.retry_in is not None:
        store.outbox.extend_lease(batch_id, step.retry_in)
        raise task.retry(countdown=step.retry_in, max_retries=None)


def publish_or_release(batches: list[tuple[str, str]]) -> None:
    """Send a task per claimed batch. A batch whose message cannot be published (broker gone
    past the publish retries) goes back to pending at once instead of waiting for its lease."""
    for n, (kind, batch_id) in enumerate(batches):
        try:
            app.send_task(f"ordersync.{kind}", (batch_id,))
        except Exception:
            for _, unsent in batches[n:]:
                services().store.outbox.release(unsent)
            raise


def send_dispatch(out: dispatch.Dispatch) -> None:
    publish_or_release([("upsert", b) for b in out.upserts] + list(out.singles))
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


@app.task(name="ordersync.flush", **TASK_OPTIONS)
def flush() -> int:
    """Send what has lingered long enough; reschedule while anything is pending."""
    store = services().store
    store.clear_flag(FLUSH_FLAG)
    if store.alerts().get("stopped"):
        return 0  # an operator must fix the configuration; `sync` clears the alert
    out = dispatch.due_batches(store, settings().linger)
    send_dispatch(out)
    return len(out.upserts) + len(out.singles)
