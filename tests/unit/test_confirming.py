"""How confirm looks for a batch: the lookups planned for a batch, as a table."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from pipeline.confirming import PAGE_SIZE, is_current, plan_lookups, position_cursor
from pipeline.outbox_store import OutboxRow


def row(n: int, sendcloud_id: int | None, integration: int = 101,
        updated: str | None = "2026-12-01T10:00:00+00:00") -> OutboxRow:
    details: dict[str, Any] = {"integration": {"id": integration},
                               "order_created_at": "2026-11-30T09:00:00+00:00"}
    if updated:
        details["order_updated_at"] = updated
    return OutboxRow(n, (integration, f"A-{n}"), "upsert", "v", {"order_details": details}, [],
                     0, 0, sendcloud_id, False, "posted")


def test_one_or_two_orders_are_looked_up_by_order_id() -> None:
    lookups = plan_lookups([row(1, 10), row(2, 11, integration=102)])
    assert [lk.filters for lk in lookups] == [{"integration": 101, "order_id": "A-1"},
                                             {"integration": 102, "order_id": "A-2"}]


def test_new_orders_with_close_ids_take_one_page_from_the_lowest_id() -> None:
    rows = [row(n, 500 + n, integration=101 + n % 3) for n in range(100)]
    (lookup,) = plan_lookups(rows)
    assert lookup.filters["sort"] == "pk"
    assert lookup.filters["integration"] == [101, 102, 103]
    assert lookup.filters["page_size"] == 100
    assert base64.b64decode(lookup.filters["cursor"]) == b"p=499"
    assert lookup.last_id == 599 and len(lookup.wanted) == 100


@pytest.mark.parametrize(("ids", "pages"), [
    ([1, 2, 3], 1),
    ([1, PAGE_SIZE, PAGE_SIZE + 1], 2),
    ([1, 1000, 2000, 3000], 4),
])
def test_ids_far_apart_take_one_page_per_cluster(ids: list[int], pages: int) -> None:
    lookups = plan_lookups([row(n, i) for n, i in enumerate(ids)])
    assert len(lookups) == pages
    assert all(lk.filters["page_size"] <= PAGE_SIZE for lk in lookups)


def test_scattered_or_unknown_ids_fall_back_to_a_scan_from_a_date_floor() -> None:
    scattered = [row(n, n * 1000) for n in range(10)]
    (scan,) = plan_lookups(scattered)
    assert scan.filters["order_updated_at_min"] == "2026-12-01"
    assert scan.filters["sort"].startswith("-order_updated_at")
    unknown = plan_lookups([row(n, None, updated=None) for n in range(5)])
    assert unknown[0].filters["order_created_at_min"] == "2026-11-30"


@pytest.mark.parametrize(("shown", "sent", "current"), [
    ("2026-12-01T10:00:00Z", "2026-12-01T10:00:00+00:00", True),
    ("2026-12-01T11:00:00.000000Z", "2026-12-01T10:00:00+00:00", True),
    ("2026-12-01T09:00:00Z", "2026-12-01T10:00:00+00:00", False),
    (None, "2026-12-01T10:00:00+00:00", False),
])
def test_is_current(shown: str | None, sent: str, current: bool) -> None:
    visible = {"order_details": {"order_updated_at": shown}} if shown else {"order_details": {}}
    assert is_current(visible, {"order_details": {"order_updated_at": sent}}) is current


def test_position_cursor_is_the_documented_encoding() -> None:
    assert position_cursor(300) == base64.b64encode(b"p=300").decode()
