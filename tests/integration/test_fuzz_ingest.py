"""Fuzzing the ingest: hypothesis-generated garbage through normalize, validate and batch.

(a) Function level: `parse_record` / `validate_operation`, and `normalize_chunk` /
    `validate_chunk` / `batch_chunk` on a real SQLite store. Whatever comes in (any JSON value,
    orders with fields removed, mistyped, huge, odd Unicode or deeply nested, wrong envelopes),
    nothing raises; each record ends as a valid operation in the outbox or as a dead letter with
    a reason, and the counts add up.
(b) End to end: a few hundred generated garbage records mixed with valid orders through a real
    `ordersync sync --json` (embedded) against the emulator: exit 0 or 1, never 2 or a traceback;
    records == sum of outcomes; every garbage record dead-lettered with a reason; every valid one
    confirmed.

Inputs the fuzzing found to break a stage are kept in KNOWN_BAD and run by a parametrized test,
so they fail deterministically until the pipeline is fixed (the generated ones find them only
now and then).
"""

from __future__ import annotations

import copy
import json
import math
import random
import subprocess
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from pipeline import ingest
from pipeline.codec import dumps, loads
from pipeline.errors import RecordRejected
from pipeline.records import Operation, parse_record, validate_operation
from pipeline.sample import SampleSpec, generate
from pipeline.store import TERMINAL, Store
from pipeline.tables import outbox
from tests.integration.conftest import ORDERSYNC, base_env, emulator

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _order_of(record: dict[str, Any]) -> dict[str, Any]:
    inner = record.get("order")
    return inner if record.get("op") == "upsert" and isinstance(inner, dict) else record


# Realistic valid orders (some loosely typed: "2" for 2, country names, naive timestamps) to
# mutate, and to mix in as the valid part of a batch.
BASES: list[dict[str, Any]] = [
    _order_of(r) for r in generate(SampleSpec(count=40, seed=5, loose_rate=0.5))
    if r.get("op") in (None, "upsert")]


# -- garbage -------------------------------------------------------------------------------------

ODD_TEXT = [
    "", " ", "\t\n", "\x00", "A\x00B", "\u202eevil", "\u200b", "e\u0301", "😀" * 3, "ǅ", "ß",
    "İ", "\ufeff", "NaN", "Infinity", "-0", "1e999", "0x1F", "1,50", "١٢٣", "２", "null", "true",
    "2024-02-30T10:00:00Z", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00",
    "2024-05-01", "20240501", "1714557600000", "\ud800", "a\udc80b", "'; DROP TABLE outbox;--",
]

json_leaves = (st.none() | st.booleans()
               | st.integers(min_value=-(2**70), max_value=2**70)
               | st.floats(allow_nan=True, allow_infinity=True)
               | st.text(max_size=12) | st.sampled_from(ODD_TEXT))
json_values = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10) | st.sampled_from(ODD_TEXT), children, max_size=4),
    max_leaves=12)


def _nested(depth: int, kind: str) -> Any:
    value: Any = "core"
    for _ in range(depth):
        value = [value] if kind == "list" else {"n": value}
    return value


huge_values = st.one_of(
    st.integers(min_value=1_000, max_value=200_000).map(lambda n: "x" * n),
    st.integers(min_value=100, max_value=5_000).map(lambda n: "9" * n),  # a numeric string
    st.sampled_from([2**63, 2**64 + 1, 10**30, -(2**63) - 1, 10**300, 1e308, -1e-308]),
    st.integers(min_value=100, max_value=2_000).map(lambda n: list(range(n))),
    st.integers(min_value=100, max_value=500).map(lambda n: {f"k{i}": i for i in range(n)}),
)
nested_values = st.builds(_nested, st.sampled_from([20, 100, 400, 900]),
                          st.sampled_from(["list", "dict"]))


def _slots(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside an order (dict keys and list indexes)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield (*path, key)
            yield from _slots(inner, (*path, key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield (*path, i)
            yield from _slots(inner, (*path, i))


def _parent(order: Any, path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        order = order[step]
    return order


@st.composite
def mutated_orders(draw: st.DrawFn) -> dict[str, Any]:
    """A valid order with 1–3 mutations: a field removed, mistyped, made huge, given odd
    Unicode, or buried under deep nesting."""
    order: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = sorted(_slots(order), key=repr)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _parent(order, path)
        action = draw(st.sampled_from(["remove", "mistype", "huge", "unicode", "nest"]))
        if action == "remove":
            del parent[path[-1]]
        elif action == "mistype":
            parent[path[-1]] = draw(json_values)
        elif action == "huge":
            parent[path[-1]] = draw(huge_values)
        elif action == "unicode":
            parent[path[-1]] = draw(st.sampled_from(ODD_TEXT) | st.text(min_size=1, max_size=20))
        else:
            parent[path[-1]] = draw(nested_values)
    return order


identity_values = st.one_of(
    st.sampled_from([101, "101", " 7 ", 7.0, 0, -1, True, None, "", " ", "A-1", 2**63,
                     2**64, 10**30, "1e3", 1.5, math.nan, math.inf, [101], {"id": 101},
                     "x" * 300, "N\x00", "\ud800"]),
    json_values)

envelopes: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {"op": st.sampled_from(["upsert", "patch", "delete", " DELETE ", "Patch", "merge", "",
                            None, 1, [], {}])},
    optional={
        "order": st.sampled_from(BASES) | mutated_orders() | json_values,
        "integration_id": identity_values,
        "order_id": identity_values,
        "changes": json_values | st.sampled_from(BASES).map(
            lambda o: {"order_details": {"status": o["order_details"]["status"]}}),
        "version": st.sampled_from(ODD_TEXT) | json_values | st.just("2026-01-01T00:00:00Z"),
        "chagnes": json_values,
    })

garbage = st.one_of(json_values, mutated_orders(), envelopes, huge_values, nested_values)


# Inputs that break the pipeline today (found by this fuzzing); see the module docstring.
def _with(path: tuple[Any, ...], value: Any, order_id: str) -> dict[str, Any]:
    order = copy.deepcopy(BASES[0])
    _parent(order, path)[path[-1]] = value
    order["order_id"] = order_id
    return order


KNOWN_BAD: dict[str, Callable[[], Any]] = {
    # Each breaks a stage in any store (end to end: the chunk or batch never settles).
    "timestamp_overflows_utc": lambda: _with(
        ("order_details", "order_updated_at"), "0001-01-01T00:00:00+14:00", "KB-ts"),
    "version_overflows_utc": lambda: {"op": "delete", "integration_id": 101,
                                      "order_id": "KB-ver", "version": "9999-12-31T23:59:59-14:00"},
    "deep_nesting": lambda: _with(("order_details", "custom"), _nested(900, "list"), "KB-deep"),
    "numeric_string_over_4300_digits": lambda: _with(
        ("order_details", "order_items", 0, "quantity"), "9" * 5000, "KB-digits"),
    "integration_id_over_int64": lambda: {"op": "delete", "integration_id": 2**64,
                                          "order_id": "KB-int64"},
    "lone_surrogate": lambda: _with(("order_number",), "\ud800", "KB-surrogate"),
    "nan_in_free_form_object": lambda: _with(("shipping_details",), {"x": math.nan}, "KB-nan"),
}
# These break only on PostgreSQL (distributed mode): the state store's columns refuse them.
KNOWN_BAD_POSTGRES: dict[str, Callable[[], Any]] = {
    "order_id_over_255_chars": lambda: _with(("order_id",), "L" * 300, "L" * 300),
    "nul_in_order_id": lambda: _with(("order_id",), "KB-\x00", "KB-\x00"),
}
ORDER_ID_MAX: int = getattr(outbox.c.order_id.type, "length", None) or 255  # VARCHAR(255)
INT64_MAX = 2**63 - 1  # BIGINT columns


# -- (a) function level --------------------------------------------------------------------------

def _storable(value: Any) -> None:
    """What the store writes as JSON text must be UTF-8 and NUL-free (PostgreSQL text)."""
    text = dumps(value)
    text.encode("utf-8")
    assert "\x00" not in text, "PostgreSQL text cannot hold NUL"


def _key_fits(key: tuple[Any, Any] | None) -> None:
    if key is None:
        return
    integration_id, order_id = key
    assert isinstance(integration_id, int) and 1 <= integration_id <= INT64_MAX, key
    assert isinstance(order_id, str) and 0 < len(order_id) <= ORDER_ID_MAX, key
    assert "\x00" not in order_id


def check_record(record: Any) -> None:
    """A record is rejected with a reason (and the dead letter fits the store), or becomes an
    Operation that survives the chunk's message round trip; the pre-flight then rejects it with
    a reason or accepts it, and an accepted operation fits the store and can be sent as JSON."""
    try:
        op = parse_record(record, now=NOW)
    except RecordRejected as exc:
        _check_rejection(exc, record)
        return
    message = op.to_message()
    _storable(message)
    # What the chunk stores (compared as JSON text: NaN != NaN).
    assert dumps(Operation.from_message(loads(dumps(message))).to_message()) == dumps(message)
    try:
        assert validate_operation(op) is op
    except RecordRejected as exc:
        _check_rejection(exc, record)
        return
    _key_fits(op.key)
    json.dumps(op.payload, allow_nan=False)  # requests' encoding: NaN/Infinity cannot be sent


def _check_rejection(exc: RecordRejected, record: Any) -> None:
    assert isinstance(exc.reason, str) and exc.reason.strip(), "a rejection needs a reason"
    assert isinstance(exc.errors, list)
    _storable(record)  # the dead letter keeps the record
    _key_fits(exc.key)  # … and its key in typed columns


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(garbage)
def test_parse_and_validate_never_raise(record: Any) -> None:
    check_record(record)


@pytest.mark.parametrize("name", sorted(KNOWN_BAD) + sorted(KNOWN_BAD_POSTGRES))
def test_known_bad_records_are_rejected_or_sendable(name: str) -> None:
    check_record({**KNOWN_BAD, **KNOWN_BAD_POSTGRES}[name]())


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'state.db'}")
    yield s
    s.close()


def _fresh_valid(rng: random.Random) -> dict[str, Any]:
    order = copy.deepcopy(rng.choice(BASES))
    order["order_id"] = f"V-{uuid.uuid4().hex[:12]}"
    return order


def _key(order: dict[str, Any]) -> tuple[int, str]:
    return parse_record(order, now=NOW).key


def _pending_refs(store: Store, sid: str) -> tuple[int, set[tuple[int, str]]]:
    """References of submission `sid` held by outbox rows, and the keys of those rows."""
    count, keys = 0, set()
    with store.engine.connect() as conn:
        for row in conn.execute(select(outbox.c.integration_id, outbox.c.order_id,
                                       outbox.c.refs)):
            mine = sum(1 for ref_sid, _ in loads(row.refs) if ref_sid == sid)
            if mine:
                count += mine
                keys.add((row.integration_id, row.order_id))
    return count, keys


def run_chunk(store: Store, records: list[Any]) -> None:
    """Stage one chunk, run the three stages, check that every record is accounted for."""
    sid = store.open_submission()
    chunk_id = store.stage_chunk(sid, records)
    store.close_submission(sid)
    rejected_normalize = ingest.normalize_chunk(store, chunk_id, now=NOW)
    rejected_validate = ingest.validate_chunk(store, chunk_id)
    tally = ingest.batch_chunk(store, chunk_id)
    assert store.read_chunk(chunk_id) is None, "the chunk must have moved on to the outbox"
    assert rejected_normalize + rejected_validate + sum(tally.values()) == len(records)

    row = store.submission(sid)
    letters = store.dead_letters(submission_id=sid)
    assert len(letters) == row["dead_lettered"] == \
        rejected_normalize + rejected_validate + tally.get("dead", 0)
    for letter in letters:
        assert letter.reason.strip(), f"dead letter without a reason: {letter}"
    held, keys = _pending_refs(store, sid)
    settled = sum(row[name] for name in TERMINAL)
    assert row["records"] == len(records) == settled + held, (row, held)
    # What reached the outbox passes the pre-flight.
    with store.engine.connect() as conn:
        for r in conn.execute(select(outbox.c.kind, outbox.c.integration_id, outbox.c.order_id,
                                     outbox.c.payload, outbox.c.version)):
            if (r.integration_id, r.order_id) in keys and r.kind == "upsert":
                op = Operation("upsert", (r.integration_id, r.order_id),
                               datetime.fromisoformat(r.version), loads(r.payload))
                validate_operation(op)


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(garbage, min_size=1, max_size=8), st.integers(min_value=0, max_value=4),
       st.randoms(use_true_random=False))
def test_chunk_stages_account_for_every_record(store: Store, junk: list[Any], valid: int,
                                               rng: random.Random) -> None:
    records = junk + [_fresh_valid(rng) for _ in range(valid)]
    fresh = records[len(junk):]
    valid_keys = {_key(r) for r in fresh}
    rng.shuffle(records)
    run_chunk(store, records)
    # A valid order is never dead-lettered because of its neighbours in the chunk.
    dead = {(d.integration_id, d.order_id) for d in store.dead_letters()}
    assert not valid_keys & dead


@pytest.mark.parametrize("name", sorted(KNOWN_BAD))
def test_known_bad_inputs_end_as_dead_letters(store: Store, name: str) -> None:
    """Each input the fuzzing found to break a stage, alone in a chunk with a valid order."""
    run_chunk(store, [KNOWN_BAD[name](), _fresh_valid(random.Random(0))])


# -- (b) end to end ------------------------------------------------------------------------------

def gathered(strategy: st.SearchStrategy[Any], examples: int) -> list[Any]:
    """`examples` values drawn by hypothesis (generation only, no shrinking, no database)."""
    out: list[Any] = []

    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(value: Any) -> None:
        out.append(value)

    collect()
    return out


def preflight_rejects(record: Any) -> bool:
    """True when parse_record or validate_operation rejects the record (then the pipeline must
    dead-letter it without an API request). Anything else it raises counts as a rejection too:
    the pipeline must still dead-letter it, not lose it."""
    try:
        validate_operation(parse_record(record, now=datetime.now(UTC)))
    except Exception:  # RecordRejected, or one of the bugs KNOWN_BAD lists
        return True
    return False


@pytest.mark.slow
def test_end_to_end_garbage_and_valid_orders(tmp_path: Path) -> None:
    rng = random.Random(20261)
    junk: list[Any] = []
    for value in gathered(garbage, 600):
        try:
            line = json.dumps(value)
        except (ValueError, RecursionError):  # not representable as a JSON line at all
            continue
        if preflight_rejects(json.loads(line)):
            junk.append(value)
        if len(junk) == 250:
            break
    junk += [KNOWN_BAD[name]() for name in sorted(KNOWN_BAD)]
    valid = [_fresh_valid(rng) for _ in range(100)]
    records = junk + valid
    rng.shuffle(records)
    path = tmp_path / "garbage.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")

    with emulator("--no-rate-limit") as url:
        env = base_env(url, tmp_path)
        done = subprocess.run([ORDERSYNC, "sync", "--json", "--timeout", "60", str(path)],
                              env=env, capture_output=True, text=True, timeout=180, check=False)
    where = f"input kept in {path}"
    assert "Traceback" not in done.stderr, f"{where}\n{done.stderr[-3000:]}"
    assert done.returncode in (0, 1), f"exit {done.returncode} ({where}): {done.stderr[-3000:]}"
    summary = json.loads(done.stdout)
    outcomes = sum(summary[k] for k in ("upserted", "patched", "deleted", "unchanged",
                                        "superseded", "dead_lettered"))
    assert summary["records"] == len(records) == outcomes
    assert summary["dead_lettered"] == len(junk)
    assert all(d["reason"].strip() for d in summary["dead_letters"])
    assert summary["confirmed"] == summary["upserted"] == len(valid)
    dead_keys = {(d["integration_id"], d["order_id"]) for d in summary["dead_letters"]}
    assert not dead_keys & {_key(v) for v in valid}
