"""HTTP Basic auth (issue point 6) and per-account sliding-window rate limits (point 7)."""

from __future__ import annotations

import base64
import time

import pytest

from emulator.testing import emulator_in_thread
from tests.emulator.conftest import OTHER_AUTH, Api, make_order

NO_CREDENTIALS = {"errors": [{
    "status": "401", "code": "authentication_failed", "title": "No credentials",
    "detail": "Authentication credentials were not provided."}]}
BAD_CREDENTIALS = {"errors": [{
    "status": "401", "code": "authentication_failed", "title": "Invalid username/password.",
    "detail": "The username or password provided is incorrect. Please make a request with the "
              "valid credentials."}]}


def test_missing_credentials(api: Api) -> None:
    anonymous = api.as_(None)
    for method, path in (("GET", "/orders"), ("POST", "/orders"), ("GET", "/orders/1"),
                         ("DELETE", "/orders/1"), ("PATCH", "/orders/1")):
        response = anonymous.request(method, path)
        assert response.status_code == 401
        assert response.json() == NO_CREDENTIALS
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    bearer = anonymous.get("/orders", headers={"Authorization": "Bearer abc"})
    assert bearer.json() == NO_CREDENTIALS


def test_wrong_credentials(api: Api) -> None:
    for auth in (("demo-public", "wrong"), ("nobody", "demo-secret"), ("demo-public", "")):
        response = api.as_(auth).get("/orders")
        assert response.status_code == 401
        assert response.json() == BAD_CREDENTIALS
    for header in ("Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(),
                   "Basic " + base64.b64encode(b"\xff\xfe:x").decode()):
        response = api.as_(None).get("/orders", headers={"Authorization": header})
        assert response.json() == BAD_CREDENTIALS, header


def test_accounts_see_only_their_own_orders(api: Api) -> None:
    [mine] = api.create(make_order("A-1"))
    other = api.as_(OTHER_AUTH)
    assert other.get("/orders").json()["data"] == []
    assert other.get(f"/orders/{mine}").status_code == 404


def test_write_burst_then_retry_after() -> None:
    with emulator_in_thread("--write-burst", "3", "--write-rate", "100/m") as url:
        api = Api(url)
        codes = [api.post([make_order(f"A-{i}")]).status_code for i in range(4)]
        assert codes == [201, 201, 201, 429]
        limited = api.post([make_order("A-9")])
        assert limited.status_code == 429
        assert limited.headers["Retry-After"] == "1"
        assert limited.json()["errors"][0]["code"] == "hit_rate_limit"
        # Reads have their own budget; other accounts have their own windows.
        assert api.get("/orders").status_code == 200
        assert api.as_(OTHER_AUTH).post([make_order("B", integration=201)]).status_code == 201
        time.sleep(1.05)
        assert api.post([make_order("A-5")]).status_code == 201
        stats = api.stats()
        assert stats["requests"]["POST"] == {"201": 5, "429": 2}


def test_write_rate_window_and_429s_do_not_count() -> None:
    with emulator_in_thread("--write-burst", "10", "--write-rate", "3/2s") as url:
        api = Api(url)
        [pk] = api.create(make_order("A-1"))
        assert api.patch(pk, {"order_number": "X"}).status_code == 200
        assert api.delete(pk).status_code == 204
        for _ in range(5):  # refused writes do not extend the wait
            response = api.post([make_order("A-2")])
            assert response.status_code == 429
            assert response.headers["Retry-After"] in ("1", "2")
        time.sleep(2.05)
        assert api.post([make_order("A-2")]).status_code == 201


def test_read_rate() -> None:
    with emulator_in_thread("--read-rate", "3/m") as url:
        api = Api(url)
        assert [api.get("/orders").status_code for _ in range(4)] == [200, 200, 200, 429]
        response = api.get("/orders/1")
        retry = int(response.headers["Retry-After"])
        assert 55 <= retry <= 60
        assert api.post([make_order("A-1")]).status_code == 201  # writes are separate


def test_reset_clears_the_windows() -> None:
    with emulator_in_thread("--write-burst", "1") as url:
        api = Api(url)
        assert api.post([]).status_code == 201
        assert api.post([]).status_code == 429
        api.reset()
        assert api.post([]).status_code == 201


def test_no_rate_limit(api: Api) -> None:
    assert all(api.post([]).status_code == 201 for _ in range(40))


@pytest.mark.parametrize("header", ["not-a-uuid", ""])
def test_partner_header_must_be_a_uuid(api: Api, header: str) -> None:
    response = api.get("/orders", headers={"Sendcloud-Partner-Id": header})
    assert response.status_code == 400
    assert response.json()["errors"][0]["source"] == {"header": "Sendcloud-Partner-Id"}
    partner = "0b0a51a2-1e2f-4a8b-9c3d-0e1f2a3b4c5d"
    ok = api.get("/orders", headers={"Sendcloud-Partner-Id": partner})
    assert ok.status_code == 200
