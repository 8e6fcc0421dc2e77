"""JSON for the state store: orjson for what the pipeline made, the standard library for what
producers handed over.

orjson is several times faster than `json` (decoding stored payloads alone was a sixth of a
worker's CPU), but it is lossy on input no API could take: it writes NaN as null and reads an
integer past 64 bits as a float. So records as producers sent them (staged raw chunks, dead
letters) are written and read with `json`, byte for byte (`exact_dumps`, `exact_loads`).
Everything made after normalize, which rejects NaN, infinities and lone surrogates, goes through
`dumps`/`loads`. A value orjson refuses to write (an integer past 64 bits, a key that is not a
string) is written by `json` behind one leading space, JSON-legal whitespace that tells `loads`
to read it back with `json` too: nothing is ever rounded.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_EXACT_MARK = " "


def dumps(value: Any) -> str:
    """Compact JSON of data the pipeline made (normalized, validated: no NaN)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _EXACT_MARK + exact_dumps(value)


def loads(text: str | bytes) -> Any:
    """The inverse of `dumps` (and exact for anything `exact_dumps` wrote, too)."""
    if isinstance(text, str) and text.startswith(_EXACT_MARK):
        return json.loads(text)
    return orjson.loads(text)


def exact_dumps(value: Any) -> str:
    """Compact, ASCII-only JSON that keeps whatever a producer sent (NaN, huge integers)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True)


def exact_loads(text: str | bytes) -> Any:
    return json.loads(text)


def canonical(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: equal data, equal bytes (for hashing)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8")
