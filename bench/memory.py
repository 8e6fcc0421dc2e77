"""Peak memory of `ordersync sync` over a big JSON Lines file: it must stream, not load it.

    .venv/bin/python bench/memory.py [--records 1000000] [--json] [--keep DIR]

Generates N realistic orders (`pipeline.sample`, seeded) into a JSON Lines file, starts the
emulator with `--no-rate-limit`, and runs `ordersync sync --json FILE` in embedded mode (no
broker: the Celery worker runs inside the CLI process, state in SQLite under a temporary
ORDERSYNC_HOME) with our own limiter lifted. psutil samples the RSS of the CLI process and all
its children every 0.2 s; the emulator's order count (`/_emulator/stats`) gives the progress.

Prints the peak RSS against the target (≤ 300 MB), the elapsed time and records/s, and the RSS
curve over time and over records synced (flat when it streams). Exit status 1 when the target is
missed or the run did not settle every record; 2 when the run itself broke.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import BIN, REPO, base_env, emulator_stats, machine, stop_process_group
from emulator.testing import running_emulator
from pipeline.sample import SampleSpec, generate

TARGET_MB = 300.0
MB = 1024 * 1024
# Our own limiter must not be what limits: the emulator's limits are off too.
UNTHROTTLED = {"ORDERSYNC_WRITE_RATE": "1000000/m", "ORDERSYNC_WRITE_BURST": "100000",
               "ORDERSYNC_READ_RATE": "1000000/m"}


@dataclass
class Sample:
    t: float  # seconds since the CLI started
    rss: int  # bytes, the CLI process plus its children
    threads: int
    synced: int | None = None  # orders the emulator holds (None: not looked at this time)


@dataclass
class Sampler:
    """Samples a process tree's RSS every `interval` s on a thread, and the emulator's order
    count every `progress_every` s."""

    pid: int
    api_url: str
    interval: float = 0.2
    progress_every: float = 2.0
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        start = time.monotonic()
        next_progress = start
        while not self._stop.is_set():
            rss, threads = tree_rss(root)
            if rss is None:
                return
            now = time.monotonic()
            sample = Sample(now - start, rss, threads)
            if now >= next_progress:
                next_progress = now + self.progress_every
                try:
                    sample.synced = int(emulator_stats(self.api_url)["orders"])
                except Exception:  # the emulator is only there for progress
                    sample.synced = None
            self.samples.append(sample)
            self._stop.wait(self.interval)

    @property
    def peak(self) -> Sample | None:
        return max(self.samples, key=lambda s: s.rss, default=None)


def tree_rss(root: psutil.Process) -> tuple[int | None, int]:
    """RSS of `root` and its children (recursively), and their thread count; None once `root`
    is gone."""
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return None, 0
    rss = threads = 0
    for proc in procs:
        try:
            with proc.oneshot():
                rss += proc.memory_info().rss
                threads += proc.num_threads()
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            if proc is root:
                return None, 0
    return rss, threads


def write_orders(path: Path, count: int, seed: int) -> float:
    """Stream `count` sample orders into `path`; returns the seconds it took."""
    start = time.perf_counter()
    with path.open("w", encoding="utf-8") as handle:
        for record in generate(SampleSpec(count=count, seed=seed)):
            handle.write(json.dumps(record, separators=(",", ":")) + "\n")
    return time.perf_counter() - start


@dataclass
class Run:
    records: int
    seconds: float
    exit_code: int
    summary: dict[str, Any] | None
    stderr: str
    samples: list[Sample]

    @property
    def peak_rss(self) -> int:
        return max((s.rss for s in self.samples), default=0)


def run_sync(path: Path, records: int, home: Path, *, interval: float, timeout: float,
             concurrency: int, emulator_args: Sequence[str] = ("--no-rate-limit",),
             log: Any = print) -> Run:
    """`ordersync sync --json FILE` in embedded mode against a fresh emulator, sampled."""
    with running_emulator(*emulator_args) as url, ExitStack() as stack:
        env = base_env(url, home, **UNTHROTTLED)
        err_path = home.parent / "sync.stderr"
        err = stack.enter_context(err_path.open("w+", encoding="utf-8"))
        start = time.perf_counter()
        proc = subprocess.Popen(
            [str(BIN / "ordersync"), "sync", "--json", "--concurrency", str(concurrency),
             str(path)], env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=err,
            stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        stack.callback(stop_process_group, proc, 5.0)
        sampler = Sampler(proc.pid, url, interval=interval)
        sampler.start()
        stack.callback(sampler.stop)
        reporter = threading.Thread(target=_report_progress, args=(sampler, records, log, proc),
                                    daemon=True)
        reporter.start()
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"  timed out after {timeout:g} s: stopping the CLI")
            stop_process_group(proc, 5.0)
            out = ""
        seconds = time.perf_counter() - start
        sampler.stop()
        err.seek(0)
        stderr = err.read()
    summary = None
    if out.strip():
        try:
            summary = json.loads(out)
        except json.JSONDecodeError:
            summary = None
    return Run(records, seconds, proc.returncode if proc.returncode is not None else -1,
               summary, stderr, sampler.samples)


def _report_progress(sampler: Sampler, records: int, log: Any,
                     proc: subprocess.Popen[str]) -> None:
    """A line every ~30 s so a long run shows it is alive."""
    while proc.poll() is None:
        time.sleep(30)
        known = [s for s in sampler.samples if s.synced is not None]
        if proc.poll() is None and known:
            last = known[-1]
            log(f"  … {last.t:6.0f} s: {last.synced:>9,} of {records:,} orders in the emulator, "
                f"RSS now {last.rss / MB:.0f} MB, peak so far "
                f"{max(s.rss for s in sampler.samples) / MB:.0f} MB")


def curve(samples: Sequence[Sample], points: int = 20) -> list[dict[str, Any]]:
    """The RSS over time, in `points` equal slices: max RSS of each slice and the orders synced
    by its end."""
    if not samples:
        return []
    end = samples[-1].t or 1.0
    out: list[dict[str, Any]] = []
    synced = 0
    for i in range(points):
        lo, hi = end * i / points, end * (i + 1) / points
        part = [s for s in samples if lo <= s.t < hi or (i == points - 1 and s.t == end)]
        if not part:
            continue
        for s in part:
            if s.synced is not None:
                synced = s.synced
        out.append({"t": round(hi, 1), "rss_mb": round(max(s.rss for s in part) / MB, 1),
                    "synced": synced})
    return out


def settled_ok(run: Run) -> tuple[bool, str]:
    s = run.summary
    if s is None:
        return False, f"no summary (exit {run.exit_code}): {run.stderr.strip()[-2000:]}"
    outcomes = sum(s[k] for k in ("upserted", "patched", "deleted", "unchanged", "superseded",
                                  "dead_lettered"))
    if s["records"] != run.records or outcomes != run.records:
        return False, (f"records {s['records']}, outcomes add up to {outcomes}, "
                       f"expected {run.records}")
    if run.exit_code != 0 or s["confirmed"] != run.records:
        return False, (f"exit {run.exit_code}: {s['confirmed']} confirmed, "
                       f"{s['dead_lettered']} dead-lettered of {run.records}")
    return True, "every record confirmed"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000,
                        help="records in the generated file (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=31)
    parser.add_argument("--interval", type=float, default=0.2, help="RSS sampling interval (s)")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="embedded worker threads (`sync --concurrency`, default 4)")
    parser.add_argument("--timeout", type=float, default=5400.0,
                        help="give up after this many seconds (default 5400)")
    parser.add_argument("--target-mb", type=float, default=TARGET_MB)
    parser.add_argument("--input", type=Path, help="use this JSON Lines file (of --records "
                        "valid orders) instead of generating one")
    parser.add_argument("--keep", type=Path, help="keep the generated file, the state and the "
                        "CLI's stderr in this folder (default: a temporary folder, removed)")
    parser.add_argument("--json", action="store_true", help="print one JSON dict at the end")
    args = parser.parse_args(argv)

    def log(line: str) -> None:
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    info = machine()
    log(f"machine: {info['cores']} cores, load {info['load_1_5_15']} (1/5/15 min), "
        f"{psutil.virtual_memory().available / MB / 1024:.1f} GB available, "
        f"Python {info['python']}")
    with ExitStack() as stack:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix="memory-", dir=args.keep))
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="memory-bench-")))
        if args.input:
            path = args.input
            log(f"input: {path} ({path.stat().st_size / MB:,.0f} MB)")
        else:
            path = tmp / "orders.jsonl"
            took = write_orders(path, args.records, args.seed)
            size = path.stat().st_size / MB
            log(f"generated {args.records:,} orders in {took:.0f} s: {size:,.0f} MB of JSON Lines")
        log(f"running: ordersync sync --json --concurrency {args.concurrency} {path.name} "
            "(embedded; emulator --no-rate-limit; ORDERSYNC_WRITE_RATE/READ_RATE lifted)")
        run = run_sync(path, args.records, tmp / "home", interval=args.interval,
                       timeout=args.timeout, concurrency=args.concurrency, log=log)
    load_after = [round(x, 2) for x in os.getloadavg()]
    ok_settled, why = settled_ok(run)
    peak_mb = run.peak_rss / MB
    ok_rss = peak_mb <= args.target_mb
    points = curve(run.samples)
    rate = run.records / run.seconds if run.seconds else 0.0
    result = {"machine": info, "load_after": load_after, "records": run.records,
              "file_mb": round(path.stat().st_size / MB, 1) if path.exists() else None,
              "seconds": round(run.seconds, 1), "records_per_s": round(rate, 1),
              "peak_rss_mb": round(peak_mb, 1), "target_mb": args.target_mb,
              "samples": len(run.samples), "exit_code": run.exit_code,
              "settled": ok_settled, "settled_note": why, "curve": points,
              "summary": {k: v for k, v in (run.summary or {}).items() if k != "dead_letters"},
              "pass": ok_rss and ok_settled}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        log(f"load after: {load_after}")
        log("RSS curve (CLI + children; max per slice):")
        log("      t (s)   RSS (MB)   orders in emulator")
        for p in points:
            log(f"    {p['t']:7.1f}   {p['rss_mb']:8.1f}   {p['synced']:>12,}")
        log(f"records: {run.records:,}; elapsed {run.seconds:.1f} s → {rate:,.0f} records/s; "
            f"exit {run.exit_code}; {why}")
        log(f"peak RSS: {peak_mb:.1f} MB  target <= {args.target_mb:g} MB  "
            f"{'PASS' if ok_rss else 'FAIL'}  ({len(run.samples)} samples every "
            f"{args.interval:g} s)")
        log("PASS" if result["pass"] else "FAIL")
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
