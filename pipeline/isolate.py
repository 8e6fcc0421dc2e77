"""Find the bad orders of a rejected batch without dead-lettering a good one (invariant 3).

The API is all-or-nothing: one bad order rejects the batch. `plan_isolation` looks at one
rejection and says which orders to dead-letter now and which groups to send again:

- The API named orders (`/data/attributes/[N]/…`, in range): dead-letter exactly those and send
  the rest again as one batch. When the API names every bad order at once (the spec's
  "All errors are returned together"), a batch of n orders with k bad ones costs:
  1 request when k == 0; 1 when k == n (all named, nothing to resend); 2 when 0 < k < n.
- No usable pointer: bisect. Each half is a new batch; a single order that fails is the
  culprit and is dead-lettered with the body's errors. k bad orders among n cost at most
  2k⌈log₂ n⌉ + 1 requests (at most k failing groups per level, ⌈log₂ n⌉ levels, each failing
  group sends its two halves, plus the first request).

The planner is pure: the upsert task applies a plan by scheduling each resend group as its own
upsert; `isolate` drives plans to the end in-process (tests, synchronous callers).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from pipeline.errors import BatchRejected, FieldError

T = TypeVar("T")


@dataclass(frozen=True)
class IsolationPlan:
    dead: dict[int, list[FieldError]]  # batch index → errors: dead-letter these orders
    resend: list[list[int]]  # groups of batch indices; each is sent again as a new batch


def plan_isolation(batch_size: int, error: BatchRejected) -> IsolationPlan:
    """What to do with a batch of `batch_size` orders the API rejected with `error`."""
    if batch_size < 1:
        raise ValueError(f"an empty batch cannot be rejected (batch_size={batch_size})")
    # An index outside the batch cannot be trusted to mean any order of ours: ignore it.
    named = {index: list(errors) for index, errors in sorted(error.pointers.items())
             if 0 <= index < batch_size}
    if named:
        rest = [index for index in range(batch_size) if index not in named]
        return IsolationPlan(dead=named, resend=[rest] if rest else [])
    if batch_size == 1:
        return IsolationPlan(dead={0: body_errors(error)}, resend=[])
    middle = batch_size // 2
    return IsolationPlan(dead={}, resend=[list(range(middle)), list(range(middle, batch_size))])


def body_errors(error: BatchRejected) -> list[FieldError]:
    """The body's errors as record-level FieldErrors (pointer ""): without a usable pointer we
    cannot say which field, only what the API said. The raw pointer stays in the detail."""
    out = []
    for item in error.errors:
        detail = item.detail or item.title or item.code or error.message
        where = item.pointer or item.parameter
        out.append(FieldError("", f"{detail} (at {where})" if where else detail))
    return out or [FieldError("", error.message)]


@dataclass
class IsolationResult(Generic[T]):
    sent: list[T] = field(default_factory=list)  # accepted by the API, in acceptance order
    dead: dict[int, list[FieldError]] = field(default_factory=dict)  # index into items → errors
    requests: int = 0


def isolate(items: Sequence[T],
            send: Callable[[Sequence[T]], BatchRejected | None]) -> IsolationResult[T]:
    """Send `items`, isolating rejected orders until every one is sent or dead.

    `send` returns None when the batch was accepted and the BatchRejected otherwise (any other
    error is the caller's: it propagates). Groups are worked first in, first out."""
    result: IsolationResult[T] = IsolationResult()
    queue: deque[list[int]] = deque([list(range(len(items)))] if items else [])
    while queue:
        group = queue.popleft()
        rejection = send([items[index] for index in group])
        result.requests += 1
        if rejection is None:
            result.sent.extend(items[index] for index in group)
            continue
        plan = plan_isolation(len(group), rejection)
        # The plan speaks in positions within `group`; translate back to positions in `items`.
        result.dead.update({group[index]: errors for index, errors in plan.dead.items()})
        queue.extend([group[index] for index in resend] for resend in plan.resend)
    return result
