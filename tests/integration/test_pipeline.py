"""The whole pipeline against the emulator over HTTP: real Celery workers on RabbitMQ with
PostgreSQL state, and the embedded mode. No eager mode, no mocks."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bench._common import max_in_window
from tests.integration.conftest import (
    base_env,
    cluster,
    emulator,
    emulator_orders,
    emulator_stats,
    write_jsonl,
)

pytestmark = pytest.mark.integration


def order(n: int, *, integration: int = 101, updated: str | None = None,
          city: str = "Oss") -> dict[str, Any]:
    details: dict[str, Any] = {
        "integration": {"id": integration},
        "status": {"code": "fulfilled", "message": "Fulfilled"},
        "order_created_at": "2026-11-30T10:00:00Z",
        "order_items": [{"name": "Cylinder candle", "quantity": 1,
                         "total_price": {"value": 3.5, "currency": "EUR"}}],
    }
    if updated:
        details["order_updated_at"] = updated
    return {
        "order_id": f"T-{n}",
        "order_number": f"N-{n}",
        "order_details": details,
        "payment_details": {"total_price": {"value": 3.5, "currency": "EUR"},
                            "status": {"code": "paid", "message": "Paid"}},
        "shipping_address": {"name": "Jo Test", "address_line_1": "Lansdown Glade",
                             "house_number": "15", "postal_code": "5341XT", "city": city,
                             "country_code": "NL"},
    }


def held(api_url: str) -> dict[tuple[int, str], dict[str, Any]]:
    out: dict[tuple[int, str], dict[str, Any]] = {}
    for item in emulator_orders(api_url):
        key = (int(item["integration_id"]), str(item["order_id"]))
        assert key not in out, f"duplicate order {key}"
        out[key] = item["order"]
    return out


def run_embedded(api_url: str, tmp: Path, path: Path, *extra: str,
                 **env_extra: str) -> tuple[int, dict[str, Any]]:
    import subprocess

    from tests.integration.conftest import ORDERSYNC

    env = base_env(api_url, tmp, **env_extra)
    done = subprocess.run([ORDERSYNC, "sync", "--json", str(path), *extra], env=env,
                          capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode in (0, 1), f"exit {done.returncode}: {done.stderr[-3000:]}"
    return done.returncode, json.loads(done.stdout)


def test_embedded_one_bad_order_among_100(tmp_path: Path) -> None:
    """The server rejects one order the pre-flight cannot judge (an integration the account
    does not own): 99 confirmed, 1 dead letter with the API's reason; 2 POSTs in all."""
    records = [order(i) for i in range(99)] + [order(99, integration=999)]
    path = write_jsonl(tmp_path / "orders.jsonl", records)
    with emulator("--no-rate-limit") as url:
        code, summary = run_embedded(url, tmp_path, path)
        stored = held(url)
    assert code == 1
    assert summary["records"] == 100
    assert summary["upserted"] == summary["confirmed"] == 99
    assert summary["dead_lettered"] == 1
    assert summary["requests"]["POST"] == 2
    assert summary["requests"]["GET"] == 1  # one page confirms all 99
    letter = summary["dead_letters"][0]
    assert (letter["integration_id"], letter["order_id"]) == (999, "T-99")
    assert "999" in json.dumps(letter["errors"])
    assert set(stored) == {(101, f"T-{i}") for i in range(99)}


def test_distributed_bisection_without_pointers(tmp_path: Path, database: str) -> None:
    """Pointer-less rejections: the batch is bisected; only the bad order is dead-lettered."""
    records = [order(i) for i in range(60)] + [order(60, integration=999)] + \
        [order(i) for i in range(61, 100)]
    path = write_jsonl(tmp_path / "orders.jsonl", records)
    with emulator("--no-rate-limit", "--errors-without-pointers") as url, \
            cluster(url, tmp_path, database) as c:
        c.start_worker()
        code, summary = c.sync(path)
        stored = held(url)
    assert code == 1
    assert summary["confirmed"] == 99 and summary["dead_lettered"] == 1
    assert summary["dead_letters"][0]["order_id"] == "T-60"
    assert len(stored) == 99
    # ⌈log₂ 100⌉ = 7 levels, two requests a level for one bad order, plus the first.
    assert summary["requests"]["POST"] <= 2 * 7 + 1


def test_distributed_conflicts_and_rate_limits_are_retried(tmp_path: Path,
                                                            database: str) -> None:
    records = [order(i, integration=101 + i % 3) for i in range(300)]
    path = write_jsonl(tmp_path / "orders.jsonl", records)
    with emulator("--no-rate-limit", "--faults", "conflict=0.3,rate_limit=0.15",
                  "--seed", "3") as url, cluster(url, tmp_path, database) as c:
        c.start_worker()
        c.start_worker()
        code, summary = c.sync(path)
        stored = held(url)
        stats = emulator_stats(url)
    assert code == 0, summary["dead_letters"]
    assert summary["confirmed"] == 300 and summary["dead_lettered"] == 0
    assert len(stored) == 300
    assert stats["faults"].get("conflict", 0) > 0
    assert summary["requests"]["retried"] > 0
    assert summary["requests"]["rate_limited"] > 0


def test_late_older_versions_and_deletes(tmp_path: Path, database: str) -> None:
    new = [order(i, updated="2026-12-01T12:00:00Z", city="Breda") for i in range(10)]
    old = [order(i, updated="2026-12-01T08:00:00Z", city="Oss") for i in range(10)]
    delete = [{"op": "delete", "integration_id": 101, "order_id": f"T-{i}",
               "version": "2026-12-02T00:00:00Z"} for i in range(5)]
    with emulator("--no-rate-limit") as url, cluster(url, tmp_path, database) as c:
        c.start_worker()
        _, first = c.sync(write_jsonl(tmp_path / "new.jsonl", new))
        _, late = c.sync(write_jsonl(tmp_path / "old.jsonl", old))
        _, deleted = c.sync(write_jsonl(tmp_path / "delete.jsonl", delete))
        _, revived = c.sync(write_jsonl(tmp_path / "old-again.jsonl", old[:5]))
        stored = held(url)
    assert first["confirmed"] == 10
    assert late["superseded"] == 10 and late["requests"]["POST"] == 0
    assert deleted["deleted"] == 5
    assert revived["superseded"] == 5
    assert set(stored) == {(101, f"T-{i}") for i in range(5, 10)}
    assert {o["shipping_address"]["city"] for o in stored.values()} == {"Breda"}


def test_writes_never_exceed_the_global_limit(tmp_path: Path, database: str) -> None:
    """Four worker processes share one budget: the emulator (which enforces the same limits)
    never sees more than 5 writes in a second or 30 in 10 s, and answers no 429."""
    creates = [order(i) for i in range(80)]
    deletes = [{"op": "delete", "integration_id": 101, "order_id": f"T-{i}",
                "version": "2026-12-02T00:00:00Z"} for i in range(80)]
    limits = ("--write-rate", "30/10s", "--write-burst", "5")
    with emulator(*limits) as url, cluster(url, tmp_path, database,
                                           ORDERSYNC_WRITE_RATE="30/10s",
                                           ORDERSYNC_WRITE_BURST="5") as c:
        for _ in range(4):
            c.start_worker(concurrency=2)
        _, created = c.sync(write_jsonl(tmp_path / "create.jsonl", creates))
        _, deleted = c.sync(write_jsonl(tmp_path / "delete.jsonl", deletes), timeout=300)
        stats = emulator_stats(url)
    assert created["confirmed"] == 80 and deleted["deleted"] == 80
    times = sorted(t for t, _method, status in stats["writes"] if status != 429)
    assert not [w for w in stats["writes"] if w[2] == 429]
    assert max_in_window(times, 1.0) <= 5
    assert max_in_window(times, 10.0) <= 30


def test_worker_killed_mid_upsert_loses_nothing(tmp_path: Path, database: str) -> None:
    records = [order(i, integration=101 + i % 3) for i in range(1000)]
    path = write_jsonl(tmp_path / "orders.jsonl", records)
    with emulator("--no-rate-limit", "--latency", "0.4") as url, \
            cluster(url, tmp_path, database) as c:
        victim = c.start_worker()
        import subprocess

        from tests.integration.conftest import ORDERSYNC

        sync = subprocess.Popen([ORDERSYNC, "sync", "--json", str(path)], env=c.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # kill once POSTs are in flight
            posts = emulator_stats(url)["requests"].get("POST", {})
            if sum(posts.values()) >= 2:
                break
            time.sleep(0.1)
        c.kill(victim)
        c.start_worker()
        out, err = sync.communicate(timeout=300)
        stored = held(url)
    assert sync.returncode == 0, err[-3000:]
    summary = json.loads(out)
    assert summary["confirmed"] == 1000 and summary["dead_lettered"] == 0
    assert len(stored) == 1000
    assert Counter(k[0] for k in stored) == {101: 334, 102: 333, 103: 333}


def test_wrong_credentials_stop_without_dead_letters(tmp_path: Path, database: str) -> None:
    """401 at upsert time: nothing is dead-lettered, the orders stay queued, operators see an
    alert; once the keys are fixed, the next sync sends them."""
    records = [order(i) for i in range(20)]
    path = write_jsonl(tmp_path / "orders.jsonl", records)
    with emulator("--no-rate-limit") as url, cluster(url, tmp_path, database) as c:
        good_env = dict(c.env)
        c.env["SENDCLOUD_SECRET_KEY"] = "wrong"
        c.start_worker()
        submitted = c.ordersync("submit", str(path))  # submit does not call the API itself
        assert submitted.returncode == 0, submitted.stderr
        deadline = time.monotonic() + 60
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = json.loads(c.ordersync("status", "--json").stdout)
            if status["alerts"]:
                break
            time.sleep(0.5)
        assert "credentials" in status["alerts"]["stopped"]
        assert status["dead_letters"] == 0
        assert held(url) == {}
        c.stop_all()
        c.workers.clear()
        c.env = good_env
        c.start_worker()
        code, summary = c.sync(write_jsonl(tmp_path / "none.jsonl", []))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(held(url)) < 20:
            time.sleep(0.5)
        assert len(held(url)) == 20
        assert code == 0 and summary["records"] == 0


def test_orders_saved_late_are_confirmed(tmp_path: Path) -> None:
    """The API saves asynchronously: confirm looks again until the orders show up."""
    path = write_jsonl(tmp_path / "orders.jsonl", [order(i) for i in range(30)])
    with emulator("--no-rate-limit", "--visibility-delay", "2.5") as url:
        code, summary = run_embedded(url, tmp_path, path)
    assert code == 0
    assert summary["confirmed"] == 30
    assert summary["requests"]["GET"] >= 2  # a look too early, then the find
    assert summary["requests"]["POST"] == 1
