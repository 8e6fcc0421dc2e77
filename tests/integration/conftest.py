"""Real services for integration tests: the emulator over HTTP, Celery workers as separate OS
processes on RabbitMQ with PostgreSQL state, and `ordersync` run as a user would run it.

Each test gets its own PostgreSQL database and purged queues, so tests do not see each other.
When RabbitMQ or PostgreSQL is unreachable the tests are skipped locally and fail under CI.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
BROKER = os.environ.get("ORDERSYNC_TEST_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
PG_ADMIN = os.environ.get("ORDERSYNC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
CELERY = str(Path(sys.executable).with_name("celery"))
ORDERSYNC = str(Path(sys.executable).with_name("ordersync"))


def _answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def require_services() -> None:
    missing = [name for name, port in (("RabbitMQ", 5672), ("PostgreSQL", 5432))
               if not _answers(port)]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{', '.join(missing)} not reachable (CI must start them)")
        pytest.skip(f"{', '.join(missing)} not reachable")


def _psql(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test."""
    require_services()
    name = f"ordersync_test_{uuid.uuid4().hex[:10]}"
    _psql(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0] + "/" + name
    _psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def rabbit_vhost() -> Iterator[str]:
    """A RabbitMQ virtual host of our own: tests (and people running them side by side) never
    see each other's messages. Falls back to the default vhost where rabbitmqctl is missing."""
    name = f"ordersync-test-{uuid.uuid4().hex[:10]}"
    made = subprocess.run(["rabbitmqctl", "add_vhost", name], capture_output=True,
                          timeout=60, check=False).returncode == 0 if _has("rabbitmqctl") else False
    if not made:
        yield BROKER
        return
    subprocess.run(["rabbitmqctl", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
                   capture_output=True, timeout=60, check=True)
    try:
        host = BROKER.split("://", 1)[1].split("/", 1)[0]  # user:password@host:port
        yield f"amqp://{host}/{name}"
    finally:
        subprocess.run(["rabbitmqctl", "delete_vhost", name], capture_output=True, timeout=60,
                       check=False)


def _has(command: str) -> bool:
    import shutil

    return shutil.which(command) is not None


@dataclass
class Cluster:
    """Environment for `ordersync` and `celery -A tasks worker` processes of one test."""

    env: dict[str, str]
    tmp: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_worker(self, *extra: str, concurrency: int = 4) -> subprocess.Popen[bytes]:
        log = self.tmp / f"worker-{len(self.workers)}.log"
        proc = subprocess.Popen(
            [CELERY, "-A", "tasks", "worker", "--loglevel=INFO", "--pool=threads",
             f"--concurrency={concurrency}", "--without-mingle", "--without-gossip",
             f"--hostname=w{len(self.workers)}-{uuid.uuid4().hex[:6]}@%h", *extra],
            env=self.env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True)
        self.workers.append(proc)
        _wait_for_line(log, "ready.", proc, timeout=60)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        # Killed: Celery's shutdown signals only set a flag that an idle worker's event loop
        # reads when it next wakes, 7-10 s later; at teardown there is nothing left to finish.
        for proc in self.workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in self.workers:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def ordersync(self, *args: str, timeout: float = 240,
                  check_json: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([ORDERSYNC, *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def sync(self, path: Path, *extra: str, timeout: float = 240) -> tuple[int, dict[str, Any]]:
        done = self.ordersync("sync", "--json", str(path), *extra, timeout=timeout)
        assert done.returncode in (0, 1), f"exit {done.returncode}: {done.stderr[-3000:]}"
        return done.returncode, json.loads(done.stdout)


def _wait_for_line(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited early:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"worker not ready in {timeout}s:\n{tail}")


def base_env(api_url: str, tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ORDERSYNC_", "SENDCLOUD_"))}
    env.update({
        "SENDCLOUD_API_URL": api_url,
        "SENDCLOUD_PUBLIC_KEY": "demo-public",
        "SENDCLOUD_SECRET_KEY": "demo-secret",
        "ORDERSYNC_HOME": str(tmp / "home"),
        "ORDERSYNC_LINGER": "0.3",
    })
    env.update(extra)
    return env


@contextmanager
def cluster(api_url: str, tmp: Path, database: str, **extra: str) -> Iterator[Cluster]:
    """Distributed mode: RabbitMQ broker, PostgreSQL store; start workers with start_worker."""
    with rabbit_vhost() as broker:
        env = base_env(api_url, tmp, ORDERSYNC_BROKER_URL=broker,
                       ORDERSYNC_DATABASE_URL=database, **extra)
        c = Cluster(env=env, tmp=tmp)
        try:
            yield c
        finally:
            c.stop_all()


@contextmanager
def emulator(*args: str) -> Iterator[str]:
    from emulator.testing import running_emulator

    with running_emulator(*args) as url:
        yield url


def emulator_root(api_url: str) -> str:
    return api_url.split("/api/v3")[0]


def emulator_orders(api_url: str) -> list[dict[str, Any]]:
    got = requests.get(f"{emulator_root(api_url)}/_emulator/orders", timeout=30)
    got.raise_for_status()
    data: list[dict[str, Any]] = got.json()
    return data


def emulator_stats(api_url: str) -> dict[str, Any]:
    got = requests.get(f"{emulator_root(api_url)}/_emulator/stats", timeout=30)
    got.raise_for_status()
    data: dict[str, Any] = got.json()
    return data


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    return path
