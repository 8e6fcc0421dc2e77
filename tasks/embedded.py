"""Embedded mode: a Celery worker inside the calling process, on kombu's memory transport.

Same tasks, same code path as the distributed workers; only the broker is in-process. Used by
`ordersync sync` and `ordersync demo` when ORDERSYNC_BROKER_URL is unset.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery.worker import WorkController

from tasks.app import app

SHUTDOWN_TIMEOUT = 30.0


class _Worker(WorkController):  # type: ignore[misc]
    """A WorkController that tells when its consumer is ready."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.ready = threading.Event()
        super().__init__(*args, **kwargs)

    def on_consumer_ready(self, consumer: Any) -> None:
        self.ready.set()


@contextmanager
def embedded_worker(concurrency: int = 4, loglevel: str = "WARNING") -> Iterator[None]:
    """Run a thread-pool worker consuming every ordersync queue until the block ends."""
    worker = _Worker(app=app, concurrency=concurrency, pool="threads", loglevel=loglevel,
                     hostname="embedded@ordersync", without_heartbeat=True,
                     without_mingle=True, without_gossip=True, ready_callback=None)
    thread = threading.Thread(target=worker.start, name="ordersync-worker", daemon=True)
    thread.start()
    if not worker.ready.wait(timeout=30):
        raise RuntimeError("the embedded worker did not start")
    try:
        yield
    finally:
        # A warm stop: tasks in progress finish (their state is written before the ack).
        worker.stop(in_sighandler=False)
        thread.join(SHUTDOWN_TIMEOUT)
