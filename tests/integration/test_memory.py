"""`ordersync sync` streams its input: peak RSS stays under 300 MB for a file of 20,000 orders
(~40 MB of JSON Lines, several hundred MB if it were held as Python objects).

The CI-sized version of `bench/memory.py` (which runs the 1,000,000-record size): embedded mode,
emulator `--no-rate-limit`, our own limiter lifted, psutil sampling the CLI process and its
children every 0.2 s.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.memory import MB, TARGET_MB, curve, run_sync, settled_ok, write_orders

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORDS = 20_000


def test_sync_streams_a_big_file_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    write_orders(path, RECORDS, seed=31)
    run = run_sync(path, RECORDS, tmp_path / "home", interval=0.2, timeout=240, concurrency=4,
                   log=lambda _line: None)
    ok, why = settled_ok(run)
    assert ok, why
    assert run.samples, "no RSS samples were taken"
    peak = run.peak_rss / MB
    assert peak <= TARGET_MB, f"peak RSS {peak:.0f} MB; curve: {curve(run.samples, 10)}"
