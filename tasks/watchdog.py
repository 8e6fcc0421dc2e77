"""Every worker keeps the flush going.

The flush (send lingering batches, reap orphaned claims) reschedules itself while anything is
unsettled, but a chain of messages can break: a worker killed while holding the flush, a
publish that failed during a broker restart. So each worker process also looks every few
seconds and schedules a flush when work is waiting and none is on its way (the shared flag
keeps it to one flush at a time, however many workers look).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery.signals import worker_ready, worker_shutdown

from tasks.context import services
from tasks.flow import schedule_flush
from tasks.producer import start_chunk

log = logging.getLogger("ordersync")
INTERVAL = 5.0
_stop = threading.Event()


STALE_CHUNK = 120.0  # seconds a chunk may sit in ingestion before its chain is presumed lost


def look_once() -> bool:
    """Restart ingestion of chunks stuck for long (their messages were lost) and schedule a
    flush if rows are unsettled. True when a flush was needed."""
    store = services().store
    for chunk_id, count in store.staged_chunks(older_than=time.time() - STALE_CHUNK):
        start_chunk(chunk_id, count)  # stages are compare-and-set: a twin chain is harmless
    if store.alerts().get("stopped") or store.outbox.unsettled() == 0:
        return False
    schedule_flush()
    return True


def _loop() -> None:
    while not _stop.wait(INTERVAL):
        try:
            look_once()
        except Exception:  # the broker or the database is down: look again later
            log.warning("watchdog: could not check the outbox", exc_info=True)


@worker_ready.connect
def _start(**_: Any) -> None:
    _stop.clear()
    threading.Thread(target=_loop, name="ordersync-watchdog", daemon=True).start()


@worker_shutdown.connect
def _end(**_: Any) -> None:
    _stop.set()
