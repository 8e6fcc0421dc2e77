"""ordersync.normalize → ordersync.validate → ordersync.batch, over staged chunks.

Messages carry chunk ids; records stay in the store (Flower shows no customer data)."""

from __future__ import annotations

from pipeline import ingest
from tasks.app import app
from tasks.context import services
from tasks.flow import TASK_OPTIONS, dispatch_full


@app.task(name="ordersync.normalize", **TASK_OPTIONS)
def normalize(chunk_id: str) -> int:
    return ingest.normalize_chunk(services().store, chunk_id)


@app.task(name="ordersync.validate", **TASK_OPTIONS)
def validate(chunk_id: str) -> int:
    return ingest.validate_chunk(services().store, chunk_id)


@app.task(name="ordersync.batch", **TASK_OPTIONS)
def batch(chunk_id: str) -> dict[str, int]:
    tally = ingest.batch_chunk(services().store, chunk_id)
    dispatch_full()
    return dict(tally)
