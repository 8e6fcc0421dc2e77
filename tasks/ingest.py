"""ordersync.normalize → ordersync.validate → ordersync.batch, over staged chunks.

Messages carry chunk ids; records stay in the store (Flower shows no customer data)."""

from __future__ import annotations

from pipeline import ingest
from tasks.app import app
from tasks.context import services
from tasks.flow import dispatch_full


@app.task(name="ordersync.normalize")
def normalize(chunk_id: str) -> int:
    return ingest.normalize_chunk(services().store, chunk_id)


@app.task(name="ordersync.validate")
def validate(chunk_id: str) -> int:
    return ingest.validate_chunk(services().store, chunk_id)


@app.task(name="ordersync.batch")
def batch(chunk_id: str) -> dict[str, int]:
    tally = ingest.batch_chunk(services().store, chunk_id)
    dispatch_full()
    return dict(tally)
