"""The helper endpoints outside /api/v3 (issue point 10) and concurrent clients (point 9)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from emulator.testing import emulator_in_thread
from tests.emulator.conftest import OTHER_AUTH, Api, make_order


def test_stats(api: Api) -> None:
    started = time.time()
    [pk] = api.create(make_order("A-1"))
    api.post({})
    api.get("/orders")
    api.get("/orders/999999")
    api.patch(pk, {"order_number": "X"})
    api.delete(pk)
    api.as_(None).get("/orders")
    stats = api.stats()
    assert stats["requests"] == {"POST": {"201": 1, "400": 1}, "GET": {"200": 1, "404": 1,
                                                                      "401": 1},
                                 "PATCH": {"200": 1}, "DELETE": {"204": 1}}
    assert stats["orders"] == 0
    assert [w[1:] for w in stats["writes"]] == [["POST", 201], ["POST", 400], ["PATCH", 200],
                                                ["DELETE", 204]]
    times = [w[0] for w in stats["writes"]]
    assert times == sorted(times) and started - 1 < times[0] <= time.time()
    assert stats["faults"] == {}


def test_orders_dump(api: Api) -> None:
    order = make_order("A-1")
    [a, b] = api.create(order, make_order("A-2", integration=102))
    api.as_(OTHER_AUTH).create(make_order("C-1", integration=201))
    api.delete(b)
    dump = api.stored()
    assert [(o["id"], o["integration_id"], o["order_id"]) for o in dump] == [
        (a, 101, "A-1"), (a + 2, 201, "C-1")]
    assert dump[0]["order"] == order
    assert dump[0]["deleted"] is False
    assert dump[0]["created_at"].endswith("Z") and dump[0]["modified_at"].endswith("Z")
    with_deleted = api.stored(include_deleted=True)
    assert [(o["id"], o["deleted"]) for o in with_deleted] == [(a, False), (b, True),
                                                               (a + 2, False)]


def test_reset_keeps_the_configuration(tmp_path: Path) -> None:
    with emulator_in_thread("--write-burst", "2", "--no-rate-limit") as url:
        api = Api(url)
        [pk] = api.create(make_order("A-1"))
        api.reset()
        assert api.stored() == [] and api.stats()["requests"] == {}
        assert api.get(f"/orders/{pk}").status_code == 404
        [again] = api.create(make_order("A-1"))
        assert again > pk  # ids keep counting: a stale id never names a new order
        assert api.as_(("x", "y")).get("/orders").status_code == 401


def test_admin_requests_are_not_counted(api: Api) -> None:
    api.stats()
    api.stored()
    assert api.stats()["requests"] == {}


def test_many_concurrent_clients_on_overlapping_orders(api: Api) -> None:
    """Eight clients upsert the same 30 orders over and over: every answer is a 201 or the
    documented conflict, and the store ends with exactly one order per key."""
    codes: list[int] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        mine = Api(api.url)
        for round_ in range(15):
            batch = [make_order(f"K-{(n + round_ + i) % 30}", order_number=f"{n}-{round_}")
                     for i in range(0, 30, 3)]
            code = mine.post(batch).status_code
            with lock:
                codes.append(code)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(codes) <= {201, 400}
    stored = api.stored()
    assert sorted(o["order_id"] for o in stored) == sorted(f"K-{i}" for i in range(30))
    assert len({o["id"] for o in stored}) == 30
    listed = api.get("/orders?page_size=200").json()["data"]
    assert len(listed) == 30


def test_db_in_process_keeps_pending_versions(tmp_path: Path) -> None:
    db = str(tmp_path / "state.sqlite")
    with emulator_in_thread("--no-rate-limit", "--db", db, "--visibility-delay", "30") as url:
        api = Api(url)
        [pk] = api.create(make_order("A-1"))
        api.create(make_order("A-1", order_number="V2"))
    with emulator_in_thread("--no-rate-limit", "--db", db, "--visibility-delay", "30") as url:
        api = Api(url)
        assert api.get(f"/orders/{pk}").status_code == 404  # still being "saved"
        assert api.stored()[0]["order"]["order_number"] == "V2"
        assert api.stored()[0]["visible"] is False
