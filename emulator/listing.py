"""`GET /orders`: filters, sorting and cursor (keyset) pagination.

Pages are cut on the sort key plus the pk, never on offsets, so an order that existed when a
client started paging is neither skipped nor repeated while others insert. The cursor follows
the spec's (DRF's) format — base64 of `r=<reverse>&p=<position>`, e.g. `r=1&p=300` — where the
position is the pk for pk-only sorts and a JSON list of the sort values otherwise.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

from emulator.errors import ApiError, ErrorObject, error, invalid_cursor
from emulator.state import Record, Store, Version

SORT_FIELDS = ("integration", "order_number", "order_created_at", "order_updated_at", "pk")
DEFAULT_SORT: tuple[tuple[str, bool], ...] = (("pk", True),)
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 200
_NONE_LOW = -(2**62)  # a missing date sorts before every real one
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Comparable = Any  # a tuple of ints/strs/int-tuples, compared element-wise
Item = tuple[Comparable, int, Version]


@dataclass
class ListQuery:
    integrations: frozenset[int]
    order_number_lc: str | None = None
    order_id_lc: str | None = None
    status_lc: str | None = None
    created_lo: int | None = None  # UTC microseconds, inclusive
    created_hi: int | None = None  # exclusive
    updated_lo: int | None = None
    updated_hi: int | None = None
    sort: tuple[tuple[str, bool], ...] = DEFAULT_SORT  # (field, descending), pk last
    page_size: int = DEFAULT_PAGE_SIZE
    reverse: bool = False
    position: list[Any] | None = None


def parse_query(params: Mapping[str, str], owned: frozenset[int]) -> ListQuery:
    errors: list[ErrorObject] = []
    query = ListQuery(integrations=owned)

    raw = params.get("integration", "").strip()
    if raw:
        chosen: set[int] = set()
        for part in raw.split(","):
            part = part.strip()
            if not part:
                continue
            value = int(part) if part.isdecimal() and part.isascii() else None
            if value is None or value not in owned:
                errors.append(error(
                    400, "invalid_choice",
                    f"Select a valid choice. {part} is not one of the available choices.",
                    title="Invalid Choice", parameter="integration"))
            else:
                chosen.add(value)
        if chosen:
            query.integrations = frozenset(chosen)

    for name, attr in (("order_number", "order_number_lc"), ("order_id", "order_id_lc"),
                       ("status", "status_lc")):
        if params.get(name):
            setattr(query, attr, params[name].lower())

    for prefix in ("order_created_at", "order_updated_at"):
        lo: int | None = None
        hi: int | None = None
        for suffix, lower, upper in (("", True, True), ("_min", True, False),
                                     ("_max", False, True)):
            name = prefix + suffix
            text = params.get(name)
            if text is None or text == "":
                continue
            day = _parse_date(text)
            if day is None:
                errors.append(error(400, "invalid", "Enter a valid date.", title="Invalid",
                                    parameter=name))
                continue
            start = _micros(day)
            end = _micros(day + timedelta(days=1))
            if lower:
                lo = start if lo is None else max(lo, start)
            if upper:
                hi = end if hi is None else min(hi, end)
        if prefix == "order_created_at":
            query.created_lo, query.created_hi = lo, hi
        else:
            query.updated_lo, query.updated_hi = lo, hi

    if errors:
        raise ApiError(400, errors)

    query.sort = parse_sort(params.get("sort", ""))
    query.page_size = parse_page_size(params.get("page_size"))
    cursor = params.get("cursor")
    if cursor is not None:
        query.reverse, query.position = decode_cursor(cursor, query.sort)
    return query


def _parse_date(text: str) -> date | None:
    if not _DATE.match(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _micros(day: date) -> int:
    delta = datetime(day.year, day.month, day.day, tzinfo=UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000


def parse_sort(text: str) -> tuple[tuple[str, bool], ...]:
    """Spec: comma list; conflicting repeats ignored; any unsupported value → default `-pk`."""
    fields: list[tuple[str, bool]] = []
    seen: set[str] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        desc = part.startswith("-")
        name = part[1:] if desc else part
        if name not in SORT_FIELDS:
            return DEFAULT_SORT
        if name in seen:
            continue
        seen.add(name)
        fields.append((name, desc))
    if not fields:
        return DEFAULT_SORT
    if "pk" not in seen:
        fields.append(("pk", True))  # tie-breaker: keys must be unique for keyset paging
    return tuple(fields)


def parse_page_size(text: str | None) -> int:
    """DRF's rule: a positive integer, capped at the maximum; anything else → the default."""
    if text is None:
        return DEFAULT_PAGE_SIZE
    text = text.strip()
    if not (text.isdecimal() and text.isascii()) or int(text) < 1:
        return DEFAULT_PAGE_SIZE
    return min(int(text), MAX_PAGE_SIZE)


# --- cursors -------------------------------------------------------------------------------


def _pk_only(sort: tuple[tuple[str, bool], ...]) -> bool:
    return len(sort) == 1


def encode_cursor(reverse: bool, position: list[Any] | None, sort: tuple[tuple[str, bool], ...]
                  ) -> str:
    params: dict[str, str] = {}
    if reverse:
        params["r"] = "1"
    if position is not None:
        params["p"] = (str(position[0]) if _pk_only(sort)
                       else json.dumps(position, ensure_ascii=False, separators=(",", ":")))
    return base64.b64encode(urlencode(params).encode()).decode("ascii")


def decode_cursor(cursor: str, sort: tuple[tuple[str, bool], ...]) -> tuple[bool, list[Any] | None]:
    try:
        text = base64.b64decode(cursor.encode("ascii"), validate=True).decode("utf-8")
        pairs = dict(parse_qsl(text, keep_blank_values=True, strict_parsing=True))
    except (ValueError, UnicodeError, binascii.Error):
        raise invalid_cursor() from None
    if set(pairs) - {"o", "r", "p"}:
        raise invalid_cursor()
    if "o" in pairs and not pairs["o"].isdecimal():
        raise invalid_cursor()
    r = pairs.get("r", "0")
    if r not in ("0", "1"):
        raise invalid_cursor()
    if "p" not in pairs:
        return r == "1", None
    raw = pairs["p"]
    position: Any
    if _pk_only(sort):
        if not (raw.isdecimal() and raw.isascii()):
            raise invalid_cursor()
        position = [int(raw)]
    else:
        try:
            position = json.loads(raw)
        except (ValueError, RecursionError):
            raise invalid_cursor() from None
        if not isinstance(position, list) or len(position) != len(sort):
            raise invalid_cursor()
        for (name, _), value in zip(sort, position, strict=True):
            if not _position_value_ok(name, value):
                raise invalid_cursor()
    return r == "1", position


def _position_value_ok(name: str, value: Any) -> bool:
    if name == "order_number":
        return type(value) is str
    if name in ("order_created_at", "order_updated_at"):
        return value is None or type(value) is int
    return type(value) is int


# --- keys ----------------------------------------------------------------------------------


def _raw(name: str, record: Record, version: Version) -> Any:
    if name == "pk":
        return record.pk
    if name == "integration":
        return record.integration_id
    if name == "order_number":
        return version.order_number
    if name == "order_created_at":
        return version.created_us
    return version.updated_us


def _comparable(name: str, desc: bool, value: Any) -> Any:
    if name == "order_number":
        if not desc:
            return value
        # Descending strings: negate code points; the trailing 1 puts "ab" before "a".
        return (*(-ord(c) for c in value), 1)
    number = _NONE_LOW if value is None else value
    return -number if desc else number


def _key_fn(sort: tuple[tuple[str, bool], ...]) -> Callable[[Record, Version], Comparable]:
    if _pk_only(sort):
        desc = sort[0][1]
        return (lambda r, v: (-r.pk,)) if desc else (lambda r, v: (r.pk,))
    return lambda r, v: tuple(_comparable(n, d, _raw(n, r, v)) for n, d in sort)


def _position_key(sort: tuple[tuple[str, bool], ...], position: list[Any]) -> Comparable:
    return tuple(_comparable(n, d, value) for (n, d), value in zip(sort, position, strict=True))


def _raw_position(sort: tuple[tuple[str, bool], ...], record: Record, version: Version
                  ) -> list[Any]:
    return [_raw(n, record, version) for n, _ in sort]


# --- the page ------------------------------------------------------------------------------


@dataclass
class Page:
    items: list[tuple[Record, Version]]
    prev: str | None  # cursor values; "" = the first page (no cursor)
    next: str | None


def _matches(q: ListQuery, record: Record, now: float) -> Version | None:
    if record.integration_id not in q.integrations:
        return None
    v = record.visible(now)
    if v is None:
        return None
    if q.order_id_lc is not None and v.order_id_lc != q.order_id_lc:
        return None
    if q.order_number_lc is not None and v.order_number_lc != q.order_number_lc:
        return None
    if q.status_lc is not None and v.status_lc != q.status_lc:
        return None
    if q.created_lo is not None or q.created_hi is not None:
        c = v.created_us
        if c is None or (q.created_lo is not None and c < q.created_lo) or (
                q.created_hi is not None and c >= q.created_hi):
            return None
    if q.updated_lo is not None or q.updated_hi is not None:
        u = v.updated_us
        if u is None or (q.updated_lo is not None and u < q.updated_lo) or (
                q.updated_hi is not None and u >= q.updated_hi):
            return None
    return v


def _candidates(store: Store, q: ListQuery) -> Iterator[Record]:
    if q.order_id_lc is not None:
        pks = sorted(store.by_order_id.get(q.order_id_lc, ()))
        for pk in pks:
            yield store.records[pk]
        return
    yield from store.records.values()


def list_page(store: Store, q: ListQuery, now: float) -> Page:
    if _pk_only(q.sort) and q.order_id_lc is None:
        return _pk_page(store, q, now)
    key_fn = _key_fn(q.sort)
    pos = None if q.position is None else _position_key(q.sort, q.position)
    k = q.page_size
    beyond = False  # a match exists on the far side of the cursor
    items: list[Item] = []
    for record in _candidates(store, q):
        v = _matches(q, record, now)
        if v is None:
            continue
        key = key_fn(record, v)
        if pos is not None and ((key <= pos) if not q.reverse else (key >= pos)):
            beyond = True
            continue
        items.append((key, record.pk, v))
    pick = heapq.nlargest if q.reverse else heapq.nsmallest
    chosen = pick(k + 1, items, key=lambda item: item[0])
    more = len(chosen) > k
    chosen = chosen[:k]
    if q.reverse:
        chosen.reverse()
    page = [(store.records[pk], v) for _, pk, v in chosen]
    return _links(q, page, more, beyond)


def _pk_page(store: Store, q: ListQuery, now: float) -> Page:
    """Default `-pk` (or `pk`) order: walk the pk list from the cursor, stop when full."""
    pks = store.pk_list
    desc = q.sort[0][1]
    forward_desc = desc != q.reverse  # walking toward smaller pks?
    start_pk = None if q.position is None else q.position[0]
    if forward_desc:
        start = len(pks) - 1 if start_pk is None else bisect_left(pks, start_pk) - 1
        walk = range(start, -1, -1)
        back = range(start + 1, len(pks))
    else:
        start = 0 if start_pk is None else bisect_right(pks, start_pk)
        walk = range(start, len(pks))
        back = range(start - 1, -1, -1)
    k = q.page_size
    found: list[tuple[Record, Version]] = []
    for i in walk:
        record = store.records.get(pks[i])
        if record is None:
            continue
        v = _matches(q, record, now)
        if v is not None:
            found.append((record, v))
            if len(found) > k:
                break
    more = len(found) > k
    found = found[:k]
    beyond = False
    if start_pk is not None:
        for i in back:
            record = store.records.get(pks[i])
            if record is not None and _matches(q, record, now) is not None:
                beyond = True
                break
    if q.reverse:
        found.reverse()
    return _links(q, found, more, beyond)


def _links(q: ListQuery, page: list[tuple[Record, Version]], more: bool, beyond: bool) -> Page:
    # Forward page: `more` = a next page, `beyond` = a previous one; reversed page: swapped.
    has_next, has_prev = (beyond, more) if q.reverse else (more, beyond)
    prev = nxt = None
    if page:
        if has_prev:
            prev = encode_cursor(True, _raw_position(q.sort, *page[0]), q.sort)
        if has_next:
            nxt = encode_cursor(False, _raw_position(q.sort, *page[-1]), q.sort)
    else:
        # An empty page past either end (its neighbours were deleted, or the cursor is made
        # up): nothing lies beyond the cursor, so the neighbouring page is the last (or the
        # first) page of the whole listing.
        if has_prev:
            prev = encode_cursor(True, None, q.sort)
        if has_next:
            nxt = ""
    return Page(page, prev, nxt)
