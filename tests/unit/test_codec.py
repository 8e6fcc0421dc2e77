"""pipeline.codec: orjson where it is exact, the standard library where it would not be."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.codec import canonical, dumps, exact_dumps, exact_loads, loads

clean_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


@given(clean_json)
def test_dumps_round_trips_what_the_pipeline_makes(value: Any) -> None:
    assert loads(dumps(value)) == value


@given(clean_json)
def test_canonical_is_the_sorted_compact_utf8_json(value: Any) -> None:
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert json.loads(canonical(value)) == json.loads(expected)


@pytest.mark.parametrize("value", [
    {"n": 2**70},  # past orjson's 64 bits: written by json, read back exactly
    [-(2**64) - 1, 10**30],
    {1: "not a string key"},
    {"lone": "\ud800"},  # not UTF-8: orjson refuses it
])
def test_what_orjson_refuses_falls_back_exactly(value: Any) -> None:
    text = dumps(value)
    assert text.startswith(" ")
    assert loads(text) == json.loads(json.dumps(value))


@pytest.mark.parametrize("value", [
    {"weight": float("nan")}, {"n": 2**70}, {"s": "\ud800"}, [float("inf"), -0.0],
])
def test_exact_functions_keep_producer_records_as_sent(value: Any) -> None:
    back = exact_loads(exact_dumps(value))
    assert exact_dumps(back) == exact_dumps(value)
    assert exact_dumps(value).isascii()


def test_orjson_would_have_rounded_a_huge_integer() -> None:
    """Why raw records never go through `loads`: orjson reads 10**30 as a float."""
    assert loads("[1000000000000000000000000000000]") != [10**30]
    assert exact_loads("[1000000000000000000000000000000]") == [10**30]
    assert math.isclose(loads("[1e3]")[0], 1000.0)
