"""Emulator throughput: orders/s upserted in batches of 100 by concurrent clients.

    .venv/bin/python bench/emulator_bench.py [--orders 40000] [--clients 4]

Starts `python -m emulator --port 0 --no-rate-limit` (no faults, no latency) as a subprocess,
then 4 threads, each with its own requests.Session, POST distinct orders in batches of 100.
Request bodies are encoded before the clock starts, so the figure is the emulator's, not
the client's JSON encoder's. Then one client alone POSTs batches one after another, for the
latency of a single 100-order POST without contention. Prints plain lines.
"""

from __future__ import annotations

import argparse
import json
import queue
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emulator.testing import running_emulator

AUTH = ("demo-public", "demo-secret")
HEADERS = {"Content-Type": "application/json"}
BATCH = 100


def make_order(n: int) -> dict[str, Any]:
    """A realistic, valid order: two items, shipping and billing address, customs."""
    return {
        "order_id": f"BENCH-{n:08d}",
        "order_number": f"ON-{n:08d}",
        "order_details": {
            "integration": {"id": 101 + n % 3},
            "status": {"code": "fulfilled", "message": "Fulfilled"},
            "order_created_at": "2024-05-01T10:00:00.000Z",
            "order_updated_at": "2024-05-02T11:30:00+02:00",
            "order_items": [
                {
                    "name": "Cylinder candle", "item_id": f"I-{n}-1", "sku": "CC-01",
                    "quantity": 2, "hs_code": "340600", "country_of_origin": "NL",
                    "unit_price": {"value": 3.5, "currency": "EUR"},
                    "total_price": {"value": 7.0, "currency": "EUR"},
                    "measurement": {"weight": {"value": 0.4, "unit": "kg"}},
                },
                {
                    "name": "Scented candle", "item_id": f"I-{n}-2", "quantity": 1,
                    "unit_price": {"value": 5.5, "currency": "EUR"},
                    "total_price": {"value": 5.5, "currency": "EUR"},
                },
            ],
            "tags": ["bench"],
        },
        "payment_details": {
            "total_price": {"value": 12.5, "currency": "EUR"},
            "status": {"code": "paid", "message": "Paid"},
            "freight_costs": {"value": "4.95", "currency": "EUR"},
        },
        "customs_details": {"shipment_type": "commercial_goods", "export_type": "commercial_b2c"},
        "customer_details": {"name": "John Doe", "email": "john@example.com"},
        "shipping_address": {
            "name": "John Doe", "address_line_1": "Stadhuisplein", "house_number": "10",
            "postal_code": "5611 EM", "city": "Eindhoven", "country_code": "NL",
            "email": "john@example.com", "phone_number": "+31612345678",
        },
        "billing_address": {
            "name": "John Doe", "address_line_1": "Stadhuisplein", "house_number": "10",
            "postal_code": "5611 EM", "city": "Eindhoven", "country_code": "NL",
        },
        "shipping_details": {"is_local_pickup": False, "delivery_indicator": "home"},
    }


def bodies(start: int, batches: int) -> list[bytes]:
    return [
        json.dumps([make_order(start + b * BATCH + i) for i in range(BATCH)]).encode()
        for b in range(batches)
    ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_concurrent(url: str, work: list[bytes], clients: int) -> tuple[float, list[float]]:
    jobs: queue.SimpleQueue[bytes] = queue.SimpleQueue()
    for body in work:
        jobs.put(body)
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        with requests.Session() as session:
            session.auth = AUTH
            while True:
                try:
                    body = jobs.get_nowait()
                except queue.Empty:
                    return
                t0 = time.perf_counter()
                response = session.post(f"{url}/orders", data=body, headers=HEADERS)
                elapsed = time.perf_counter() - t0
                with lock:
                    latencies.append(elapsed)
                    if response.status_code != 201:
                        failures.append(f"{response.status_code} {response.text[:200]}")

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if failures:
        raise SystemExit(f"{len(failures)} POSTs failed, first: {failures[0]}")
    return wall, latencies


def read_latencies(url: str, n: int = 50) -> dict[str, list[float]]:
    """Reads against the full store: what a client confirming orders pays."""
    queries = {
        "/orders (first page of 100, default -pk)": "/orders",
        "/orders?order_id=… (one order)": "/orders?order_id=BENCH-00001234",
        "/orders?sort=order_number&page_size=200 (full scan)":
            "/orders?sort=order_number&page_size=200",
    }
    out: dict[str, list[float]] = {}
    with requests.Session() as session:
        session.auth = AUTH
        for name, path in queries.items():
            times = []
            for _ in range(n):
                t0 = time.perf_counter()
                response = session.get(url + path, timeout=30)
                times.append(time.perf_counter() - t0)
                if response.status_code != 200:
                    raise SystemExit(f"GET {path} failed: {response.status_code}")
            out[name] = times
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=40_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--single", type=int, default=100, help="sequential POSTs for latency")
    args = parser.parse_args()
    batches = max(1, args.orders // BATCH)
    work = bodies(0, batches)
    solo = bodies(batches * BATCH, args.single)
    warm = bodies((batches + args.single) * BATCH, 5)
    with running_emulator("--no-rate-limit") as url:
        run_concurrent(url, warm, 1)
        wall, latencies = run_concurrent(url, work, args.clients)
        _, solo_latencies = run_concurrent(url, solo, 1)
        stored = requests.get(url.replace("/api/v3", "/_emulator/stats"), timeout=10).json()
        reads = read_latencies(url)
    orders = batches * BATCH
    print(f"orders upserted: {orders} in batches of {BATCH} by {args.clients} clients")
    print(f"wall time: {wall:.2f} s")
    print(f"throughput: {orders / wall:.0f} orders/s ({batches / wall:.1f} requests/s)")
    print(f"POST latency under load: p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
          f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms")
    print(f"POST latency, one client alone: p50 {percentile(solo_latencies, 0.5) * 1000:.1f} ms,"
          f" p99 {percentile(solo_latencies, 0.99) * 1000:.1f} ms, "
          f"mean {statistics.mean(solo_latencies) * 1000:.1f} ms")
    print(f"orders stored: {stored['orders']}")
    for name, values in reads.items():
        print(f"GET {name}: p50 {percentile(values, 0.5) * 1000:.1f} ms, "
              f"p99 {percentile(values, 0.99) * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
