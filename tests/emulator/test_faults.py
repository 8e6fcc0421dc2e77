"""Seeded fault injection (issue point 8)."""

from __future__ import annotations

import json
import time

import pytest
import requests

from emulator.testing import emulator_in_thread, running_emulator
from tests.emulator.conftest import AUTH, Api, make_order

CONFLICT_DETAIL = "We are still processing a previous request. Please try again in a moment."


def post(url: str, order_id: str = "A-1", timeout: float = 10) -> requests.Response:
    return requests.post(f"{url}/orders", json=[make_order(order_id)], auth=AUTH,
                         timeout=timeout)


def stored_ids(url: str) -> list[str]:
    return [o["order_id"] for o in Api(url).stored()]


def test_conflict_fault_on_writes_only() -> None:
    with emulator_in_thread("--no-rate-limit", "--faults", "conflict=1") as url:
        response = post(url)
        assert response.status_code == 400
        assert response.json()["errors"] == [{"status": "400", "code": "invalid",
                                               "detail": CONFLICT_DETAIL,
                                               "source": {"pointer": "/data"}}]
        assert requests.get(f"{url}/orders", auth=AUTH, timeout=10).status_code == 200
        assert stored_ids(url) == []
        assert Api(url).stats()["faults"] == {"conflict": 1}


def test_conflict_fault_as_409() -> None:
    with emulator_in_thread("--no-rate-limit", "--faults", "conflict=1",
                            "--conflict-status", "409") as url:
        response = post(url)
    assert response.status_code == 409
    assert response.json()["errors"][0]["detail"] == CONFLICT_DETAIL


def test_server_errors_apply_nothing() -> None:
    with emulator_in_thread("--no-rate-limit", "--faults", "server_error=1",
                            "--seed", "7") as url:
        statuses = {post(url, f"A-{i}").status_code for i in range(30)}
        assert statuses == {500, 502, 503}
        assert stored_ids(url) == []
        # Faults hit /api/v3 only: the helper endpoints keep answering.
        assert Api(url).stats()["faults"] == {"server_error": 30}
        r500 = next(r for r in (post(url) for _ in range(20)) if r.status_code == 500)
        assert r500.json()["errors"][0]["status"] == "500"


def test_timeout_holds_then_closes_without_an_answer() -> None:
    with emulator_in_thread("--no-rate-limit", "--faults", "timeout=1",
                            "--hang-seconds", "0.5") as url:
        started = time.monotonic()
        with pytest.raises(requests.ConnectionError):
            post(url)
        assert time.monotonic() - started >= 0.45
        with pytest.raises(requests.ReadTimeout):
            post(url, timeout=0.2)  # a client with a shorter timeout gives up first
        assert stored_ids(url) == []
        writes = Api(url).stats()["writes"]
        assert [w[1:] for w in writes] == [["POST", 0], ["POST", 0]]


def test_lost_response_applies_then_drops_the_connection() -> None:
    # A subprocess, as users run it: the client must see a dropped connection, not a 500.
    with running_emulator("--no-rate-limit", "--faults", "lost_response=1") as url:
        with pytest.raises(requests.ConnectionError):
            post(url, "LOST-1")
        with requests.Session() as session:  # also on a kept-alive connection
            session.auth = AUTH
            assert session.get(url.replace("/api/v3", "/_emulator/stats")).status_code == 200
            with pytest.raises(requests.ConnectionError):
                session.post(f"{url}/orders", json=[make_order("LOST-2")], timeout=10)
        assert sorted(stored_ids(url)) == ["LOST-1", "LOST-2"]
        stats = Api(url).stats()
        assert stats["requests"]["POST"] == {"0": 2}
        assert stats["faults"] == {"lost_response": 2}


def test_rate_limit_fault() -> None:
    with emulator_in_thread("--no-rate-limit", "--faults", "rate_limit=1") as url:
        response = post(url)
        assert response.status_code == 429
        assert response.headers["Retry-After"] in ("1", "2")
        assert response.json()["errors"][0]["code"] == "hit_rate_limit"
        assert stored_ids(url) == []


def test_slow_answers_late_but_applies() -> None:
    with emulator_in_thread("--no-rate-limit", "--faults", "slow=1",
                            "--slow-seconds", "0.4") as url:
        started = time.monotonic()
        assert post(url).status_code == 201
        assert time.monotonic() - started >= 0.38
        assert stored_ids(url) == ["A-1"]


def outcomes(url: str, n: int) -> list[int]:
    return [post(url, f"A-{i % 5}", timeout=10).status_code for i in range(n)]


def test_same_seed_same_faults_and_reset_reseeds() -> None:
    spec = "conflict=0.2,server_error=0.2,rate_limit=0.2,slow=0.1"
    args = ("--no-rate-limit", "--faults", spec, "--slow-seconds", "0.01")
    with emulator_in_thread(*args, "--seed", "42") as url:
        first = outcomes(url, 40)
        Api(url).reset()
        again = outcomes(url, 40)
        faults = Api(url).stats()["faults"]
    with emulator_in_thread(*args, "--seed", "42") as url:
        other_run = outcomes(url, 40)
    with emulator_in_thread(*args, "--seed", "43") as url:
        other_seed = outcomes(url, 40)
    assert first == again == other_run
    assert other_seed != first
    assert set(first) >= {201, 400, 429}
    assert sum(faults.values()) > 0


def test_bad_fault_specs_are_refused() -> None:
    from emulator.cli import main

    for spec in ("nope=0.1", "conflict", "conflict=2", "conflict=x", "conflict=0.6,slow=0.6"):
        assert main(["--faults", spec]) == 2, spec


def test_stats_writes_record_every_write() -> None:
    with emulator_in_thread("--no-rate-limit", "--faults", "conflict=0.5", "--seed", "1") as url:
        codes = outcomes(url, 10)
        stats = Api(url).stats()
    assert [w[2] for w in stats["writes"]] == codes
    assert all(isinstance(w[0], float) and w[1] == "POST" for w in stats["writes"])
    assert json.dumps(stats)  # plain JSON
