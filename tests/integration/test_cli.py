"""`ordersync` as a user runs it: a real process, the emulator over HTTP, embedded mode (no
broker) with the state under the test's tmp dir.

Every error a user can provoke ends as ONE line on stderr naming the problem (and the fix),
exit 2, never a traceback (CONTRACT §3). The happy paths: summaries, status, dead letters,
replay, sample, stdin, demo.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline.sample import SampleSpec, generate
from tests.integration.conftest import ORDERSYNC, base_env, emulator, write_jsonl

pytestmark = pytest.mark.integration

OUTCOMES = ("upserted", "patched", "deleted", "unchanged", "superseded", "dead_lettered")
PREFLIGHT_REASONS = ("order failed validation", "order cannot be normalized")


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    """One emulator for the module; each test has its own state store, so they do not meet."""
    with emulator("--no-rate-limit") as url:
        yield url


def closed_port() -> int:
    """A port nothing listens on (bound once, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ordersync(*args: str, env: dict[str, str], cwd: Path | None = None,
              stdin: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ORDERSYNC, *args], env=env, cwd=cwd, input=stdin,
                          stdin=None if stdin is not None else subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout, check=False)


def json_out(done: subprocess.CompletedProcess[str]) -> Any:
    """stdout must be one JSON document and nothing else."""
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        pytest.fail(f"stdout is not only JSON ({exc}): {done.stdout[:500]!r}\n"
                    f"stderr: {done.stderr[-2000:]}")


def settled_exactly_once(summary: dict[str, Any]) -> None:
    """CONTRACT §3: every record ends in exactly one outcome."""
    assert sum(summary[k] for k in OUTCOMES) == summary["records"], summary
    assert summary["confirmed"] == summary["upserted"], summary
    assert summary["dead_lettered"] == len(summary["dead_letters"]), summary


def one_record(n: int = 1) -> dict[str, Any]:
    return next(iter(generate(SampleSpec(count=1, seed=100 + n))))


# ---------------------------------------------------------------------------------------------
# Errors: one line, exit 2, no traceback


@dataclass(frozen=True)
class Case:
    """`args` and `env` changes for one error; `says`: what the line must contain."""

    args: list[str]
    says: list[str]
    env: dict[str, str | None]


def _file(tmp: Path) -> str:
    return str(write_jsonl(tmp / "orders.jsonl", [one_record()]))


def _missing_file(tmp: Path, _api: str) -> Case:
    return Case(["sync", str(tmp / "nope.jsonl")], ["nope.jsonl", "no such file"], {})


def _bad_json(tmp: Path, _api: str) -> Case:
    path = tmp / "bad.jsonl"
    good = json.dumps(one_record())
    path.write_text(f"{good}\n\n{good}\n{{\"order_id\": \"X-1\",\n{good}\n", encoding="utf-8")
    return Case(["sync", str(path)], ["bad.jsonl", "line 4", "JSON"], {})


def _json_not_array(tmp: Path, _api: str) -> Case:
    path = tmp / "orders.json"
    path.write_text(json.dumps(one_record()), encoding="utf-8")
    return Case(["sync", str(path)], ["orders.json", "array", ".jsonl"], {})


def _wrong_credentials(tmp: Path, _api: str) -> Case:
    return Case(["sync", _file(tmp)], ["401", "SENDCLOUD_PUBLIC_KEY", "SENDCLOUD_SECRET_KEY"],
                {"SENDCLOUD_PUBLIC_KEY": "wrong-public", "SENDCLOUD_SECRET_KEY": "wrong-secret"})


def _missing_credentials(tmp: Path, _api: str) -> Case:
    return Case(["sync", _file(tmp)], ["SENDCLOUD_PUBLIC_KEY", "SENDCLOUD_SECRET_KEY"],
                {"SENDCLOUD_PUBLIC_KEY": None, "SENDCLOUD_SECRET_KEY": None})


def _api_unreachable(tmp: Path, _api: str) -> Case:
    port = closed_port()
    return Case(["sync", _file(tmp)], [f"127.0.0.1:{port}", "SENDCLOUD_API_URL"],
                {"SENDCLOUD_API_URL": f"http://127.0.0.1:{port}/api/v3"})


def _broker_unreachable(tmp: Path, _api: str) -> Case:
    port = closed_port()
    return Case(["sync", _file(tmp)], [f"127.0.0.1:{port}", "ORDERSYNC_BROKER_URL"],
                {"ORDERSYNC_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{port}//"})


def _submit_broker_unreachable(tmp: Path, _api: str) -> Case:
    port = closed_port()
    return Case(["submit", _file(tmp)], [f"127.0.0.1:{port}", "ORDERSYNC_BROKER_URL"],
                {"ORDERSYNC_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{port}//"})


def _database_unreachable(tmp: Path, _api: str) -> Case:
    port = closed_port()
    return Case(["sync", _file(tmp)], [f"127.0.0.1:{port}", "ORDERSYNC_DATABASE_URL"],
                {"ORDERSYNC_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:{port}/x"})


def _status_database_unreachable(_tmp: Path, _api: str) -> Case:
    port = closed_port()
    return Case(["status"], [f"127.0.0.1:{port}", "ORDERSYNC_DATABASE_URL"],
                {"ORDERSYNC_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:{port}/x"})


def _home_not_a_folder(tmp: Path, _api: str) -> Case:
    blocker = tmp / "blocker"
    blocker.write_text("a file where a folder should be", encoding="utf-8")
    return Case(["status"], ["ORDERSYNC_HOME"], {"ORDERSYNC_HOME": str(blocker / "home")})


def _bogus_option(_tmp: Path, _api: str) -> Case:
    return Case(["sync", "--bogus"], ["--bogus", "--help"], {})


def _bogus_option_with_file(tmp: Path, _api: str) -> Case:
    return Case(["sync", _file(tmp), "--bogus"], ["--bogus", "--help"], {})


def _bad_rate(tmp: Path, _api: str) -> Case:
    return Case(["sync", "--write-rate", "fast", _file(tmp)], ["'fast'", "100/m"], {})


def _no_command(_tmp: Path, _api: str) -> Case:
    return Case([], ["command", "--help"], {})


def _dlq_no_command(_tmp: Path, _api: str) -> Case:
    # The user must learn which subcommands exist, not argparse's internal dest name.
    return Case(["dlq"], ["list", "show", "replay"], {})


def _submit_without_broker(tmp: Path, _api: str) -> Case:
    return Case(["submit", _file(tmp)], ["ORDERSYNC_BROKER_URL", "ordersync sync"], {})


def _dlq_show_unknown(_tmp: Path, _api: str) -> Case:
    return Case(["dlq", "show", "999"], ["999", "dlq list"], {})


def _dlq_replay_unknown(_tmp: Path, _api: str) -> Case:
    return Case(["dlq", "replay", "999"], ["999", "dlq list"], {})


ERRORS: dict[str, Callable[[Path, str], Case]] = {
    "missing file": _missing_file,
    "bad JSON on line 4": _bad_json,
    ".json not an array": _json_not_array,
    "wrong credentials": _wrong_credentials,
    "missing credentials": _missing_credentials,
    "API unreachable": _api_unreachable,
    "broker unreachable (sync)": _broker_unreachable,
    "broker unreachable (submit)": _submit_broker_unreachable,
    "database unreachable (sync)": _database_unreachable,
    "database unreachable (status)": _status_database_unreachable,
    "ORDERSYNC_HOME not a folder": _home_not_a_folder,
    "sync --bogus": _bogus_option,
    "sync FILE --bogus": _bogus_option_with_file,
    "bad --write-rate": _bad_rate,
    "no command": _no_command,
    "dlq without subcommand": _dlq_no_command,
    "submit without a broker": _submit_without_broker,
    "dlq show 999": _dlq_show_unknown,
    "dlq replay 999": _dlq_replay_unknown,
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_user_error_is_one_line_exit_2(name: str, tmp_path: Path, api_url: str) -> None:
    case = ERRORS[name](tmp_path, api_url)
    env = base_env(api_url, tmp_path)
    for key, value in case.env.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    done = ordersync(*case.args, env=env, cwd=tmp_path, timeout=60)
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{done.stderr}"
    line = lines[0]
    assert line.startswith("ordersync: "), line
    missing = [s for s in case.says if s not in line]
    assert not missing, f"{line!r} does not mention {missing}"
    assert done.returncode == 2, (done.returncode, line)
    assert done.stdout == "", done.stdout[:500]
    assert "wrong-secret" not in line  # never the secret key


def test_closed_stdout_pipe_is_no_traceback(tmp_path: Path) -> None:
    """`ordersync sample --count 5000 | head -1` (or `dlq list --json | head`): the reader
    goes away early. That is not an error worth a traceback."""
    proc = subprocess.Popen([ORDERSYNC, "sample", "--count", "5000"],
                            env=base_env("http://127.0.0.1:9/api/v3", tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode(errors="replace")
    proc.wait(timeout=60)
    assert json.loads(first)["order_id"]
    assert "Traceback" not in err, err[-3000:]
    assert len(err.strip().splitlines()) <= 1, err


# ---------------------------------------------------------------------------------------------
# Happy paths


def test_dead_letters_status_show_and_replay(tmp_path: Path, api_url: str) -> None:
    spec = SampleSpec(count=60, seed=21, invalid_client_rate=0.1, invalid_server_rate=0.05)
    records = list(generate(spec))
    by_order = {r.get("order", r)["order_id"]: r for r in records}  # plain or {"op": …}
    path = write_jsonl(tmp_path / "orders.jsonl", records)
    env = base_env(api_url, tmp_path)

    done = ordersync("sync", "--json", str(path), env=env)
    assert done.returncode == 1, done.stderr[-3000:]  # 1: settled, some dead-lettered
    summary = json_out(done)
    settled_exactly_once(summary)
    assert summary["records"] == 60 and summary["dead_lettered"] == 9  # 6 client + 3 server
    assert summary["confirmed"] == 51

    status = json_out(ordersync("status", "--json", env=env))
    assert status["orders"]["confirmed"] == 51, status
    assert status["dead_letters"] == 9, status
    assert status["requests"]["POST"] >= summary["requests"]["POST"] >= 1, status
    assert not status["alerts"], status

    listed = json_out(ordersync("dlq", "list", "--json", env=env))
    assert sorted(d["id"] for d in listed) == sorted(d["id"] for d in summary["dead_letters"])
    client = [d for d in listed if d["reason"].startswith(PREFLIGHT_REASONS)]
    server = [d for d in listed if d["integration_id"] == 999]
    assert len(client) == 6 and len(server) == 3, [d["reason"] for d in listed]

    shown = json_out(ordersync("dlq", "show", str(client[0]["id"]), "--json", env=env))
    for key in ("record", "reason", "errors", "attempts"):
        assert key in shown, key
    assert shown["record"] == by_order[shown["order_id"]]  # the record as the producer sent it
    assert shown["errors"] and all(e["pointer"].startswith("/") for e in shown["errors"])
    assert shown["attempts"] == 0  # rejected by the pre-flight: never sent
    server_shown = json_out(ordersync("dlq", "show", str(server[0]["id"]), "--json", env=env))
    assert server_shown["attempts"] >= 1 and "999" in json.dumps(server_shown["errors"])

    text = ordersync("dlq", "show", str(client[0]["id"]), env=env)  # piped, for people
    assert text.returncode == 0 and shown["reason"] in text.stdout
    assert f"ordersync dlq replay {client[0]['id']}" in text.stdout

    # Replay without fixing: both records are still invalid, so each becomes a dead letter
    # again (a new one); the old ones are marked replayed and no longer listed.
    old = [client[0]["id"], server[0]["id"]]
    replay = ordersync("dlq", "replay", *map(str, old), "--json", env=env)
    assert replay.returncode == 1, replay.stderr[-3000:]
    again = json_out(replay)
    assert again["records"] == 2 and again["dead_lettered"] == 2, again
    assert {d["order_id"] for d in again["dead_letters"]} == \
        {client[0]["order_id"], server[0]["order_id"]}
    after = json_out(ordersync("dlq", "list", "--json", env=env))
    ids = {d["id"] for d in after}
    assert not ids & set(old), "replayed dead letters are still listed"
    assert len(after) == 9 and {d["id"] for d in again["dead_letters"]} <= ids
    assert json_out(ordersync("status", "--json", env=env))["dead_letters"] == 9

    # An operator looking at a replayed dead letter must see that it was replayed.
    old_letter = json_out(ordersync("dlq", "show", str(old[0]), "--json", env=env))
    assert old_letter.get("replayed_at") or old_letter.get("replayed"), \
        f"`dlq show {old[0]} --json` does not say it was replayed: {sorted(old_letter)}"


def test_sync_from_stdin_prints_only_json_and_exits_0(tmp_path: Path, api_url: str) -> None:
    records = list(generate(SampleSpec(count=30, seed=22)))
    text = "".join(json.dumps(r) + "\n" for r in records)
    done = ordersync("sync", "-", "--json", env=base_env(api_url, tmp_path), stdin=text)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json_out(done)
    settled_exactly_once(summary)
    assert summary["records"] == summary["confirmed"] == 30
    assert summary["dead_lettered"] == 0 and summary["dead_letters"] == []
    assert "Traceback" not in done.stderr


def test_sample_is_seeded_json_lines(tmp_path: Path) -> None:
    env = base_env("http://127.0.0.1:9/api/v3", tmp_path)
    first = ordersync("sample", "--count", "5", "--seed", "1", env=env)
    second = ordersync("sample", "--count", "5", "--seed", "1", env=env)
    other = ordersync("sample", "--count", "5", "--seed", "2", env=env)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert len(lines) == 5
    assert all(isinstance(json.loads(line), dict) for line in lines)
    assert first.stdout == second.stdout
    assert other.stdout != first.stdout
    assert first.stderr == ""


def test_demo_json(tmp_path: Path) -> None:
    cwd = tmp_path / "demo"
    cwd.mkdir()
    env = base_env("http://127.0.0.1:9/api/v3", tmp_path)  # the demo starts its own emulator
    done = ordersync("demo", "--json", "--count", "60", env=env, cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json_out(done)
    settled_exactly_once(summary)
    assert summary["dead_lettered"] > 0
    for letter in summary["dead_letters"]:
        assert letter["reason"].strip(), letter
        assert letter["order_id"], letter
    assert isinstance(summary.get("emulator_orders"), int) and summary["emulator_orders"] > 0
    assert (cwd / ".ordersync" / "demo.db").is_file()
    assert (cwd / ".ordersync" / "demo-orders.jsonl").is_file()
