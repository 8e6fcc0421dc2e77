"""Scale: the throughput curve over 1, 2 and 4 worker processes, and the write budget held by
1, 2 and 4 worker processes.

    .venv/bin/python bench/scale.py [--orders 3000] [--deletes 1000] [--workers 1,2,4]
                                    [--concurrency 8] [--repeat 1] [--quick] [--json]
                                    [--only curve|budget]

(1) Throughput curve. For each worker count: a fresh emulator (`--latency 0.15
    --no-rate-limit`), a fresh RabbitMQ vhost and PostgreSQL database, that many
    `celery -A tasks worker --pool=threads --concurrency=C` processes, and our own limiter lifted
    (ORDERSYNC_WRITE_RATE/READ_RATE far above demand). A producer process calls `submit()` with
    the same N orders (default 3000, seeded) and polls the store until the submission is settled:
    orders/s = N / (settled - submit start). A warm-up submission of 100 other orders runs first
    (imports, connections, the first flush), so the figure is steady-state.
(2) Write budget. For each worker count: emulator `--write-rate 600/m --write-burst 15` and the
    pipeline at ORDERSYNC_WRITE_RATE=600/m ORDERSYNC_WRITE_BURST=15. Workload: create M orders
    (default 1000; M/100 POSTs), then delete all M of them: one DELETE (one write) per order, all
    submitted at once, so demand (every worker thread wants to send) is far above 10 writes/s
    for M/10 s (> 1 minute at the default). From the emulator's `writes` timeline (every write
    request, with its arrival time and status), over the whole run: the most writes *sent* in any
    rolling second (budget 15) and any rolling minute (budget 600), counting 429-answered
    attempts too, and the number of 429s (budget 0: the emulator answers 429 exactly when its
    own sliding windows would be exceeded).

Exit status: 0 when every budget held (and every run settled every record); 1 when a budget was
exceeded or a run did not settle; 2 when the run broke. Every service started here is stopped
on the way out (emulators, workers, vhosts, databases), failures included.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (
    base_env,
    celery_workers,
    delta,
    dump_json,
    emulator_stats,
    machine,
    max_in_window,
    pg_database,
    rabbit_vhost,
)
from bench._common import run_driver as _common_run_driver
from emulator.testing import running_emulator
from pipeline.sample import SampleSpec, generate

LATENCY = "0.15"
WRITE_RATE, WRITE_BURST = "600/m", "15"
BUDGET_PER_S, BUDGET_PER_MIN = 15, 600
UNTHROTTLED = {"ORDERSYNC_WRITE_RATE": "1000000/m", "ORDERSYNC_WRITE_BURST": "100000",
               "ORDERSYNC_READ_RATE": "1000000/m"}
SEED_CURVE, SEED_WARMUP, SEED_BUDGET = 41, 42, 43


# -- records -------------------------------------------------------------------------------------

def orders(count: int, seed: int, prefix: str) -> list[dict[str, Any]]:
    """Valid sample orders with order ids unique to `prefix` (so a warm-up never overlaps)."""
    out = []
    for record in generate(SampleSpec(count=count, seed=seed)):
        order = record["order"] if record.get("op") == "upsert" else record
        order = {**order, "order_id": f"{prefix}-{order['order_id']}"}
        out.append(order)
    return out


def deletes_of(items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"op": "delete", "integration_id": o["order_details"]["integration"]["id"],
             "order_id": o["order_id"]} for o in items]


def write_jsonl(path: Path, items: Sequence[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps(item, separators=(",", ":")) + "\n")
    return path


# -- the producer, in a child process (`--_drive SPEC`) ------------------------------------------

def drive(spec: dict[str, Any]) -> dict[str, Any]:
    """Submit each phase's records with `tasks.submit` and poll the store until the submission
    is settled. Runs in a child whose environment names the cluster, as a producer would."""
    from tasks import submit
    from tasks.context import services

    store = services().store
    timeout = float(spec["timeout"])
    phases = []
    for phase in spec["phases"]:
        with Path(phase["records"]).open(encoding="utf-8") as handle:
            items = [json.loads(line) for line in handle if line.strip()]
        start = time.time()
        sid = submit(items)
        submitted = time.time()
        deadline = time.monotonic() + timeout
        while not store.is_settled(sid):
            if time.monotonic() > deadline:
                raise TimeoutError(f"phase {phase['name']}: not settled after {timeout:g} s: "
                                   f"{json.dumps(store.submission(sid), default=str)}")
            time.sleep(0.05)
        end = time.time()
        summary = store.summary(sid)
        phases.append({"name": phase["name"], "records": len(items), "start": start,
                       "submitted": submitted, "end": end,
                       "outcomes": {k: v for k, v in summary.items()
                                    if isinstance(v, int)},
                       "dead_letters": summary["dead_letters"][:5]})
    return {"phases": phases}


def run_driver(env: dict[str, str], spec: dict[str, Any], tmp: Path) -> dict[str, Any]:
    return _common_run_driver(Path(__file__).resolve(), env, spec, tmp)


# -- measuring -----------------------------------------------------------------------------------

@dataclass
class CpuMeter:
    """CPU seconds over a phase: of the worker processes, of everything else this bench started
    (emulator, producer), and the machine's busy fraction (other people's work included)."""

    pids: list[int]

    def __post_init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}
        self._start = self._read()

    def _cpu(self, pids: list[int]) -> float:
        total = 0.0
        for pid in pids:
            try:
                proc = self._procs.setdefault(pid, psutil.Process(pid))
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def _read(self) -> tuple[float, float, float, float]:
        workers = self._cpu(self.pids)
        others = [p.pid for p in psutil.Process().children(recursive=True)
                  if p.pid not in self.pids]
        # A child that ends within the phase (the producer) is counted from the parent's
        # children_* times; those it started itself are in its own figures.
        me = psutil.Process().cpu_times()
        own = self._cpu(others) + me.children_user + me.children_system
        machine_times = psutil.cpu_times()
        busy = machine_times.user + machine_times.system + machine_times.nice + \
            getattr(machine_times, "irq", 0.0) + getattr(machine_times, "softirq", 0.0) + \
            getattr(machine_times, "steal", 0.0)
        return workers, own, busy, time.monotonic()

    def done(self) -> dict[str, float]:
        workers, own, busy, at = self._read()
        wall = max(1e-9, at - self._start[3])
        cores = os.cpu_count() or 1
        return {"worker_cpu_s": round(workers - self._start[0], 1),
                "emulator_producer_cpu_s": round(own - self._start[1], 1),
                "machine_busy_pct": round(100 * (busy - self._start[2]) / (wall * cores), 1),
                "phase_wall_s": round(wall, 1)}


@contextmanager
def cluster(api_url: str, tmp: Path, name: str, workers: int, concurrency: int,
            **extra: str) -> Iterator[tuple[dict[str, str], list[subprocess.Popen[bytes]]]]:
    """A vhost, a database and `workers` worker processes; yields (environment, processes)."""
    with rabbit_vhost("ordersync-scale") as broker, pg_database("ordersync_scale") as database:
        logdir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=tmp))
        env = base_env(api_url, logdir / "home", ORDERSYNC_BROKER_URL=broker,
                       ORDERSYNC_DATABASE_URL=database, **extra)
        with celery_workers(env, logdir, workers, concurrency) as procs:
            yield env, procs


# -- (1) the throughput curve --------------------------------------------------------------------

def postgres_cpu(database_url: str) -> float:
    """CPU seconds of the PostgreSQL backends serving `database_url`'s database (alive ones,
    over their lifetime: this cluster's connections)."""
    name = database_url.rsplit("/", 1)[-1]
    total = 0.0
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if proc.info["name"] == "postgres" and name in " ".join(proc.info["cmdline"] or []):
                times = proc.cpu_times()
                total += times.user + times.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def curve_point(workers: int, args: argparse.Namespace, files: dict[str, Path], tmp: Path,
                log: Any) -> dict[str, Any]:
    with running_emulator("--latency", LATENCY, "--no-rate-limit") as url, \
            cluster(url, tmp, f"curve-{workers}", workers, args.concurrency,
                    **UNTHROTTLED) as (env, procs):
        before = emulator_stats(url)
        meter = CpuMeter([p.pid for p in procs])
        load = os.getloadavg()[0]
        result = run_driver(env, {"timeout": args.settle_timeout, "phases": [
            {"name": "warmup", "records": str(files["warmup"])},
            {"name": "orders", "records": str(files["orders"])}]}, tmp)
        cpu = meter.done()
        cpu["postgres_cpu_s"] = round(postgres_cpu(env["ORDERSYNC_DATABASE_URL"]), 1)
        after = emulator_stats(url)
    phase = result["phases"][1]
    seconds = phase["end"] - phase["start"]
    n = phase["records"]
    out = {"workers": workers, "concurrency": args.concurrency, "orders": n,
           "seconds": round(seconds, 2), "orders_per_s": round(n / seconds, 1),
           "submit_s": round(phase["submitted"] - phase["start"], 2),
           "confirmed": phase["outcomes"]["confirmed"],
           "dead_lettered": phase["outcomes"]["dead_lettered"],
           "POST": delta(before, after, "POST"), "GET": delta(before, after, "GET"),
           "load_1m_before": round(load, 2), **cpu}
    log(f"  {workers} worker(s) × {args.concurrency} threads: {n} orders in {seconds:.2f} s → "
        f"{n / seconds:,.0f} orders/s (submit() {out['submit_s']} s; {out['POST']} POSTs, "
        f"{out['GET']} GETs; confirmed {out['confirmed']}; over {cpu['phase_wall_s']} s incl. "
        f"warm-up: worker CPU {cpu['worker_cpu_s']} s, emulator+producer CPU "
        f"{cpu['emulator_producer_cpu_s']} s, PostgreSQL ≈{cpu['postgres_cpu_s']} s, machine busy "
        f"{cpu['machine_busy_pct']} %; load before {load:.1f})")
    return out


# -- (2) the write budget ------------------------------------------------------------------------

def budget_point(workers: int, args: argparse.Namespace, files: dict[str, Path], tmp: Path,
                 log: Any) -> dict[str, Any]:
    limits = {"ORDERSYNC_WRITE_RATE": WRITE_RATE, "ORDERSYNC_WRITE_BURST": WRITE_BURST}
    with running_emulator("--write-rate", WRITE_RATE, "--write-burst", WRITE_BURST) as url, \
            cluster(url, tmp, f"budget-{workers}", workers, args.concurrency,
                    **limits) as (env, procs):
        meter = CpuMeter([p.pid for p in procs])
        result = run_driver(env, {"timeout": args.settle_timeout, "phases": [
            {"name": "create", "records": str(files["create"])},
            {"name": "delete", "records": str(files["delete"])}]}, tmp)
        cpu = meter.done()
        stats = emulator_stats(url)
    create, remove = result["phases"]
    writes = sorted(stats["writes"])
    sent = [t for t, _method, _status in writes]
    limited = sum(1 for *_x, status in writes if status == 429)
    other = sorted({status for *_x, status in writes if status >= 300 and status != 429})
    deletes = [t for t, method, status in writes if method == "DELETE" and status != 429]
    span = deletes[-1] - deletes[0] if len(deletes) > 1 else 0.0
    out = {"workers": workers, "concurrency": args.concurrency,
           "writes": len(writes), "rate_limited_429": limited, "other_error_statuses": other,
           "max_per_s": max_in_window(sent, 1.0), "max_per_min": max_in_window(sent, 60.0),
           "max_per_s_accepted": max_in_window([t for t, _m, s in writes if s != 429], 1.0),
           "delete_span_s": round(span, 1),
           "delete_rate_per_s": round((len(deletes) - 1) / span, 2) if span else 0.0,
           "created": create["outcomes"]["confirmed"], "deleted": remove["outcomes"]["deleted"],
           "dead_lettered": create["outcomes"]["dead_lettered"]
           + remove["outcomes"]["dead_lettered"],
           "dead_letters": create["dead_letters"] + remove["dead_letters"],
           "delete_phase_s": round(remove["end"] - remove["start"], 1), **cpu}
    out["within_budget"] = (out["max_per_s"] <= BUDGET_PER_S
                            and out["max_per_min"] <= BUDGET_PER_MIN and limited == 0)
    out["settled"] = (out["created"] == create["records"]
                      and out["deleted"] == remove["records"] and out["dead_lettered"] == 0)
    log(f"  {workers} worker(s) × {args.concurrency} threads: {len(writes)} writes "
        f"({out['created']} created in ≥{-(-create['records'] // 100)} POSTs, "
        f"{out['deleted']} deleted over {span:.1f} s = {out['delete_rate_per_s']}/s); "
        f"max {out['max_per_s']}/rolling s (budget {BUDGET_PER_S}), {out['max_per_min']}/rolling"
        f" min (budget {BUDGET_PER_MIN}), 429s: {limited}  "
        f"{'OK' if out['within_budget'] else 'EXCEEDED'}"
        + ("" if out["settled"] else f"  NOT SETTLED: {out['dead_letters']}"))
    return out


# -- main ----------------------------------------------------------------------------------------

def _median(runs: Sequence[dict[str, Any]], key: str) -> float:
    return round(statistics.median(float(r[key]) for r in runs), 1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--orders", type=int, default=0,
                        help="orders per curve point (default 3000; 300 with --quick)")
    parser.add_argument("--deletes", type=int, default=0, help="orders created then deleted per "
                        "budget point (default 1000: ~100 s of demand; 200 with --quick)")
    parser.add_argument("--workers", default="1,2,4", help="worker counts (default 1,2,4)")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="threads per worker process (default 8)")
    parser.add_argument("--repeat", type=int, default=1, help="run the curve this many times, "
                        "interleaved; the table shows the median (default 1)")
    parser.add_argument("--settle-timeout", type=float, default=600.0)
    parser.add_argument("--quick", action="store_true",
                        help="small sizes: a smoke test of this script, not a measurement")
    parser.add_argument("--only", choices=("curve", "budget"))
    parser.add_argument("--json", action="store_true", help="print one JSON dict at the end")
    parser.add_argument("--logs", type=Path, help="keep worker logs and inputs in this folder")
    parser.add_argument("--_drive", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._drive:
        print(json.dumps(drive(json.loads(Path(args._drive).read_text()))))
        return 0
    args.orders = args.orders or (300 if args.quick else 3000)
    args.deletes = args.deletes or (200 if args.quick else 1000)
    counts = [int(x) for x in args.workers.split(",") if x.strip()]

    def log(line: str) -> None:
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    def on_term(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwind the context managers: cleanup runs

    signal.signal(signal.SIGTERM, on_term)
    info = machine()
    log(f"machine: {info['cores']} cores, load {info['load_1_5_15']} (1/5/15 min), "
        f"Python {info['python']}")
    started = time.monotonic()
    curve: list[dict[str, Any]] = []
    budget: list[dict[str, Any]] = []
    with ExitStack() as stack:
        if args.logs:
            args.logs.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix="scale-", dir=args.logs))
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scale-bench-")))
        if args.only in (None, "curve"):
            files = {"warmup": write_jsonl(tmp / "warmup.jsonl", orders(100, SEED_WARMUP, "W")),
                     "orders": write_jsonl(tmp / "orders.jsonl",
                                           orders(args.orders, SEED_CURVE, "C"))}
            log(f"(1) throughput curve: {args.orders} orders per point; emulator --latency "
                f"{LATENCY} --no-rate-limit; our limiter lifted; RabbitMQ + PostgreSQL; "
                f"default ORDERSYNC_LINGER")
            for _ in range(args.repeat):  # interleaved, so a burst of others' load hits all
                curve += [curve_point(n, args, files, tmp, log) for n in counts]
        if args.only in (None, "budget"):
            made = orders(args.deletes, SEED_BUDGET, "B")
            files = {"create": write_jsonl(tmp / "create.jsonl", made),
                     "delete": write_jsonl(tmp / "delete.jsonl", deletes_of(made))}
            log(f"(2) write budget: emulator and pipeline at {WRITE_RATE}, burst {WRITE_BURST}; "
                f"workload: create {args.deletes} orders, then delete all of them (one write "
                f"each, submitted at once)")
            budget = [budget_point(n, args, files, tmp, log) for n in counts]
    elapsed = time.monotonic() - started
    load_after = [round(x, 2) for x in os.getloadavg()]
    ok = all(b["within_budget"] and b["settled"] for b in budget) and \
        all(c["confirmed"] == c["orders"] for c in curve)
    if args.json:
        dump_json({"machine": info, "load_after": load_after, "seconds": round(elapsed),
                   "curve": curve, "budget": budget, "pass": ok})
    else:
        log(f"load after: {load_after}; total {elapsed:.0f} s")
        if curve:
            log("throughput curve (orders/s, submit() → settled"
                + (f"; median of {args.repeat} runs, [min–max]" if args.repeat > 1 else "")
                + "; CPU seconds over the phase incl. warm-up):")
            log("    workers   orders/s            × 1 worker   workers CPU   emulator+producer"
                "   PostgreSQL   machine busy %")
            rows = {n: [c for c in curve if c["workers"] == n] for n in counts}
            base = statistics.median(c["orders_per_s"] for c in rows[counts[0]])
            for n, runs in rows.items():
                rate = statistics.median(c["orders_per_s"] for c in runs)
                spread = (f"[{min(c['orders_per_s'] for c in runs):,.0f}–"
                          f"{max(c['orders_per_s'] for c in runs):,.0f}]") if len(runs) > 1 else ""
                log(f"    {n:>7}   {rate:>8,.0f} {spread:<11}   {rate / base:>8.2f}   "
                    f"{_median(runs, 'worker_cpu_s'):>11}   "
                    f"{_median(runs, 'emulator_producer_cpu_s'):>17}   "
                    f"{_median(runs, 'postgres_cpu_s'):>10}   "
                    f"{_median(runs, 'machine_busy_pct'):>14}")
        if budget:
            log(f"write budget ({BUDGET_PER_S}/rolling s, {BUDGET_PER_MIN}/rolling min, no 429):")
            log("    workers   writes   max/s   max/min   429s   deletes/s   result")
            for b in budget:
                log(f"    {b['workers']:>7}   {b['writes']:>6}   {b['max_per_s']:>5}   "
                    f"{b['max_per_min']:>7}   {b['rate_limited_429']:>4}   "
                    f"{b['delete_rate_per_s']:>9}   "
                    f"{'PASS' if b['within_budget'] and b['settled'] else 'FAIL'}")
        log("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as exc:
        # The run broke (a service did not answer, a worker did not start, nothing settled):
        # no figure to judge. Everything started was stopped on the way out.
        detail = f" {exc.stderr!r}" if isinstance(exc, subprocess.CalledProcessError) else ""
        print(f"scale: the run broke: {type(exc).__name__}: {exc}{detail}", file=sys.stderr)
        sys.exit(2)
