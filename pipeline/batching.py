"""Coalescing and batching of operations: pure and deterministic.

Coalescing keeps one operation per order (the newest version; between equal versions the later
arrival, CONTRACT §1), so a batch never carries two versions of one order and an older version
never goes out after a newer one (invariant 2). Batches hold at most 100 orders (the API's
limit); integrations mix freely in a batch (the API allows it).
"""

from __future__ import annotations

from collections.abc import Iterable

from pipeline.client import MAX_BATCH
from pipeline.records import Operation, OrderKey


def coalesce(ops: Iterable[Operation]) -> tuple[list[Operation], list[Operation]]:
    """(winners, superseded).

    One winner per key: the highest `version`; between equal versions, the one later in the
    input. Winners come in the order their key was first seen (a stable order for batches);
    superseded operations in input order. Every input lands in exactly one of the two lists.

    The kind does not matter: a newer delete beats an older upsert and a newer upsert beats an
    older delete. Folding a newer patch into an older upsert is not done here."""
    ordered = list(ops)
    # key → (input position, op); a dict keeps the order in which keys were first seen.
    best: dict[OrderKey, tuple[int, Operation]] = {}
    for position, op in enumerate(ordered):
        current = best.get(op.key)
        # `>=`: an equal version arriving later replaces the earlier one.
        if current is None or op.version >= current[1].version:
            best[op.key] = (position, op)
    winning = {position for position, _ in best.values()}
    winners = [op for _, op in best.values()]
    superseded = [op for position, op in enumerate(ordered) if position not in winning]
    return winners, superseded


def make_batches(ops: Iterable[Operation], size: int = MAX_BATCH) -> list[list[Operation]]:
    """Upserts → batches of at most `size`, after coalescing (superseded upserts are left out:
    call `coalesce` first when you need them). Raises ValueError for patch/delete operations,
    which go to their own endpoints, and for a size outside 1..100."""
    if not 1 <= size <= MAX_BATCH:
        raise ValueError(f"batch size must be between 1 and {MAX_BATCH}, got {size}")
    upserts = list(ops)
    for op in upserts:
        if op.kind != "upsert":
            raise ValueError(f"only upserts are batched; got a {op.kind} for order {op.key}")
    winners, _ = coalesce(upserts)
    return [winners[start:start + size] for start in range(0, len(winners), size)]
