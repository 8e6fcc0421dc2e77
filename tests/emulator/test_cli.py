"""The command line (CONTRACT §5): flags, the ready line, exit status 2 for bad flags, --db."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from emulator.cli import main
from emulator.testing import running_emulator
from tests.emulator.conftest import AUTH, Api, make_order

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("argv", [
    ["--bogus"], ["--port", "abc"], ["--port", "70000"], ["--write-rate", "fast"],
    ["--write-rate", "0/m"], ["--read-rate", "1.5/s"], ["--write-burst", "0"],
    ["--faults", "conflict=0.5,timeout=0.7"], ["--conflict-status", "500"],
    ["--latency", "-1"], ["--hang-seconds", "nan"], ["--seed", "x"],
    ["--accounts", "/nonexistent/accounts.json"], ["extra-positional"],
])
def test_bad_flags_exit_2_with_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("ordersync emulator: error: ")
    assert "Traceback" not in err


@pytest.mark.parametrize("content", [
    "not json", "{}", "[]", '[{"public_key": "a", "secret_key": "b", "integrations": "x"}]',
    '[{"public_key": "a:b", "secret_key": "b", "integrations": [1]}]',
    '[{"public_key": "a", "secret_key": "b", "integrations": [1]},'
    ' {"public_key": "c", "secret_key": "d", "integrations": [1]}]',
])
def test_bad_accounts_files(tmp_path: Path, content: str, capsys: pytest.CaptureFixture[str]
                            ) -> None:
    path = tmp_path / "accounts.json"
    path.write_text(content)
    assert main(["--accounts", str(path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--host", "--port", "--accounts", "--no-rate-limit", "--write-rate",
                 "--write-burst", "--read-rate", "--faults", "--seed", "--conflict-status",
                 "--hang-seconds", "--slow-seconds", "--latency", "--visibility-delay", "--db"):
        assert flag in out


def test_python_m_emulator_bad_flag_in_a_real_process() -> None:
    done = subprocess.run([sys.executable, "-m", "emulator", "--port", "nope"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_ready_line_names_the_real_port_and_nothing_else_is_printed() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "emulator", "--port", "0"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        prefix = "ordersync emulator listening on http://127.0.0.1:"
        assert line.startswith(prefix) and line.endswith("/api/v3\n")
        port = int(line[len(prefix):].split("/")[0])
        assert port > 0
        url = line.split(" on ")[1].strip()
        assert requests.get(f"{url}/orders", auth=AUTH, timeout=10).status_code == 200
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert out == "" and "Traceback" not in err


def test_port_in_use_is_one_clean_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "emulator", "--port", str(port)], cwd=ROOT,
                              capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stdout == "" and done.stderr.count("\n") == 1
    assert "cannot listen" in done.stderr


def test_accounts_file_replaces_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps([{"public_key": "shop", "secret_key": "s3cret",
                                 "integrations": [5, 6]}]))
    with running_emulator("--no-rate-limit", "--accounts", str(path)) as url:
        shop = Api(url, ("shop", "s3cret"))
        assert shop.post([make_order("A", integration=5)]).status_code == 201
        assert shop.post([make_order("A", integration=101)]).status_code == 400
        assert Api(url).get("/orders").status_code == 401  # demo-public is gone


def test_db_survives_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "emulator.sqlite")
    with running_emulator("--no-rate-limit", "--db", db) as url:
        api = Api(url)
        [a, b] = api.create(make_order("A-1"), make_order("A-2"))
        api.patch(a, {"order_number": "PATCHED"})
        api.delete(b)
        before = api.get(f"/orders/{a}").json()
    with running_emulator("--no-rate-limit", "--db", db) as url:
        api = Api(url)
        assert api.get(f"/orders/{a}").json() == before
        assert api.get(f"/orders/{b}").status_code == 404
        [c] = api.create(make_order("A-3"))
        assert c > b  # ids never repeat
        assert api.create(make_order("A-1")) == [a]  # the upsert key survived too
        assert [o["deleted"] for o in api.stored(include_deleted=True)] == [False, True, False]
        api.reset()
    with running_emulator("--no-rate-limit", "--db", db) as url:
        api = Api(url)
        assert api.stored(include_deleted=True) == []
        assert api.create(make_order("A-9"))[0] > c


def test_bad_db_path_is_one_clean_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "emulator", "--port", "0", "--db",
                           str(tmp_path / "missing-dir" / "x.sqlite")], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
