"""Conflicts from real overlap: a request holds its orders for its whole handling time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from emulator.testing import emulator_in_thread
from tests.emulator.conftest import Api, make_order

CONFLICT = {"errors": [{
    "status": "400", "code": "invalid",
    "detail": "We are still processing a previous request. Please try again in a moment.",
    "source": {"pointer": "/data"}}]}
LATENCY = 0.4


@pytest.fixture(scope="module")
def slow_url() -> Iterator[str]:
    with emulator_in_thread("--no-rate-limit", "--latency", str(LATENCY)) as url:
        yield url


@pytest.fixture
def slow(slow_url: str) -> Api:
    client = Api(slow_url)
    client.reset()
    return client


def overlapped(first: Callable[[], requests.Response], second: Callable[[], requests.Response]
               ) -> tuple[requests.Response, requests.Response]:
    """Start `first`, then `second` while the first is still being handled."""
    box: dict[str, requests.Response] = {}
    thread = threading.Thread(target=lambda: box.setdefault("first", first()))
    thread.start()
    time.sleep(LATENCY / 3)
    box["second"] = second()
    thread.join()
    return box["first"], box["second"]


def test_overlapping_batches_on_one_order_conflict(slow: Api) -> None:
    a, b = overlapped(
        lambda: slow.post([make_order("A-1"), make_order("A-2")]),
        lambda: Api(slow.url).post([make_order("A-3"), make_order("A-1", order_number="LOSER")]),
    )
    assert a.status_code == 201
    assert b.status_code == 400
    assert b.json() == CONFLICT
    stored = {o["order_id"]: o["order"] for o in slow.stored()}
    assert set(stored) == {"A-1", "A-2"}  # nothing of the losing batch, not even A-3
    assert stored["A-1"]["order_number"] == "N-A-1"


def test_batches_on_different_orders_do_not_conflict(slow: Api) -> None:
    a, b = overlapped(lambda: slow.post([make_order("A-1")]),
                      lambda: Api(slow.url).post([make_order("A-2")]))
    assert (a.status_code, b.status_code) == (201, 201)


def test_same_order_id_in_another_integration_does_not_conflict(slow: Api) -> None:
    a, b = overlapped(lambda: slow.post([make_order("A-1", integration=101)]),
                      lambda: Api(slow.url).post([make_order("A-1", integration=102)]))
    assert (a.status_code, b.status_code) == (201, 201)


def test_patch_and_delete_hold_their_order_too(slow: Api) -> None:
    [pk] = slow.create(make_order("A-1"))
    other = Api(slow.url)
    a, b = overlapped(lambda: slow.patch(pk, {"order_number": "P"}),
                      lambda: other.post([make_order("A-1")]))
    assert (a.status_code, b.status_code) == (200, 400)
    a, b = overlapped(lambda: slow.post([make_order("A-1")]), lambda: other.delete(pk))
    assert (a.status_code, b.status_code) == (201, 400)
    assert b.json() == CONFLICT
    a, b = overlapped(lambda: slow.delete(pk), lambda: other.patch(pk, {"order_number": "Q"}))
    assert (a.status_code, b.status_code) == (204, 400)


def test_a_targeted_id_is_held_as_well(slow: Api) -> None:
    [pk] = slow.create(make_order("A-1"))
    a, b = overlapped(lambda: slow.patch(pk, {"order_number": "P"}),
                      lambda: Api(slow.url).post([make_order("A-1", id=str(pk))]))
    assert (a.status_code, b.status_code) == (200, 400)


def test_keys_are_released_after_the_answer(slow: Api) -> None:
    slow.create(make_order("A-1"))
    slow.create(make_order("A-1"))
    assert slow.post([make_order("A-1")]).status_code == 201


def test_conflict_status_409() -> None:
    with emulator_in_thread("--no-rate-limit", "--latency", str(LATENCY),
                            "--conflict-status", "409") as url:
        client = Api(url)
        a, b = overlapped(lambda: client.post([make_order("A-1")]),
                          lambda: Api(url).post([make_order("A-1")]))
    assert a.status_code == 201
    assert b.status_code == 409
    body = b.json()
    assert body["errors"][0]["detail"] == CONFLICT["errors"][0]["detail"]
    assert body["errors"][0]["status"] == "409"
