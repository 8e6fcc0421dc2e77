"""`from tasks import submit`: how producers hand records over.

Records are staged in the store first (so nothing handed over can be lost), then one chain per
chunk runs normalize → validate → batch. Messages carry the chunk id and a count only."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

from celery import chain

from pipeline.store import Store
from tasks.context import services
from tasks.ingest import batch, normalize, validate

CHUNK = 100


def submit(records: Iterable[Any]) -> str:
    """Hand records over to the pipeline; returns the submission id (see `ordersync status`)."""
    store = services().store
    sid = store.open_submission()
    for chunk in chunked(records, CHUNK):
        start_chunk(store.stage_chunk(sid, chunk), len(chunk))
    store.close_submission(sid)
    return sid


def start_chunk(chunk_id: str, count: int) -> None:
    shown = f"('{chunk_id}',)  # {count} records"
    chain(normalize.si(chunk_id).set(argsrepr=shown),
          validate.si(chunk_id).set(argsrepr=shown),
          batch.si(chunk_id).set(argsrepr=shown)).apply_async()


def resume_staged(store: Store) -> int:
    """Start the chain again for chunks left staged by a process that died (embedded mode).
    Stages are idempotent, so a chunk whose chain is still running is not harmed."""
    ids = store.staged_chunks()
    for chunk_id, count in ids:
        start_chunk(chunk_id, count)
    return len(ids)


def chunked(records: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(records)
    while chunk := list(islice(it, size)):
        yield chunk
