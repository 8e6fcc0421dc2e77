"""Turning pending outbox rows into batches: full batches at once, partial ones after the
linger (so a trickle of single orders still fills batches), patches and deletes one a batch."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pipeline.store import Store

BATCH_SIZE = 100  # the API's maximum per POST
SINGLES_PER_FLUSH = 50  # patches/deletes claimed per flush; the rest wait for the next one
# A patch whose order is unknown waits this long before it is sent as a PATCH: records of one
# file are ingested in parallel, and its order may be a few chunks behind (it then folds in).
PATCH_HOLD = 10.0


@dataclass
class Dispatch:
    upserts: list[str] = field(default_factory=list)  # batch ids for the upsert task
    singles: list[tuple[str, str]] = field(default_factory=list)  # (kind, batch id)
    remaining: bool = False  # pending rows are left: another flush is needed

    @property
    def empty(self) -> bool:
        return not self.upserts and not self.singles


def full_batches(store: Store) -> Dispatch:
    """Claim every full batch of pending upserts (called after each enqueue)."""
    out = Dispatch()
    counts = store.outbox.pending_counts()
    pending = counts.get("upsert", (0, None))[0]
    while pending >= BATCH_SIZE:
        batch_id = store.outbox.claim("upsert", BATCH_SIZE, full=True)
        if batch_id is None:
            break  # the rest belong to orders already in flight
        out.upserts.append(batch_id)
        pending -= BATCH_SIZE
    # From the same counts: rows enqueued meanwhile are their own batch task's to dispatch.
    out.remaining = pending > 0 or any(n for kind, (n, _) in counts.items() if kind != "upsert")
    return out


def due_batches(store: Store, linger: float, now: float | None = None) -> Dispatch:
    """Claim what has waited at least `linger` seconds, partial batches included."""
    now = time.time() if now is None else now
    out = Dispatch()
    store.outbox.reap()
    # Once the oldest order has lingered long enough, send it with up to 99 younger ones: a
    # trickle then goes out in batches of ~100, not in the crumbs a strict age cut would leave.
    # After that one partial batch, only full ones: orders that arrived meanwhile wait for the
    # next flush rather than leave as crumbs.
    oldest = store.outbox.pending_counts().get("upsert", (0, None))[1]
    if oldest is not None and oldest <= now - linger:
        first = store.outbox.claim("upsert", BATCH_SIZE, due_by=now - linger)
        out.upserts += [first] if first else []
        while (batch_id := store.outbox.claim("upsert", BATCH_SIZE, full=True)):
            out.upserts.append(batch_id)
    for kind in ("delete", "patch"):
        wait = max(linger, PATCH_HOLD) if kind == "patch" else linger
        for _ in range(SINGLES_PER_FLUSH):
            single = store.outbox.claim(kind, 1, older_than=now - wait)
            if single is None:
                break
            out.singles.append((kind, single))
    # Keep flushing while anything is unsettled: in-flight rows whose message was lost are
    # only found by the reaper, which runs here.
    out.remaining = store.outbox.unsettled() > 0
    return out
