"""Running the emulator from tests and scripts.

`running_emulator(*args)` starts `python -m emulator --port 0 <args>` as a subprocess — the real
command, as users run it — and yields its base URL once it says it is listening.
`emulator_in_thread(*args)` serves the same app from a thread of the calling process: starts in
milliseconds and shows up in coverage; use the subprocess when the process itself matters.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO

READY_PREFIX = "ordersync emulator listening on "
_ROOT = Path(__file__).resolve().parents[1]


def _read_ready_line(stream: IO[str], timeout: float) -> str:
    """The first stdout line, waited for on a thread so a silent child cannot hang us."""
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return line[0] if line else ""


@contextmanager
def running_emulator(
    *args: str, env: Mapping[str, str] | None = None, ready_timeout: float = 30.0
) -> Iterator[str]:
    """Yield `http://127.0.0.1:PORT/api/v3` of a fresh emulator subprocess; stop it on exit.

    `env` adds to (and overrides) the current environment. The emulator's stderr goes to a
    temporary file and is quoted if it fails to start.
    """
    child_env = dict(os.environ)
    if env:
        child_env.update(env)
    # Importable from a plain checkout too, not only from an installed package.
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(_ROOT), child_env.get("PYTHONPATH", "")) if p)
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as errors:
        proc = subprocess.Popen(
            [sys.executable, "-m", "emulator", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL,
            env=child_env, text=True, encoding="utf-8",
        )
        try:
            assert proc.stdout is not None
            line = _read_ready_line(proc.stdout, ready_timeout)
            if not line.startswith(READY_PREFIX):
                proc.kill()
                proc.wait()
                errors.seek(0)
                raise RuntimeError(
                    f"emulator did not start (exit {proc.returncode}): "
                    f"{line.strip() or errors.read().strip() or 'no output'}")
            yield line[len(READY_PREFIX):].strip()
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


@contextmanager
def emulator_in_thread(*args: str) -> Iterator[str]:
    """Like `running_emulator`, but served by an event loop on a thread of this process."""
    from emulator.cli import parse_args
    from emulator.server import start

    config = parse_args(["--port", "0", *args])
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, object] = {}

    async def serve() -> None:
        try:
            runner, url = await start(config)
        except BaseException as exc:  # reported to the caller below
            box["error"] = exc
            ready.set()
            return
        box["url"] = url
        stop = asyncio.Event()
        box["stop"] = stop
        ready.set()
        await stop.wait()
        await runner.cleanup()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    ready.wait(30)
    try:
        if "url" not in box:
            raise RuntimeError(f"emulator did not start: {box.get('error', 'timed out')}")
        yield str(box["url"])
    finally:
        stop = box.get("stop")
        if isinstance(stop, asyncio.Event):
            loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        if not thread.is_alive():
            loop.close()
