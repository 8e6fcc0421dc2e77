"""Reading producer records from files: JSON Lines (`.jsonl`/`.ndjson`, or anything that is not
`.json`), a JSON array (`.json`), or `-` for JSON Lines on standard input.

`check_source` reads a file once without keeping it, so a malformed line is reported (file and
line number) before anything is handed to the pipeline; `read_records` then streams it.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError


class SourceError(ConfigError):
    """A file cannot be read as records: the message names the file, the line and the fix."""


def spool_stdin() -> Path:
    """Standard input is read twice (check, then stream): keep it in a temporary file."""
    with tempfile.NamedTemporaryFile("wb", prefix="ordersync-stdin-", suffix=".jsonl",
                                     delete=False) as spool:
        shutil.copyfileobj(sys.stdin.buffer, spool)
    return Path(spool.name)


def check_source(path: Path, shown: str | None = None) -> int:
    """Count the records of a file, or raise SourceError naming the first problem."""
    name = shown or str(path)
    if path.is_dir():
        raise SourceError(f"{name} is a folder: name the record files in it")
    if not path.is_file():
        raise SourceError(f"{name}: no such file")
    if path.suffix.lower() == ".json":
        return len(_load_array(path, name))
    count = 0
    try:
        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    _parse_line(line, name, number)
                    count += 1
    except OSError as exc:
        raise SourceError(f"{name}: cannot be read ({exc.strerror})") from None
    return count


def read_records(path: Path, shown: str | None = None) -> Iterator[Any]:
    name = shown or str(path)
    if path.suffix.lower() == ".json":
        yield from _load_array(path, name)
        return
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield _parse_line(line, name, number)


def _parse_line(line: bytes, name: str, number: int) -> Any:
    try:
        return json.loads(line)
    except UnicodeDecodeError:
        raise SourceError(f"{name} line {number}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise SourceError(f"{name} line {number}: bad JSON ({exc.msg} at column {exc.colno}); "
                          "each line must be one JSON object") from None
    except (ValueError, RecursionError) as exc:  # 4300+ digit numbers, very deep nesting
        raise SourceError(f"{name} line {number}: cannot be read ({type(exc).__name__}: "
                          f"{str(exc)[:80]})") from None


def _load_array(path: Path, name: str) -> list[Any]:
    try:
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise SourceError(f"{name}: cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise SourceError(f"{name}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise SourceError(f"{name} line {exc.lineno}: bad JSON ({exc.msg}); a .json file must "
                          "hold one JSON array of records") from None
    if not isinstance(data, list):
        raise SourceError(f"{name}: a .json file must hold a JSON array of records "
                          "(use .jsonl for one record a line)")
    return data
