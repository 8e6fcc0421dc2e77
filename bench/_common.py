"""Helpers shared by the bench scripts: the machine, throwaway services (RabbitMQ vhost,
PostgreSQL database, Celery worker processes), emulator stats, and figures with targets.

Everything here starts things in context managers that undo them on the way out, failures
included. Nothing needs more than the repo's venv and the local services.
"""

from __future__ import annotations

import bisect
import json
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil
import requests

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BROKER_HOST = os.environ.get("ORDERSYNC_BENCH_RABBIT", "guest:guest@127.0.0.1:5672")
PG_ADMIN = os.environ.get("ORDERSYNC_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {"cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(terse=True),
            "load_1_5_15": [round(x, 2) for x in load]}


def git_revision() -> str:
    """The commit measured, with `+dirty` when the work tree differs from it."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              check=False)
        return done.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def cpu_seconds(pids: Iterator[int] | list[int]) -> float:
    """User + system CPU seconds of these (live) processes so far, from /proc (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def cpu_clock() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores, from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / tick, sum(fields) / tick


def max_in_window(times: Sequence[float], seconds: float) -> int:
    """The most events in any half-open window [t, t + seconds), as a rate-limiting server
    counts them; `times` in any order."""
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, t + seconds) - i for i, t in enumerate(ordered)),
               default=0)


def cpu_by_role(workers: list[int]) -> dict[str, float]:
    """CPU seconds so far of every process on the machine, by what it is: the given worker
    processes, PostgreSQL, RabbitMQ, emulators, producer drivers (`--_drive`), the rest."""
    out = dict.fromkeys(("workers", "postgres", "rabbitmq", "emulator", "producer", "other"), 0.0)
    for proc in psutil.process_iter(["pid", "name", "cmdline", "cpu_times"]):
        info = proc.info
        times = info.get("cpu_times")
        if times is None:
            continue
        line = " ".join(info.get("cmdline") or [info.get("name") or ""])
        role = ("workers" if info["pid"] in workers else "postgres" if "postgres" in line
                else "rabbitmq" if "beam" in line or "rabbit" in line
                else "emulator" if "emulator" in line else "producer" if "--_drive" in line
                else "other")
        out[role] += times.user + times.system
    return out


# -- services ------------------------------------------------------------------------------------

@contextmanager
def rabbit_vhost(prefix: str = "ordersync-bench") -> Iterator[str]:
    """A RabbitMQ virtual host of our own (deleted afterwards); yields its amqp:// URL."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "add_vhost", name], capture_output=True, timeout=60,
                   check=True)
    try:
        subprocess.run(["rabbitmqctl", "set_permissions", "-p", name, "guest", ".*", ".*",
                        ".*"], capture_output=True, timeout=60, check=True)
        yield f"amqp://{BROKER_HOST}/{name}"
    finally:
        # The broker may be briefly down (others' chaos tests stop it): try for a minute.
        for _ in range(12):
            done = subprocess.run(["rabbitmqctl", "delete_vhost", name], capture_output=True,
                                  timeout=60, check=False)
            if done.returncode == 0 or b"does not exist" in done.stderr + done.stdout:
                break
            time.sleep(5)


def _psql(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql)


@contextmanager
def pg_database(prefix: str = "ordersync_bench") -> Iterator[str]:
    """A fresh PostgreSQL database (dropped afterwards); yields its SQLAlchemy URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    _psql(f'CREATE DATABASE "{name}"')
    try:
        base = PG_ADMIN.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0]
        yield f"{base}/{name}"
    finally:
        _psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def base_env(api_url: str, home: Path, **extra: str) -> dict[str, str]:
    """The environment of `ordersync` and the workers: ours minus any ORDERSYNC_/SENDCLOUD_."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERSYNC_", "SENDCLOUD_"))}
    env.update({"SENDCLOUD_API_URL": api_url, "SENDCLOUD_PUBLIC_KEY": "demo-public",
                "SENDCLOUD_SECRET_KEY": "demo-secret", "ORDERSYNC_HOME": str(home),
                "PYTHONPATH": str(REPO)})
    env.update(extra)
    return env


# Workers are killed once a run is over: Celery's shutdown signals (TERM, QUIT) only set a
# flag that an idle worker's event loop reads when it next wakes, 7-10 s later, and there is
# nothing left to finish (acks_late: an unfinished message would go back to the queue anyway).
WORKER_STOP = signal.SIGKILL


def stop_process_group(proc: subprocess.Popen[Any], grace: float = 15.0,
                       sig: signal.Signals = signal.SIGTERM) -> None:
    """Signal the group we started (the process is its leader), SIGKILL after `grace`."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass


@contextmanager
def celery_workers(env: Mapping[str, str], logdir: Path, count: int, concurrency: int,
                   *extra: str) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`count` worker processes `celery -A tasks worker --pool=threads`, each with
    `concurrency` threads, ready on return; stopped (TERM, then KILL) on exit."""
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    try:
        for i in range(count):
            log = logdir / f"worker-{i}.log"
            logs.append(log)
            procs.append(subprocess.Popen(
                [str(BIN / "celery"), "-A", "tasks", "worker", "--loglevel=INFO",
                 "--pool=threads", f"--concurrency={concurrency}", "--without-mingle",
                 "--without-gossip", "--without-heartbeat",
                 f"--hostname=bench{i}-{uuid.uuid4().hex[:6]}@%h", *extra],
                env=dict(env), cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True))
        for proc, log in zip(procs, logs, strict=True):
            _wait_for_line(log, "ready.", proc, timeout=90)
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, WORKER_STOP)
        for proc in procs:
            stop_process_group(proc, sig=WORKER_STOP)


def broker_outages(logdir: Path) -> int:
    """How often the workers whose logs are in `logdir` lost the broker (others' chaos tests
    stop RabbitMQ on shared machines): a run with outages is not a clean measurement."""
    return sum(log.read_text(errors="replace").count("Connection to broker lost")
               for log in logdir.glob("worker-*.log"))


def _wait_for_line(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited early:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)
    raise RuntimeError(f"worker not ready in {timeout}s:\n"
                       f"{log.read_text(errors='replace')[-3000:]}")


# -- the emulator's counters ---------------------------------------------------------------------

def emulator_stats(api_url: str) -> dict[str, Any]:
    got = requests.get(api_url.split("/api/v3")[0] + "/_emulator/stats", timeout=30)
    got.raise_for_status()
    data: dict[str, Any] = got.json()
    return data


def request_count(stats: Mapping[str, Any], method: str, *, ok_only: bool = False) -> int:
    by_status: Mapping[str, int] = stats["requests"].get(method, {})
    return sum(n for status, n in by_status.items()
               if not ok_only or status.startswith("2"))


def delta(before: Mapping[str, Any], after: Mapping[str, Any], method: str, *,
          ok_only: bool = False) -> int:
    return (request_count(after, method, ok_only=ok_only)
            - request_count(before, method, ok_only=ok_only))


# -- figures -------------------------------------------------------------------------------------

@dataclass
class Figure:
    """One measured figure against its target: `value op target` passes (op is >= or <=)."""

    name: str
    value: float
    op: str
    target: float
    unit: str = ""
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.value >= self.target if self.op == ">=" else self.value <= self.target

    def line(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        note = f"  ({self.note})" if self.note else ""
        return (f"{self.name}: {self.value:.3g}{unit}  target {self.op} {self.target:g}{unit}  "
                f"{'PASS' if self.passed else 'FAIL'}{note}")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "pass": self.passed}


def dump_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def run_driver(script: Path, env: dict[str, str], spec: dict[str, Any],
               tmp: Path) -> dict[str, Any]:
    """Run `script --_drive SPEC` (the producer side of a bench) in its own process group and
    return the JSON dict it prints last; its stderr is kept in `tmp` when it fails."""
    spec_path = tmp / f"drive-{time.monotonic_ns()}.json"
    spec_path.write_text(json.dumps(spec))
    proc = subprocess.Popen([sys.executable, str(script), "--_drive", str(spec_path)], env=env,
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=float(spec["timeout"]) * len(spec["phases"]) + 60)
    finally:
        stop_process_group(proc, grace=5)
    if proc.returncode != 0:
        (tmp / "driver-error.txt").write_text(err)
        last = err.strip().splitlines()[-1] if err.strip() else "no output"
        raise RuntimeError(f"driver failed (exit {proc.returncode}): {last}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result
