"""pipeline.retry: decisions as tables, backoff as properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.errors import (
    ApiError,
    ApiErrorItem,
    AuthError,
    BatchRejected,
    ConfigError,
    Conflict,
    FieldError,
    NotFound,
    RateLimited,
    RecordRejected,
    ServerError,
    TransportError,
)
from pipeline.retry import (
    MAX_COUNTDOWN,
    Action,
    Decision,
    RetryPolicy,
    backoff,
    decide,
)

POLICY = RetryPolicy()
NOT_FOUND_ITEM = ApiErrorItem(status="404", code="not_found", detail="Not found")

# ---------------------------------------------------------------------------------------------
# backoff


@pytest.mark.parametrize(
    ("attempt", "base", "cap", "rand", "expected"),
    [
        (0, 1.0, 300.0, 0.5, 0.5),  # 0.5 * min(300, 1)
        (1, 1.0, 300.0, 0.5, 1.0),  # 0.5 * 2
        (3, 1.0, 300.0, 0.25, 2.0),  # 0.25 * 8
        (8, 1.0, 300.0, 0.5, 128.0),  # 0.5 * 256
        (9, 1.0, 300.0, 0.5, 150.0),  # capped: 0.5 * 300
        (0, 0.5, 30.0, 0.0, 0.0),  # full jitter reaches 0
        (10_000, 1.0, 300.0, 0.999, 299.7),  # no float overflow for absurd attempts
    ],
)
def test_backoff_table(attempt: int, base: float, cap: float, rand: float,
                       expected: float) -> None:
    assert backoff(attempt, base=base, cap=cap, rand=rand) == pytest.approx(expected)


@given(attempt=st.integers(0, 5000), rand=st.floats(0, 1, exclude_max=True),
       base=st.floats(0.01, 10), cap=st.floats(10, MAX_COUNTDOWN))
def test_backoff_stays_within_zero_and_cap(attempt: int, rand: float, base: float,
                                           cap: float) -> None:
    assert 0.0 <= backoff(attempt, base=base, cap=cap, rand=rand) <= cap


@given(attempt=st.integers(0, 40), rand=st.floats(0, 1, exclude_max=True))
def test_backoff_ceiling_grows_with_attempts(attempt: int, rand: float) -> None:
    now = backoff(attempt, base=1.0, cap=300.0, rand=rand)
    later = backoff(attempt + 1, base=1.0, cap=300.0, rand=rand)
    assert later >= now


@pytest.mark.parametrize(("attempt", "rand"), [(-1, 0.5), (0, 1.0), (0, -0.1), (0, 1.5)])
def test_bad_inputs_are_refused(attempt: int, rand: float) -> None:
    with pytest.raises(ValueError):
        backoff(attempt, base=1.0, cap=10.0, rand=rand)
    with pytest.raises(ValueError):
        decide(ServerError("boom", status=500), attempt, rand)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"rate_limit_max_attempts": 0},
        {"cap": 3600.0},  # an hour-long countdown outlives RabbitMQ's consumer_timeout
        {"base": 0.0},
        {"base": 10.0, "cap": 5.0},
        {"conflict_cap": 4000.0},
    ],
)
def test_policy_refuses_unsafe_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# decide: the outcome table


@pytest.mark.parametrize(
    ("error", "attempt", "rand", "expected"),
    [
        # conflict: jittered conflict backoff, never isolate
        (Conflict("busy", status=400), 0, 0.5, Decision(Action.RETRY, 0.25, "conflict: busy")),
        (Conflict("busy", status=409), 3, 0.5, Decision(Action.RETRY, 2.0, "conflict: busy")),
        (Conflict("busy", status=409), 8, 0.5, Decision(Action.RETRY, 15.0, "conflict: busy")),
        (Conflict("busy", status=400), 9, 0.5, Decision(Action.DEAD_LETTER, 0.0, "conflict")),
        # rate limited: Retry-After plus up to a second, or backoff; own budget of 50
        (RateLimited("slow down", retry_after=7.0), 0, 0.5,
         Decision(Action.RETRY, 7.5, "rate limited: slow down")),
        (RateLimited("slow down", retry_after=0.0), 0, 0.0,
         Decision(Action.RETRY, 0.0, "rate limited: slow down")),
        (RateLimited("slow down", retry_after=3600.0), 0, 0.5,
         Decision(Action.RETRY, 300.0, "rate limited: slow down")),  # capped
        (RateLimited("slow down"), 2, 0.5, Decision(Action.RETRY, 2.0, "rate limited: slow down")),
        (RateLimited("slow down", retry_after=1.0), 30, 0.5,
         Decision(Action.RETRY, 1.5, "rate limited: slow down")),  # past max_attempts, in budget
        (RateLimited("slow down", retry_after=1.0), 49, 0.5,
         Decision(Action.DEAD_LETTER, 0.0, "rate limited after 50 attempts: slow down")),
        # server error / transport: backoff, then dead letter
        (ServerError("POST /orders → 503", status=503), 0, 0.5,
         Decision(Action.RETRY, 0.5, "server error (status 503): POST /orders → 503")),
        (ServerError("POST /orders → 500", status=500), 9, 0.5,
         Decision(Action.DEAD_LETTER, 0.0,
                  "server error (status 500) after 10 attempts: POST /orders → 500")),
        (TransportError("read timeout"), 4, 0.5,
         Decision(Action.RETRY, 8.0, "no answer: read timeout")),
        (TransportError("read timeout"), 9, 0.5,
         Decision(Action.DEAD_LETTER, 0.0, "no answer after 10 attempts: read timeout")),
        # a rejected batch is isolated at once, whatever the attempt
        (BatchRejected("bad", pointers={1: [FieldError("/order_id", "Field required")]}), 0, 0.5,
         Decision(Action.ISOLATE, 0.0, "batch rejected: bad")),
        (BatchRejected("bad"), 9, 0.5, Decision(Action.ISOLATE, 0.0, "batch rejected: bad")),
        # configuration problems stop everything
        (AuthError("401", status=401), 0, 0.5, Decision(Action.STOP, 0.0, "401")),
        (AuthError("403", status=403), 5, 0.5, Decision(Action.STOP, 0.0, "403")),
        (ConfigError("no URL"), 0, 0.5, Decision(Action.STOP, 0.0, "no URL")),
        (NotFound("POST /orders → 404: Not Found", status=404), 0, 0.5,
         Decision(Action.STOP, 0.0, "POST /orders → 404: Not Found (is the API URL right?)")),
        (ApiError("POST /orders → 301", status=301), 0, 0.5,
         Decision(Action.STOP, 0.0, "POST /orders → 301 (is the API URL right?)")),
        # the API's own "order not found" concerns one order, not the setup
        (NotFound("gone", status=404, errors=[NOT_FOUND_ITEM]), 0, 0.5,
         Decision(Action.DEAD_LETTER, 0.0, "not found: gone")),
        # other refusals do not change by waiting
        (ApiError("PATCH → 400", status=400), 0, 0.5,
         Decision(Action.DEAD_LETTER, 0.0, "rejected: PATCH → 400")),
        (ApiError("POST → 413", status=413), 0, 0.5,
         Decision(Action.DEAD_LETTER, 0.0, "rejected: POST → 413")),
        (RecordRejected("order_id missing"), 0, 0.5,
         Decision(Action.DEAD_LETTER, 0.0, "order_id missing")),
        # ... except those that ask us to come back
        (ApiError("POST → 408", status=408), 1, 0.5,
         Decision(Action.RETRY, 1.0, "API error (status 408): POST → 408")),
        # unexpected exceptions: retry, then dead letter
        (KeyError("data"), 0, 0.5,
         Decision(Action.RETRY, 0.5, "unexpected error: KeyError: 'data'")),
        (RuntimeError(), 9, 0.5,
         Decision(Action.DEAD_LETTER, 0.0, "unexpected error after 10 attempts: RuntimeError")),
    ],
)
def test_decide_table(error: BaseException, attempt: int, rand: float,
                      expected: Decision) -> None:
    decision = decide(error, attempt, rand)
    assert decision.action == expected.action
    assert decision.countdown == pytest.approx(expected.countdown)
    assert decision.reason == expected.reason


ERRORS = st.sampled_from([
    Conflict("c", status=400), Conflict("c", status=409), RateLimited("r"),
    RateLimited("r", retry_after=12.0), RateLimited("r", retry_after=1e6), ServerError("s"),
    TransportError("t"), BatchRejected("b"), AuthError("a"), NotFound("n"), ApiError("x"),
    ApiError("x", status=400), ValueError("v"),
])


@given(error=ERRORS, attempt=st.integers(0, 200), rand=st.floats(0, 1, exclude_max=True))
def test_countdown_is_never_negative_nor_past_the_cap(error: BaseException, attempt: int,
                                                      rand: float) -> None:
    decision = decide(error, attempt, rand)
    assert 0.0 <= decision.countdown <= POLICY.cap < 3600
    if decision.action is not Action.RETRY:
        assert decision.countdown == 0.0


@given(attempt=st.integers(0, 200), rand=st.floats(0, 1, exclude_max=True),
       status=st.sampled_from([400, 409]))
def test_conflicts_are_never_isolated_and_wait_at_most_the_conflict_cap(
        attempt: int, rand: float, status: int) -> None:
    decision = decide(Conflict("busy", status=status), attempt, rand)
    assert decision.action in (Action.RETRY, Action.DEAD_LETTER)
    assert decision.countdown <= POLICY.conflict_cap


@given(retry_after=st.floats(0, POLICY.cap - 1), attempt=st.integers(0, 48),
       rand=st.floats(0, 1, exclude_max=True))
def test_rate_limited_never_comes_back_before_retry_after(retry_after: float, attempt: int,
                                                          rand: float) -> None:
    decision = decide(RateLimited("429", retry_after=retry_after), attempt, rand)
    assert decision.action is Action.RETRY
    assert retry_after <= decision.countdown <= retry_after + 1.0


@given(attempt=st.integers(0, 200), rand=st.floats(0, 1, exclude_max=True),
       error=st.sampled_from([ServerError("s"), TransportError("t"), RuntimeError("r")]))
def test_transient_errors_retry_exactly_until_the_budget_is_spent(
        attempt: int, rand: float, error: BaseException) -> None:
    decision = decide(error, attempt, rand)
    expected = Action.RETRY if attempt < POLICY.max_attempts - 1 else Action.DEAD_LETTER
    assert decision.action is expected


def test_a_smaller_policy_is_honoured() -> None:
    policy = RetryPolicy(max_attempts=2, base=2.0, cap=5.0)
    assert decide(ServerError("s"), 0, 0.5, policy) == Decision(
        Action.RETRY, 1.0, "server error (status None): s")
    assert decide(ServerError("s"), 1, 0.5, policy).action is Action.DEAD_LETTER
    assert decide(RateLimited("r", retry_after=30.0), 0, 0.5, policy).countdown == 5.0
