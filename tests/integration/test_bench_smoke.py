"""`bench/pipeline_bench.py --quick --json` runs end to end and reports every figure.

A smoke test of the script (it starts and stops its own emulators, vhosts, databases and
workers), not of the figures: on a busy 2-core CI runner they are not measurements, so only
their presence and shape are checked, never PASS/FAIL."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.integration.conftest import REPO, require_services

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIGURES = ("a_throughput_ratio", "b_write_ceiling_fraction", "b_429_per_1000_writes",
           "c_gets_per_batch", "d_orders_per_post")


@pytest.mark.timeout(240)
def test_pipeline_bench_quick_reports_every_figure() -> None:
    require_services()
    done = subprocess.run([sys.executable, str(REPO / "bench" / "pipeline_bench.py"), "--quick",
                           "--json"], cwd=REPO, capture_output=True, text=True, timeout=230,
                          check=False)
    # 0: every target met, 1: some missed; anything else is the script failing.
    assert done.returncode in (0, 1), done.stderr[-3000:]
    report = json.loads(done.stdout)
    figures = report["figures"]
    assert set(FIGURES) <= set(figures)
    for name in FIGURES:
        figure = figures[name]
        assert isinstance(figure["value"], int | float), name
        assert figure["op"] in (">=", "<=") and isinstance(figure["target"], int | float), name
        assert isinstance(figure["pass"], bool), name
    assert report["pass"] == all(figures[name]["pass"] for name in figures)
    assert report["machine"]["cores"] >= 1
    assert report["details"]["a"]["distributed"]["outcomes"]["confirmed"] == \
        report["sizes"]["orders"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_stage_cost_reports_every_stage(store: str) -> None:
    if store == "postgresql":
        require_services()
    done = subprocess.run([sys.executable, str(REPO / "bench" / "stage_cost.py"), "--records",
                           "100", "--store", store, "--json"], cwd=REPO, capture_output=True,
                          text=True, timeout=110, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    for mode in ("bulk", "trickle"):
        costs = report[mode]
        assert {"normalize", "validate", "batch", "worker total"} <= set(costs), mode
        assert all(ms > 0 for ms in costs.values()), costs
    assert "dispatch check" in report["trickle"]


def test_stage_cost_rejects_a_bad_argument_in_one_line() -> None:
    done = subprocess.run([sys.executable, str(REPO / "bench" / "stage_cost.py"), "--records",
                           "5"], cwd=REPO, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "--records" in done.stderr
