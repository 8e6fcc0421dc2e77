"""Proof under fire: the whole pipeline against a faulty API, with workers killed and the broker
restarted, then the emulator's state compared with an independent oracle.

    .venv/bin/python bench/chaos.py                 # ≥ 10,000 operations (≈ 5–10 min on 2 cores)
    .venv/bin/python bench/chaos.py --quick --json  # the CI size (≈ 2 min), JSON on stdout

What it does:

1. Generates seeded producer records with `pipeline.sample.generate_labeled`: upserts, newer
   versions (half of them arriving before the older one), patches, deletes, 2 % of the orders
   only the server rejects (integration 999), 1 % the client's pre-flight rejects, 20 % written
   loosely (country names, "eur", "2", naive timestamps).
2. Starts the emulator with faults (conflict 10 %, server_error 5 %, timeout 2 % (held
   `--hang-seconds`, then closed), lost_response 2 %, rate_limit 2 %, slow 10 %), a throwaway
   RabbitMQ vhost and PostgreSQL database, and 3 `celery -A tasks worker` processes.
3. Hands the records over with `ordersync submit` in several submissions, SIGKILLs a random
   worker about every `--kill-every` seconds (and starts a new one), restarts RabbitMQ once
   (`rabbitmqctl stop_app` / `start_app`) when ~40 % of the records are settled, and waits
   until every submission is settled (`Store.is_settled`).
4. Compares what the emulator holds with the final state computed here from the input alone
   (see `Oracle`): newest operation per order by version, ties by arrival; deletes remove;
   patches apply to the newest full order; invalid records excluded.

Every invariant count printed must be 0; the exit status is 1 otherwise (2: the run could not be
set up). Needs RabbitMQ (with `rabbitmqctl`, run as a user allowed to stop/start the app) and
PostgreSQL on 127.0.0.1.

How the emulator's orders are compared: the expected order is replayed from the *raw* records
by this script (its own parsing of identity and version, its own ordering), then put through
`pipeline.normalize.normalize_order` — loose records ("Netherlands", "eur", "2") only have a
meaning once normalized, and normalization has its own unit and property tests. The stored
order must equal that normalized order exactly (every field). Deciding *which* operation wins,
and what a patch does to which order, never uses the pipeline's outbox code.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._common import max_in_window  # noqa: E402
from emulator.testing import running_emulator  # noqa: E402
from pipeline.errors import RecordRejected  # noqa: E402
from pipeline.normalize import normalize_order  # noqa: E402
from pipeline.patching import apply_patch  # noqa: E402
from pipeline.sample import SampleRecord, SampleSpec, generate_labeled  # noqa: E402
from pipeline.store import OUTCOMES, TERMINAL, Store  # noqa: E402

BIN = Path(sys.executable).parent
BROKER_HOST = os.environ.get("ORDERSYNC_CHAOS_RABBIT", "guest:guest@127.0.0.1:5672")
PG_ADMIN = os.environ.get("ORDERSYNC_CHAOS_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
FAULTS = "conflict=0.1,server_error=0.05,timeout=0.02,lost_response=0.02,rate_limit=0.02,slow=0.1"

# The counts that must all be 0 (the run fails otherwise).
INVARIANTS = ("unsettled", "miscounted", "missing", "stale", "mismatched", "undeleted",
              "duplicated", "unexpected", "valid_dead_lettered", "invalid_not_dead_lettered",
              "incomplete_dead_letters")


def log(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# =================================================================================================
# Configuration


@dataclass(frozen=True)
class Config:
    operations: int = 10_000
    seed: int = 7
    workers: int = 3
    concurrency: int = 4
    submissions: int = 4
    submit_gap: float = 4.0
    kill_every: float = 10.0
    restart_at: float = 0.4  # fraction of records settled when RabbitMQ is restarted
    broker_down: float = 3.0  # seconds between stop_app and start_app
    faults: str = FAULTS
    hang_seconds: float = 3.0
    slow_seconds: float = 2.0
    write_rate: str = "1200/m"
    write_burst: int = 20
    read_rate: str = "3000/m"
    linger: float = 0.5
    timeout: float = 1500.0
    stall: float = 180.0  # give up when nothing settles for this long
    restart_broker: bool = True
    database_url: str | None = None
    broker_url: str | None = None
    keep: bool = False

    def spec(self, count: int) -> SampleSpec:
        return SampleSpec(count=count, seed=self.seed, integrations=(101, 102, 103),
                          invalid_client_rate=0.01, invalid_server_rate=0.02, update_rate=0.2,
                          out_of_order_rate=0.5, patch_rate=0.05, delete_rate=0.05,
                          loose_rate=0.2)


QUICK = dict(operations=2_000, submissions=2, submit_gap=2.0, kill_every=8.0, timeout=200.0,
             stall=100.0)


def generate(cfg: Config) -> list[SampleRecord]:
    """The smallest sample with at least `cfg.operations` records."""
    count = max(1, math.ceil(cfg.operations / 1.29))
    while True:
        records = list(generate_labeled(cfg.spec(count)))
        if len(records) >= cfg.operations:
            return records
        count += max(1, (cfg.operations - len(records)) // 2)


# =================================================================================================
# The oracle: the final state, from the input alone

Key = tuple[int, str]
DELETED = "deleted"


@dataclass(frozen=True)
class Op:
    kind: str  # upsert | patch | delete
    key: Key
    version: datetime
    arrival: int
    body: Mapping[str, Any]  # upsert: the raw order; patch: the raw changes


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)  # naive = UTC


def read_op(record: Mapping[str, Any], arrival: int) -> Op:
    """A producer record (CONTRACT §1) → what it asks for, read without pipeline.records."""
    if record.get("op") in ("patch", "delete"):
        key = (int(record["integration_id"]), str(record["order_id"]))
        return Op(str(record["op"]), key, _instant(str(record["version"])), arrival,
                  record.get("changes", {}))
    order = record["order"] if record.get("op") == "upsert" else record
    details = order["order_details"]
    key = (int(details["integration"]["id"]), str(order["order_id"]))
    version = details.get("order_updated_at") or details["order_created_at"]
    return Op("upsert", key, _instant(str(version)), arrival, order)


@dataclass
class Oracle:
    """Final state per order: replay each order's operations sorted by (version, arrival).
    An upsert sets the order, a patch changes the newest full order before it, a delete removes
    it. `history` keeps every state an order went through (to tell stale from corrupt)."""

    expected: dict[Key, dict[str, Any] | str] = field(default_factory=dict)
    history: dict[Key, list[dict[str, Any]]] = field(default_factory=dict)
    invalid: dict[str, str] = field(default_factory=dict)  # order_id → kind
    patch_without_order: int = 0

    @classmethod
    def build(cls, records: Sequence[SampleRecord]) -> Oracle:
        oracle = cls()
        ops: dict[Key, list[Op]] = defaultdict(list)
        for arrival, sample in enumerate(records):
            if sample.kind in ("invalid_client", "invalid_server"):
                order = sample.record.get("order", sample.record)
                oracle.invalid[str(order["order_id"])] = sample.kind
                continue
            op = read_op(sample.record, arrival)
            ops[op.key].append(op)
        for key, items in ops.items():
            oracle._replay(key, sorted(items, key=lambda o: (o.version, o.arrival)))
        return oracle

    def _replay(self, key: Key, ops: Sequence[Op]) -> None:
        state: dict[str, Any] | str | None = None
        seen: list[dict[str, Any]] = []
        for op in ops:
            if op.kind == "upsert":
                state = normalize_order(op.body)
            elif op.kind == "delete":
                state = DELETED
            elif isinstance(state, dict):
                state = apply_patch(state, op.body)
            else:  # a patch of an order that does not exist: nothing to apply it to
                self.patch_without_order += 1
                continue
            if isinstance(state, dict):
                seen.append(state)
        if state is not None:
            self.expected[key] = state
        self.history[key] = seen


# =================================================================================================
# Comparing the emulator with the oracle


def _key_of(order: Mapping[str, Any]) -> Key:
    return int(order["order_details"]["integration"]["id"]), str(order["order_id"])


def _dead_letter_order_id(letter: Mapping[str, Any]) -> str | None:
    if letter.get("order_id"):
        return str(letter["order_id"])
    record = letter.get("record")
    if isinstance(record, Mapping):
        inner = record.get("order", record)
        if isinstance(inner, Mapping) and inner.get("order_id") is not None:
            return str(inner["order_id"])
    return None


def compare(oracle: Oracle, held: Sequence[Mapping[str, Any]],
            letters: Sequence[Mapping[str, Any]]) -> tuple[dict[str, int], dict[str, list[Any]]]:
    """Invariant counts, and a few examples of each violation for the report."""
    counts: Counter[str] = Counter()
    examples: dict[str, list[Any]] = defaultdict(list)

    def bad(name: str, example: Any) -> None:
        counts[name] += 1
        if len(examples[name]) < 5:
            examples[name].append(example)

    stored: dict[Key, list[Mapping[str, Any]]] = defaultdict(list)
    for item in held:
        stored[(int(item["integration_id"]), str(item["order_id"]))].append(item["order"])
    for key, orders in stored.items():
        if len(orders) > 1:
            bad("duplicated", list(key))
    for key, want in oracle.expected.items():
        got = stored.get(key)
        if want == DELETED:
            if got:
                bad("undeleted", list(key))
            continue
        if not got:
            bad("missing", list(key))
            continue
        if got[0] == want:
            continue
        if any(got[0] == earlier for earlier in oracle.history.get(key, [])):
            bad("stale", list(key))
        else:
            bad("mismatched", {"key": list(key), "diff": _diff(want, got[0])})
    for key in stored.keys() - oracle.expected.keys():
        bad("unexpected", list(key))

    lettered: dict[str, int] = Counter()
    for letter in letters:
        order_id = _dead_letter_order_id(letter)
        if order_id is not None:
            lettered[order_id] += 1
        if not (letter.get("record") and letter.get("reason") and letter.get("errors")
                and isinstance(letter.get("attempts"), int)):
            bad("incomplete_dead_letters", {"order_id": order_id, "reason": letter.get("reason")})
        if order_id not in oracle.invalid:
            bad("valid_dead_lettered", {"key": [letter.get("integration_id"), order_id],
                                        "reason": letter.get("reason"),
                                        "errors": (letter.get("errors") or [])[:2]})
    for order_id in oracle.invalid:
        if not lettered.get(order_id):
            bad("invalid_not_dead_lettered", order_id)
    return {name: counts.get(name, 0) for name in INVARIANTS}, dict(examples)


def _diff(want: Any, got: Any, path: str = "") -> list[str]:
    """Where two JSON trees differ (the first few places)."""
    if isinstance(want, Mapping) and isinstance(got, Mapping):
        out: list[str] = []
        for name in sorted(set(want) | set(got)):
            if want.get(name) != got.get(name):
                out += _diff(want.get(name), got.get(name), f"{path}/{name}")
        return out[:5]
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        out = []
        for i, (a, b) in enumerate(zip(want, got, strict=True)):
            if a != b:
                out += _diff(a, b, f"{path}/{i}")
        return out[:5]
    return [f"{path}: expected {json.dumps(want)[:80]}, got {json.dumps(got)[:80]}"]


# =================================================================================================
# Services: a RabbitMQ vhost, a PostgreSQL database, worker processes


def _answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _rabbitmqctl(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


@contextmanager
def rabbit_vhost() -> Iterator[str]:
    name = f"ordersync-chaos-{uuid.uuid4().hex[:8]}"
    made = _rabbitmqctl("add_vhost", name)
    if made.returncode != 0:
        raise RuntimeError(f"rabbitmqctl add_vhost failed: {made.stderr.strip()}")
    try:
        _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield f"amqp://{BROKER_HOST}/{name}"
    finally:
        _rabbitmqctl("delete_vhost", name)


def _psql(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql.encode())


@contextmanager
def pg_database() -> Iterator[str]:
    name = f"ordersync_chaos_{uuid.uuid4().hex[:8]}"
    _psql(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0] + \
            "/" + name
    finally:
        _psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Broker:
    """Restarts the shared RabbitMQ node's app (`stop_app`/`start_app`): short, and always
    started again, whatever happens in between."""

    def __init__(self) -> None:
        self.stopped = False
        self.restarts: list[dict[str, float]] = []

    def restart(self, down: float, t0: float) -> None:
        started = time.monotonic()
        self.stopped = True
        try:
            done = _rabbitmqctl("stop_app")
            if done.returncode != 0:
                raise RuntimeError(f"rabbitmqctl stop_app failed: {done.stderr.strip()}")
            time.sleep(down)
        finally:
            self.ensure_running()
        self.restarts.append({"at_s": round(started - t0, 1),
                              "outage_s": round(time.monotonic() - started, 1)})

    def ensure_running(self) -> None:
        if not self.stopped:
            return
        for _ in range(3):
            if _rabbitmqctl("start_app").returncode == 0:
                break
            time.sleep(2)
        deadline = time.monotonic() + 60
        while not _answers(5672) and time.monotonic() < deadline:
            time.sleep(0.5)
        self.stopped = False


class Workers:
    """`celery -A tasks worker` processes (threads pool), each in its own process group."""

    def __init__(self, env: Mapping[str, str], logdir: Path, concurrency: int) -> None:
        self.env = dict(env)
        self.logdir = logdir
        self.concurrency = concurrency
        self.live: list[subprocess.Popen[bytes]] = []
        self.all: list[subprocess.Popen[bytes]] = []
        self.lock = threading.Lock()
        self.started = 0

    def start(self, n: int = 1) -> None:
        fresh: list[tuple[subprocess.Popen[bytes], Path]] = []
        for _ in range(n):
            log_path = self.logdir / f"worker-{self.started}.log"
            proc = subprocess.Popen(
                [str(BIN / "celery"), "-A", "tasks", "worker", "--loglevel=INFO",
                 "--pool=threads", f"--concurrency={self.concurrency}", "--without-mingle",
                 "--without-gossip", f"--hostname=chaos{self.started}-{uuid.uuid4().hex[:6]}@%h"],
                env=self.env, cwd=REPO, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
            self.started += 1
            fresh.append((proc, log_path))
            with self.lock:
                self.all.append(proc)
        for proc, log_path in fresh:
            _wait_for_line(log_path, "ready.", proc, timeout=120)
            with self.lock:
                self.live.append(proc)

    def kill_one(self, rng: random.Random) -> int | None:
        with self.lock:
            if not self.live:
                return None
            victim = self.live.pop(rng.randrange(len(self.live)))
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
        return victim.pid

    def stop_all(self, grace: float = 30.0) -> None:
        with self.lock:
            procs = list(self.all)
            self.live.clear()
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)  # after the drain: see _common.WORKER_STOP
        for proc in procs:
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def _wait_for_line(path: Path, text: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited early:\n{path.read_text(errors='replace')[-2000:]}")
        time.sleep(0.2)
    raise RuntimeError(f"worker not ready in {timeout:g}s (see {path})")


class Killer(threading.Thread):
    """SIGKILLs a random worker every `every` seconds (±20 %) and starts a replacement."""

    def __init__(self, workers: Workers, every: float, rng: random.Random, t0: float) -> None:
        super().__init__(daemon=True, name="chaos-killer")
        self.workers = workers
        self.every = every
        self.rng = rng
        self.t0 = t0
        self.halt = threading.Event()
        self.kills: list[float] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.halt.wait(self.every * self.rng.uniform(0.8, 1.2)):
                if self.workers.kill_one(self.rng) is None:
                    continue
                self.kills.append(round(time.monotonic() - self.t0, 1))
                if not self.halt.is_set():
                    self.workers.start(1)
        except BaseException as exc:  # reported by the main thread
            self.error = exc

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=180)


# =================================================================================================
# The run


def _emulator(api_url: str, what: str, **params: str) -> Any:
    got = requests.get(api_url.split("/api/v3")[0] + f"/_emulator/{what}", params=params,
                       timeout=120)
    got.raise_for_status()
    return got.json()


def _submit(env: Mapping[str, str], path: Path) -> str:
    done = subprocess.run([str(BIN / "ordersync"), "submit", "--json", str(path)], env=dict(env),
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ordersync submit failed ({done.returncode}): {done.stderr.strip()}")
    return str(json.loads(done.stdout)["submission"])


def _settled(store: Store, sids: Sequence[str]) -> tuple[int, int]:
    return _settled_rows([store.submission(sid) for sid in sids])


def run(cfg: Config) -> dict[str, Any]:
    for port, name in ((5672, "RabbitMQ"), (5432, "PostgreSQL")):
        if not _answers(port):
            raise RuntimeError(f"{name} is not reachable on 127.0.0.1:{port}")
    records = generate(cfg)
    oracle = Oracle.build(records)
    kinds = Counter(r.kind for r in records)
    log(f"{len(records)} operations ({dict(kinds)}), {len(oracle.expected)} valid orders")

    broker = Broker()
    with ExitStack() as stack:
        rundir = Path(tempfile.mkdtemp(prefix="ordersync-chaos-"))
        log(f"logs in {rundir}")
        database = cfg.database_url or stack.enter_context(pg_database())
        vhost = cfg.broker_url or stack.enter_context(rabbit_vhost())
        api_url = stack.enter_context(running_emulator(
            "--faults", cfg.faults, "--seed", str(cfg.seed),
            "--hang-seconds", str(cfg.hang_seconds), "--slow-seconds", str(cfg.slow_seconds),
            "--write-rate", cfg.write_rate, "--write-burst", str(cfg.write_burst),
            "--read-rate", cfg.read_rate))
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("ORDERSYNC_", "SENDCLOUD_"))}
        env.update({
            "SENDCLOUD_API_URL": api_url, "SENDCLOUD_PUBLIC_KEY": "demo-public",
            "SENDCLOUD_SECRET_KEY": "demo-secret", "ORDERSYNC_HOME": str(rundir / "home"),
            "ORDERSYNC_BROKER_URL": vhost, "ORDERSYNC_DATABASE_URL": database,
            "ORDERSYNC_LINGER": str(cfg.linger), "ORDERSYNC_WRITE_RATE": cfg.write_rate,
            "ORDERSYNC_WRITE_BURST": str(cfg.write_burst), "ORDERSYNC_READ_RATE": cfg.read_rate,
            "PYTHONPATH": str(REPO)})
        store = Store(database)
        stack.callback(store.close)
        workers = Workers(env, rundir, cfg.concurrency)
        stack.callback(workers.stop_all, grace=5.0)  # on the way out after a failure: be quick
        stack.callback(broker.ensure_running)  # runs before stop_all: LIFO

        workers.start(cfg.workers)
        t0 = time.monotonic()
        killer = Killer(workers, cfg.kill_every, random.Random(f"{cfg.seed}/kill"), t0)
        killer.start()
        stack.callback(killer.stop)

        parts = _split(records, cfg.submissions)
        sids: list[str] = []
        for i, part in enumerate(parts):
            path = rundir / f"submission-{i}.jsonl"
            with path.open("w", encoding="utf-8") as handle:
                for sample in part:
                    handle.write(json.dumps(sample.record) + "\n")
            sids.append(_submit(env, path))
            log(f"submission {i + 1}/{len(parts)}: {len(part)} records as {sids[-1]}")
            if i + 1 < len(parts):
                time.sleep(cfg.submit_gap)

        drained = _drain(cfg, store, sids, broker, killer, t0)
        elapsed = time.monotonic() - t0
        killer.stop()
        workers.stop_all()
        if killer.error is not None:
            raise RuntimeError(f"restarting a worker failed: {killer.error}")

        held = _emulator(api_url, "orders")
        stats = _emulator(api_url, "stats")
        admitted = [float(t) for t, _method, status in stats["writes"] if status != 429]
        letters = [{"integration_id": d.integration_id, "order_id": d.order_id,
                    "reason": d.reason, "record": d.record, "errors": d.errors,
                    "attempts": d.attempts}
                   for d in store.dead_letters(include_replayed=True)]
        counters = store.counters()
        status = store.status()
        left = _outbox_rows(store)
        rows = [store.submission(sid) for sid in sids]

    invariants, examples = compare(oracle, held, letters)
    settled, total = _settled_rows(rows)
    invariants["unsettled"] = max(0, total - settled)
    # is_settled only asks for "at least": a record counted twice would hide one never counted.
    invariants["miscounted"] = sum(max(0, _settled_rows([r])[0] - r["records"]) for r in rows)
    ok = drained and not any(invariants.values())
    if ok and not cfg.keep:
        _remove(rundir)
    expected_present = sum(1 for v in oracle.expected.values() if v != DELETED)
    return {
        "ok": ok,
        "invariants": invariants,
        "examples": examples,
        "input": {"operations": len(records), "kinds": dict(kinds),
                  "valid_orders": len(oracle.expected), "expected_present": expected_present,
                  "expected_deleted": len(oracle.expected) - expected_present,
                  "invalid_orders": len(oracle.invalid), "submissions": len(rows)},
        "outcomes": {name: sum(int(r[name]) for r in rows) for name in ("records", *OUTCOMES)},
        "emulator": {"orders_held": len(held), "requests": stats["requests"],
                     "faults": stats["faults"], "over_limit_429": _over_limit(stats),
                     "writes_max_1s": max_in_window(admitted, 1.0),
                     "writes_max_60s": max_in_window(admitted, 60.0)},
        "store": {"counters": dict(counters), "dead_letters": len(letters),
                  "dead_letter_reasons": dict(Counter(_reason(d) for d in letters)),
                  "outbox_left": status["outbox"], "outbox_rows": left,
                  "staged_chunks": status["staged_chunks"]},
        "chaos": {"workers": cfg.workers, "sigkills": len(killer.kills),
                  "kill_times_s": killer.kills, "workers_started": workers.started,
                  "broker_restarts": broker.restarts},
        "seconds": round(elapsed, 1),
        "config": asdict(cfg),
        "logs": None if ok and not cfg.keep else str(rundir),
    }


def _reason(letter: Mapping[str, Any]) -> str:
    """A dead letter's reason without the details that differ per order."""
    return str(letter.get("reason", "")).split(":")[0][:60]


def _settled_rows(rows: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    return (sum(int(r[name]) for r in rows for name in TERMINAL),
            sum(int(r["records"]) for r in rows))


def _over_limit(stats: Mapping[str, Any]) -> int:
    """429s the emulator's own limiter answered (beyond the injected rate_limit faults)."""
    answered = sum(int(by.get("429", 0)) for by in stats["requests"].values())
    return max(0, answered - int(stats["faults"].get("rate_limit", 0)))


def _split(records: Sequence[SampleRecord], parts: int) -> list[Sequence[SampleRecord]]:
    size = math.ceil(len(records) / max(1, parts))
    return [records[i:i + size] for i in range(0, len(records), size)]


def _drain(cfg: Config, store: Store, sids: Sequence[str], broker: Broker, killer: Killer,
           t0: float) -> bool:
    """Wait until every submission is settled; restart the broker once on the way."""
    deadline = t0 + cfg.timeout
    last_note = 0.0
    progress = (-1, time.monotonic())  # (settled, when it last changed)
    while True:
        settled, total = _settled(store, sids)
        restarted = bool(broker.restarts) or not cfg.restart_broker
        if all(store.is_settled(sid) for sid in sids) and restarted:
            return True
        now = time.monotonic()
        if not restarted and settled >= cfg.restart_at * total:
            log(f"restarting RabbitMQ ({settled}/{total} settled)")
            broker.restart(cfg.broker_down, t0)
            log(f"RabbitMQ is back after {broker.restarts[-1]['outage_s']} s")
            continue
        if settled != progress[0]:
            progress = (settled, now)
        stalled = now - progress[1] > cfg.stall
        if now > deadline or stalled:
            why = f"no progress for {cfg.stall:g} s" if stalled else f"timeout {cfg.timeout:g} s"
            log(f"NOT SETTLED ({why}): {settled}/{total}; outbox {_outbox_rows(store)}")
            return False
        if now - last_note > 15:
            outbox = store.status()["outbox"]
            log(f"{settled}/{total} settled, kills {len(killer.kills)}, outbox {outbox}")
            last_note = now
        time.sleep(0.5)


def _outbox_rows(store: Store) -> list[dict[str, Any]]:
    """What is left in the outbox, by state, kind and batch, with the age of the claim."""
    from sqlalchemy import func, select

    from pipeline.tables import outbox

    now = time.time()
    with store.engine.connect() as conn:
        rows = conn.execute(select(outbox.c.state, outbox.c.kind, outbox.c.batch_id,
                                   func.count(), func.min(outbox.c.lease_until),
                                   func.max(outbox.c.attempts))
                            .group_by(outbox.c.state, outbox.c.kind, outbox.c.batch_id)).all()
    return [{"state": state, "kind": kind, "batch": batch, "rows": int(n),
             "claimed_s_ago": round(now - claimed, 1) if claimed else None,
             "attempts": attempts}
            for state, kind, batch, n, claimed, attempts in rows][:20]


def _remove(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def print_report(report: Mapping[str, Any]) -> None:
    inp, out = report["input"], report["outcomes"]
    chaos, emu, st = report["chaos"], report["emulator"], report["store"]
    print(f"chaos run: {inp['operations']} operations in {inp['submissions']} submissions, "
          f"{report['seconds']} s")
    print(f"  input: {inp['kinds']}")
    print(f"  orders: {inp['valid_orders']} valid ({inp['expected_present']} present at the end, "
          f"{inp['expected_deleted']} deleted), {inp['invalid_orders']} invalid")
    print(f"  chaos: {chaos['sigkills']} workers SIGKILLed at {chaos['kill_times_s']} s; "
          f"{chaos['workers_started']} started; RabbitMQ restarts {chaos['broker_restarts']}")
    print(f"  outcomes: {out}")
    print(f"  emulator: {emu['orders_held']} orders held; faults injected {emu['faults']}; "
          f"429 beyond the injected ones: {emu['over_limit_429']}; most writes admitted in "
          f"1 s: {emu['writes_max_1s']}, in 60 s: {emu['writes_max_60s']}")
    print("  emulator requests: " + "; ".join(
        f"{m} " + ", ".join(f"{s}×{n}" for s, n in sorted(by.items()))
        for m, by in sorted(emu["requests"].items())))
    print(f"  store counters: {st['counters']}; dead letters {st['dead_letters']} "
          f"{st['dead_letter_reasons']}; outbox left {st['outbox_left']}")
    for row in st["outbox_rows"][:5]:
        print(f"      left: {row}")
    print("invariants (all must be 0):")
    for name, value in report["invariants"].items():
        flag = "ok" if value == 0 else "FAIL"
        print(f"  {name:<26} {value:>6}  {flag}")
        for example in report["examples"].get(name, [])[:3]:
            print(f"      e.g. {json.dumps(example)[:300]}")
    if report["logs"]:
        print(f"worker logs kept in {report['logs']}")
    print("RESULT: " + ("PASS" if report["ok"] else "FAIL"))


def parse_args(argv: Sequence[str] | None) -> tuple[Config, bool]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="CI size: ~2,000 operations, ~2 min")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("--operations", type=int, help="at least this many records (default 10000)")
    p.add_argument("--seed", type=int, default=Config.seed)
    p.add_argument("--workers", type=int, default=Config.workers)
    p.add_argument("--concurrency", type=int, default=Config.concurrency)
    p.add_argument("--submissions", type=int)
    p.add_argument("--kill-every", type=float, help="seconds between SIGKILLs (default 10)")
    p.add_argument("--broker-down", type=float, default=Config.broker_down)
    p.add_argument("--restart-at", type=float, default=Config.restart_at,
                   help="fraction of records settled when RabbitMQ is restarted")
    p.add_argument("--faults", default=Config.faults)
    p.add_argument("--hang-seconds", type=float, default=Config.hang_seconds)
    p.add_argument("--slow-seconds", type=float, default=Config.slow_seconds)
    p.add_argument("--write-rate", default=Config.write_rate)
    p.add_argument("--write-burst", type=int, default=Config.write_burst)
    p.add_argument("--read-rate", default=Config.read_rate)
    p.add_argument("--linger", type=float, default=Config.linger)
    p.add_argument("--timeout", type=float, help="give up waiting after SECONDS")
    p.add_argument("--stall", type=float,
                   help="give up when nothing settles for SECONDS (default 180)")
    p.add_argument("--no-broker-restart", action="store_true",
                   help="diagnosis only: do not restart RabbitMQ")
    p.add_argument("--database-url", help="use this database (default: a throwaway one)")
    p.add_argument("--broker-url", help="use this vhost (default: a throwaway one)")
    p.add_argument("--keep", action="store_true", help="keep the worker logs")
    a = p.parse_args(argv)
    base: dict[str, Any] = dict(QUICK) if a.quick else {}
    for name in ("operations", "submissions", "kill_every", "timeout", "stall"):
        if getattr(a, name) is not None:
            base[name] = getattr(a, name)
    cfg = Config(seed=a.seed, workers=a.workers, concurrency=a.concurrency,
                 broker_down=a.broker_down, restart_at=a.restart_at, faults=a.faults,
                 hang_seconds=a.hang_seconds, slow_seconds=a.slow_seconds,
                 write_rate=a.write_rate, write_burst=a.write_burst, read_rate=a.read_rate,
                 linger=a.linger, database_url=a.database_url, broker_url=a.broker_url,
                 keep=a.keep, restart_broker=not a.no_broker_restart, **base)
    return cfg, a.json


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds the ExitStack: everything is cleaned


def main(argv: Sequence[str] | None = None) -> int:
    cfg, as_json = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        report = run(cfg)
    except (RuntimeError, RecordRejected, requests.RequestException) as exc:
        log(f"the run could not be completed: {exc}")
        return 2
    except KeyboardInterrupt:
        log("interrupted: workers stopped, RabbitMQ running, vhost and database removed")
        return 130
    if as_json:
        json.dump(report, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print_report(report)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
