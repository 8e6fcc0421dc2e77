"""Producer records → operations on one order (CONTRACT §1).

A record is one of:
- a Sendcloud v3 order object                              → upsert
- `{"op": "upsert", "order": {…}}`                         → upsert
- `{"op": "patch", "integration_id", "order_id", "changes", ["version"]}`
- `{"op": "delete", "integration_id", "order_id", ["version"]}`

`parse_record` checks the shape, reads the identity and the version, and normalizes the payload;
`validate_operation` runs the pre-flight schemas. They are separate steps (and Celery tasks) so a
record that cannot even be read is told apart from one that reads fine but breaks the spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal, get_args

from pipeline.codec import dumps, loads
from pipeline.errors import FieldError, RecordRejected
from pipeline.normalize import (
    Unreadable,
    normalize_changes,
    normalize_order,
    parse_timestamp,
    summarize,
    to_integer,
)
from pipeline.schemas import validate_changes, validate_order

OrderKey = tuple[int, str]  # (integration_id, order_id)
OpKind = Literal["upsert", "patch", "delete"]

_KINDS: tuple[str, ...] = get_args(OpKind)
_INTEGRATION_POINTER = "/order_details/integration/id"
_ORDER_ID_POINTER = "/order_id"

# The keys each record kind may carry. A typo ("chagnes") must not silently turn a patch into a
# no-op, so anything else is rejected.
_ENVELOPE: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # kind: (required, allowed)
    "upsert": (frozenset({"op", "order"}), frozenset({"op", "order"})),
    "patch": (frozenset({"op", "integration_id", "order_id", "changes"}),
              frozenset({"op", "integration_id", "order_id", "changes", "version"})),
    "delete": (frozenset({"op", "integration_id", "order_id"}),
               frozenset({"op", "integration_id", "order_id", "version"})),
}


@dataclass(frozen=True)
class Operation:
    """One thing to do to one order, at one version. The payload is canonical (normalized)."""

    kind: OpKind
    key: OrderKey
    version: datetime  # timezone-aware, UTC
    # upsert: canonical v3 order; patch: canonical partial-update body; delete: {}
    payload: dict[str, Any] = field(hash=False)
    # False when a patch/delete had no "version" and got its arrival time instead.
    explicit_version: bool = True

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown operation kind {self.kind!r}")
        if self.version.utcoffset() is None:
            raise ValueError("Operation.version must be timezone-aware")
        # One representation per instant, so messages and comparisons are stable.
        object.__setattr__(self, "version", self.version.astimezone(UTC))

    def to_message(self, *, copy: bool = True) -> dict[str, Any]:
        """A JSON-serialisable dict (for brokers and the outbox). `copy=False` shares the
        payload: for a caller that serialises the message at once (the ingest stages)."""
        return {
            "kind": self.kind,
            "integration_id": self.key[0],
            "order_id": self.key[1],
            "version": self.version.isoformat(),
            "payload": _copy(self.payload) if copy else self.payload,
            "explicit_version": self.explicit_version,
        }

    @classmethod
    def from_message(cls, data: Mapping[str, Any], *, copy: bool = True) -> Operation:
        """The exact inverse of `to_message`. Raises ValueError for anything else. `copy=False`
        takes the message's payload as it is: for a message nothing else holds."""
        try:
            kind, integration_id, order_id = data["kind"], data["integration_id"], data["order_id"]
            version = datetime.fromisoformat(data["version"])
            payload, explicit = data["payload"], data["explicit_version"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an operation message: {exc!r}") from None
        if kind not in _KINDS or not isinstance(payload, Mapping) or not isinstance(explicit, bool):
            raise ValueError("not an operation message: bad kind, payload or explicit_version")
        if isinstance(integration_id, bool) or not isinstance(integration_id, int) \
                or not isinstance(order_id, str):
            raise ValueError("not an operation message: bad key")
        return cls(kind, (integration_id, order_id), version,
                   _copy(payload) if copy else dict(payload), explicit)


def _copy(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy through orjson, several times cheaper than walking it in Python; payloads of
    operations are JSON already (parse_record rejects NaN and the like first)."""
    copied: dict[str, Any] = loads(dumps(payload))
    return copied


# --- Identity and version of an order ------------------------------------------------------------


def order_key(order: Mapping[str, Any]) -> OrderKey:
    """(order_details.integration.id, order_id). Raises RecordRejected naming what is missing."""
    key, errors = _read_key(order)
    if key is None:
        raise RecordRejected(summarize("order has no usable identity", errors), errors)
    return key


def order_version(order: Mapping[str, Any]) -> datetime:
    """order_details.order_updated_at, else order_created_at, as an aware UTC datetime.
    Naive timestamps are read as UTC: call it on normalized orders."""
    version, errors = _read_version(order)
    if version is None:
        raise RecordRejected(summarize("order has no usable version", errors), errors)
    return version


def _details(order: Mapping[str, Any]) -> Mapping[str, Any]:
    details = order.get("order_details")
    return details if isinstance(details, Mapping) else {}


def _read_key(order: Mapping[str, Any]) -> tuple[OrderKey | None, list[FieldError]]:
    integration = _details(order).get("integration")
    raw_id = integration.get("id") if isinstance(integration, Mapping) else None
    integration_id, errors = _integration_id(raw_id, _INTEGRATION_POINTER)
    order_id, more = _order_id(order.get("order_id"), _ORDER_ID_POINTER)
    errors += more
    if integration_id is None or order_id is None:
        return None, errors
    return (integration_id, order_id), errors


def _integration_id(value: Any, pointer: str) -> tuple[int | None, list[FieldError]]:
    if value is None:
        return None, [FieldError(pointer, "Field required.")]
    try:
        number = to_integer(value)
    except Unreadable as exc:
        return None, [FieldError(pointer, str(exc))]
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number < 2**63:
        return None, [FieldError(pointer, f"{value!r} is not an integration id (an integer ≥ 1)")]
    return number, []


def _order_id(value: Any, pointer: str) -> tuple[str | None, list[FieldError]]:
    if value is None:
        return None, [FieldError(pointer, "Field required.")]
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        return None, [FieldError(pointer, f"{value!r} is not an order id (a non-empty string)")]
    if len(value.strip()) > 255 or any(ord(c) < 32 for c in value):
        return None, [FieldError(pointer, "an order id has at most 255 characters and no "
                                          "control characters")]
    return value.strip(), []


def _read_version(order: Mapping[str, Any]) -> tuple[datetime | None, list[FieldError]]:
    details = _details(order)
    name = "order_updated_at" if details.get("order_updated_at") is not None \
        else "order_created_at"
    pointer = f"/order_details/{name}"
    if details.get(name) is None:
        return None, [FieldError(pointer, "Field required.")]
    try:
        return parse_timestamp(details[name]).astimezone(UTC), []
    except Unreadable as exc:
        return None, [FieldError(pointer, str(exc))]


# --- Records → operations ------------------------------------------------------------------------


def parse_record(record: Any, *, now: datetime, source_tz: tzinfo = UTC) -> Operation:
    """A producer record → a normalized Operation (no schema validation; see validate_operation).

    `now` is the arrival time, used as the version of a patch/delete without "version" (then
    `explicit_version` is False). Raises RecordRejected, with `.key` set when the identity could
    be read, for a malformed record or a value that cannot be read without guessing."""
    if now.utcoffset() is None:
        raise ValueError("parse_record(now=…) must be timezone-aware")
    if not isinstance(record, Mapping):
        detail = f"a record must be a JSON object, not {type(record).__name__}"
        raise RecordRejected(detail, [FieldError("", detail)])
    problem = _unsendable(record)
    if problem is not None:
        raise RecordRejected(f"{problem[0] or '/'}: {problem[1]}", [FieldError(*problem)])
    if "op" not in record:  # a bare v3 order
        return _upsert(record, source_tz)
    kind = _kind(record["op"])
    _check_envelope(record, kind)
    if kind == "upsert":
        return _upsert(_object(record["order"], "order"), source_tz)
    return _patch_or_delete(record, kind, now, source_tz)


def _kind(op: Any) -> OpKind:
    text = op.strip().lower() if isinstance(op, str) else op
    if text == "upsert":
        return "upsert"
    if text == "patch":
        return "patch"
    if text == "delete":
        return "delete"
    detail = f"op {op!r} is not one of 'upsert', 'patch', 'delete'"
    raise RecordRejected(detail, [FieldError("", detail)])


def _check_envelope(record: Mapping[str, Any], kind: str) -> None:
    required, allowed = _ENVELOPE[kind]
    problems = [f"missing {name!r}" for name in sorted(required - record.keys())]
    problems += [f"unexpected key {name!r}" for name in sorted(set(map(str, record)) - allowed)]
    if problems:
        detail = f"{kind} record: {', '.join(problems)} (allowed: {', '.join(sorted(allowed))})"
        raise RecordRejected(detail, [FieldError("", detail)])


def _object(value: Any, name: str, key: OrderKey | None = None) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        detail = f"{name!r} must be a JSON object, not {type(value).__name__}"
        raise RecordRejected(detail, [FieldError("", detail)], key=key)
    return value


def _upsert(order: Mapping[str, Any], source_tz: tzinfo) -> Operation:
    try:
        canonical = normalize_order(order, source_tz=source_tz)
    except RecordRejected as exc:
        raise RecordRejected(exc.reason, exc.errors, key=_read_key(order)[0]) from None
    key, errors = _read_key(canonical)
    version, more = _read_version(canonical)
    errors += more
    if key is None or version is None:
        raise RecordRejected(summarize("order has no usable identity or version", errors),
                             errors, key=key)
    return Operation("upsert", key, version, canonical)


def _patch_or_delete(record: Mapping[str, Any], kind: OpKind, now: datetime,
                     source_tz: tzinfo) -> Operation:
    integration_id, errors = _integration_id(record["integration_id"], _INTEGRATION_POINTER)
    order_id, more = _order_id(record["order_id"], _ORDER_ID_POINTER)
    errors += more
    if integration_id is None or order_id is None:
        raise RecordRejected(summarize(f"{kind} record has no usable identity", errors), errors)
    key = (integration_id, order_id)
    version, explicit = _record_version(record, now, source_tz, key)
    payload: dict[str, Any] = {}
    if kind == "patch":
        payload = _changes(_object(record["changes"], "changes", key), key, source_tz)
    return Operation(kind, key, version, payload, explicit)


def _record_version(record: Mapping[str, Any], now: datetime, source_tz: tzinfo,
                    key: OrderKey) -> tuple[datetime, bool]:
    if record.get("version") is None:
        return now.astimezone(UTC), False
    try:
        return parse_timestamp(record["version"], source_tz=source_tz).astimezone(UTC), True
    except Unreadable as exc:
        detail = f"version: {exc}"
        raise RecordRejected(detail, [FieldError("", detail)], key=key) from None


def _changes(changes: Mapping[str, Any], key: OrderKey, source_tz: tzinfo) -> dict[str, Any]:
    try:
        canonical = normalize_changes(changes, source_tz=source_tz)
    except RecordRejected as exc:
        raise RecordRejected(exc.reason, exc.errors, key=key) from None
    errors = _identity_changes(canonical, key)
    if errors:
        raise RecordRejected(summarize("changes may not alter the order's identity", errors),
                             errors, key=key)
    return canonical


def _identity_changes(changes: Mapping[str, Any], key: OrderKey) -> list[FieldError]:
    """The API refuses a changed order_id; a changed integration would move the order to another
    key behind our back. Both may be repeated in `changes`, as long as they agree."""
    errors = []
    if "order_id" in changes and changes["order_id"] != key[1]:
        detail = f"Order id {key[1]} cannot be changed (to {changes['order_id']!r})"
        errors.append(FieldError(_ORDER_ID_POINTER, detail))
    integration = _details(changes).get("integration")
    if isinstance(integration, Mapping) and "id" in integration and integration["id"] != key[0]:
        errors.append(FieldError(_INTEGRATION_POINTER,
                                 f"Integration {key[0]} cannot be changed "
                                 f"(to {integration['id']!r})"))
    return errors


# --- Pre-flight ----------------------------------------------------------------------------------


def validate_operation(op: Operation) -> Operation:
    """The marshmallow pre-flight: `op` unchanged, or RecordRejected(reason, errors, key)."""
    if op.kind == "upsert":
        errors = validate_order(op.payload) or _key_mismatch(op)
        what = "order"
    elif op.kind == "patch":
        errors = validate_changes(op.payload) or _identity_changes(op.payload, op.key)
        what = "changes"
    else:
        errors = _key_problems(op.key)
        what = "delete"
    if errors:
        raise RecordRejected(summarize(f"{what} failed validation", errors), errors, key=op.key)
    return op


def _key_mismatch(op: Operation) -> list[FieldError]:
    """An upsert's key must be the one its payload names (guards hand-built Operations)."""
    key, errors = _read_key(op.payload)
    if key is not None and key != op.key:
        return [FieldError("", f"operation key {op.key} does not match the order's {key}")]
    return errors


def _key_problems(key: OrderKey) -> list[FieldError]:
    errors = _integration_id(key[0], _INTEGRATION_POINTER)[1]
    if not isinstance(key[1], str) or not key[1].strip():
        errors.append(FieldError(_ORDER_ID_POINTER, "Order id must be a non-empty string."))
    return errors


MAX_DEPTH = 64


def _unsendable(record: Any) -> tuple[str, str] | None:
    """(pointer, detail) of the first value no JSON API can take: nesting deeper than
    MAX_DEPTH, a string with a lone surrogate (not Unicode), NaN or an infinity. Iterative, so
    any depth is safe."""
    import math

    stack: list[tuple[Any, str, int]] = [(record, "", 0)]
    while stack:
        value, pointer, depth = stack.pop()
        if depth > MAX_DEPTH:
            return pointer, f"nested deeper than {MAX_DEPTH} levels"
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return pointer, "text with a lone surrogate is not valid Unicode"
        elif isinstance(value, float) and not math.isfinite(value):
            return pointer, f"{value!r} is not a finite number"
        elif isinstance(value, Mapping):
            for k, v in value.items():
                if isinstance(k, str):
                    try:
                        k.encode("utf-8")
                    except UnicodeEncodeError:
                        return pointer, "a key with a lone surrogate is not valid Unicode"
                stack.append((v, f"{pointer}/{k}", depth + 1))
        elif isinstance(value, list | tuple):
            stack.extend((v, f"{pointer}/{i}", depth + 1) for i, v in enumerate(value))
    return None
