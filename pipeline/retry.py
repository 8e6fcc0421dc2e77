"""What to do after a failed request, and how long to wait: pure functions.

Randomness is passed in (`rand` in [0, 1)) so every decision is reproducible in a table test;
the task draws `random.random()` and hands it over.

`attempt` is the number of tries that already failed before this one: 0 for the first failure.
With `max_attempts=10` the tenth failure (attempt 9) is the last: it is dead-lettered.

| error                         | action                                                        |
|-------------------------------|---------------------------------------------------------------|
| Conflict (400 processing/409) | RETRY, jittered conflict backoff; DEAD_LETTER "conflict" when |
|                               | the budget is spent; never ISOLATE (the batch is not at fault)|
| RateLimited (429)             | RETRY after Retry-After (+ up to 1 s jitter) or backoff; own  |
|                               | budget `rate_limit_max_attempts`                              |
| ServerError, TransportError   | RETRY with backoff; DEAD_LETTER when the budget is spent      |
| ApiError 408/425, no status   | the same (the server asks us to come back)                    |
| BatchRejected (400 on POST)   | ISOLATE                                                       |
| AuthError (401/403)           | STOP: credentials are wrong, every request would fail         |
| ConfigError                   | STOP                                                          |
| NotFound (404)                | STOP when the body is not the API's own JSON "not_found": the |
|                               | URL is wrong (wrong base URL); DEAD_LETTER when the API says  |
|                               | the order is not found (PATCH/GET of a vanished order). The   |
|                               | caller handles DELETE 404 (already gone = done) before this.  |
| ApiError 3xx                  | STOP: a redirect on a write means the API URL is wrong        |
| other ApiError 4xx            | DEAD_LETTER: the API refused this request; repeating won't help|
| RecordRejected                | DEAD_LETTER: field errors do not go away by waiting           |
| anything else                 | RETRY with backoff (a bug or a blip), then DEAD_LETTER        |

Countdowns never exceed `policy.cap`, which must stay under `MAX_COUNTDOWN` (30 min): Celery
holds an ETA task unacknowledged until it runs, and RabbitMQ's default `consumer_timeout` (30 min)
closes the channel of a consumer that keeps a message longer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pipeline.errors import (
    ApiError,
    AuthError,
    BatchRejected,
    ConfigError,
    Conflict,
    NotFound,
    OrderSyncError,
    RateLimited,
    RecordRejected,
    ServerError,
    TransportError,
)

MAX_COUNTDOWN = 1800.0
RATE_LIMIT_JITTER = 1.0  # seconds spread over workers that all got the same Retry-After
_RETRYABLE_STATUS = frozenset({408, 425})


class Action(StrEnum):
    RETRY = "retry"
    ISOLATE = "isolate"
    DEAD_LETTER = "dead_letter"
    STOP = "stop"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 10
    base: float = 1.0
    cap: float = 300.0
    conflict_base: float = 0.5
    conflict_cap: float = 30.0
    rate_limit_max_attempts: int = 50

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.rate_limit_max_attempts < 1:
            raise ValueError("attempt budgets must be at least 1")
        for base, cap in ((self.base, self.cap), (self.conflict_base, self.conflict_cap)):
            if not 0 < base <= cap <= MAX_COUNTDOWN:
                raise ValueError(f"need 0 < base ≤ cap ≤ {MAX_COUNTDOWN:g}s, got {base}, {cap}")


@dataclass(frozen=True)
class Decision:
    action: Action
    countdown: float = 0.0
    reason: str = ""


def backoff(attempt: int, *, base: float, cap: float, rand: float) -> float:
    """Exponential backoff with full jitter: rand * min(cap, base * 2**attempt).

    Full jitter spreads workers that failed together over the whole window, so they do not
    come back together."""
    _check(attempt, rand)
    # 2.0 ** 1100 overflows a float; past 2**64 every ceiling is the cap anyway.
    return rand * min(cap, base * 2.0 ** min(attempt, 64))


def decide(error: BaseException, attempt: int, rand: float,
           policy: RetryPolicy = RetryPolicy()) -> Decision:
    """The action for `error`, which was failure number `attempt + 1` of this request."""
    _check(attempt, rand)
    if isinstance(error, Conflict):
        return _conflict(error, attempt, rand, policy)
    if isinstance(error, RateLimited):
        return _rate_limited(error, attempt, rand, policy)
    if isinstance(error, BatchRejected):
        return Decision(Action.ISOLATE, reason=f"batch rejected: {error.message}")
    if isinstance(error, AuthError | ConfigError):
        return Decision(Action.STOP, reason=_describe(error))
    if isinstance(error, NotFound):
        return _not_found(error)
    if isinstance(error, RecordRejected):
        return Decision(Action.DEAD_LETTER, reason=error.reason)
    if isinstance(error, ServerError):
        return _transient(f"server error (status {error.status})", error, attempt, rand, policy)
    if isinstance(error, TransportError):
        return _transient("no answer", error, attempt, rand, policy)
    if isinstance(error, ApiError):
        return _api_error(error, attempt, rand, policy)
    return _transient("unexpected error", error, attempt, rand, policy)


def _conflict(error: Conflict, attempt: int, rand: float, policy: RetryPolicy) -> Decision:
    # Another request holds one of these orders: the batch itself is fine, so never isolate.
    if _spent(attempt, policy.max_attempts):
        return Decision(Action.DEAD_LETTER, reason="conflict")
    wait = backoff(attempt, base=policy.conflict_base, cap=policy.conflict_cap, rand=rand)
    return Decision(Action.RETRY, wait, f"conflict: {error.message}")


def _rate_limited(error: RateLimited, attempt: int, rand: float,
                  policy: RetryPolicy) -> Decision:
    if _spent(attempt, policy.rate_limit_max_attempts):
        return Decision(Action.DEAD_LETTER,
                        reason=f"rate limited after {attempt + 1} attempts: {error.message}")
    if error.retry_after is None:
        wait = backoff(attempt, base=policy.base, cap=policy.cap, rand=rand)
    else:
        # Never earlier than the server asked (unless that is beyond our cap): an early retry
        # only earns another 429 and burns the shared budget.
        wait = min(policy.cap, error.retry_after + rand * RATE_LIMIT_JITTER)
    return Decision(Action.RETRY, wait, f"rate limited: {error.message}")


def _not_found(error: NotFound) -> Decision:
    if any(item.code == "not_found" for item in error.errors):
        return Decision(Action.DEAD_LETTER, reason=f"not found: {error.message}")
    return Decision(Action.STOP, reason=f"{error.message} (is the API URL right?)")


def _api_error(error: ApiError, attempt: int, rand: float, policy: RetryPolicy) -> Decision:
    status = error.status
    if status is None or status in _RETRYABLE_STATUS:
        return _transient(f"API error (status {status})", error, attempt, rand, policy)
    if 300 <= status < 400:
        return Decision(Action.STOP, reason=f"{error.message} (is the API URL right?)")
    if 400 <= status < 500:
        return Decision(Action.DEAD_LETTER, reason=f"rejected: {error.message}")
    return _transient(f"API error (status {status})", error, attempt, rand, policy)


def _transient(what: str, error: BaseException, attempt: int, rand: float,
               policy: RetryPolicy) -> Decision:
    if _spent(attempt, policy.max_attempts):
        return Decision(Action.DEAD_LETTER,
                        reason=f"{what} after {attempt + 1} attempts: {_describe(error)}")
    wait = backoff(attempt, base=policy.base, cap=policy.cap, rand=rand)
    return Decision(Action.RETRY, wait, f"{what}: {_describe(error)}")


def _spent(attempt: int, budget: int) -> bool:
    return attempt + 1 >= budget


def _describe(error: BaseException) -> str:
    if isinstance(error, ApiError):
        return error.message
    text = str(error)
    if isinstance(error, OrderSyncError):  # our own errors carry a message meant for operators
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _check(attempt: int, rand: float) -> None:
    if attempt < 0:
        raise ValueError(f"attempt counts failures so far and cannot be negative: {attempt}")
    if not 0.0 <= rand < 1.0:
        raise ValueError(f"rand must be in [0, 1), got {rand}")
