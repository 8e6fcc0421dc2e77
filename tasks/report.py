"""What the CLI shows people: rich tables and a progress bar on a terminal, plain `name: value`
lines when piped. Never a customer's address: order keys, counts and reasons only."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipeline.store import DeadLetter

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

SUMMARY_ROWS = (
    ("records", "records read"),
    ("upserted", "records upserted"),
    ("confirmed", "  of which confirmed in Sendcloud"),
    ("patched", "records patched"),
    ("deleted", "records deleted"),
    ("unchanged", "records unchanged (no request)"),
    ("superseded", "records superseded by a newer version"),
    ("dead_lettered", "records dead-lettered"),
)
REASON_WIDTH = 70


def _rows(title: str, rows: Sequence[tuple[str, str]]) -> None:
    """A two-column table on a terminal; `name: value` lines otherwise."""
    if not out.is_terminal:
        for name, value in rows:
            out.print(f"{name.strip()}: {value}", markup=False)
        return
    table = Table(title=title, show_header=False)
    for name, value in rows:
        table.add_row(escape(name), escape(value))
    out.print(table)


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Any]:
    """Yields a `(settled, total)` callback; a live bar only when stderr is a terminal."""
    if not enabled or not err.is_terminal:
        yield None
        return
    with Progress(TextColumn("syncing"), BarColumn(), MofNCompleteColumn(), TextColumn("settled"),
                  TimeElapsedColumn(), console=err, transient=True) as bar:
        task = bar.add_task("sync", total=None)

        def update(settled: int, total: int) -> None:
            bar.update(task, completed=settled, total=total)

        yield update


def print_summary(summary: dict[str, Any]) -> None:
    rows = [(label, str(summary.get(name, 0))) for name, label in SUMMARY_ROWS]
    requests = summary.get("requests", {})
    rows.append(("API requests", ", ".join(f"{k} {v}" for k, v in requests.items())))
    if summary.get("patched") and not requests.get("PATCH"):
        rows.append(("note", "patches of orders whose payload was known went in batch POSTs"))
    _rows("ordersync: sync summary", rows)
    if summary.get("dead_letters"):
        print_dead_letters_summary(summary["dead_letters"])


def _first_error(errors: Sequence[dict[str, Any]]) -> str:
    if not errors:
        return ""
    first = f"{errors[0].get('pointer') or '(record)'}: {errors[0].get('detail')}"
    return first + (f" (+{len(errors) - 1} more)" if len(errors) > 1 else "")


def _category(reason: str) -> str:
    """The kind of problem, without the field details the errors column already shows."""
    return reason.split(": /", 1)[0].split(": (", 1)[0]


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= REASON_WIDTH else text[:REASON_WIDTH - 1] + "…"


def print_dead_letters_summary(letters: Sequence[dict[str, Any]]) -> None:
    if not out.is_terminal:
        for d in letters:
            out.print(f"dead letter {d.get('id', '')}: integration {d.get('integration_id')} "
                      f"order {d.get('order_id')}: {_category(d['reason'])}; "
                      f"{_first_error(d.get('errors') or [])}", markup=False)
        return
    table = Table(title="dead letters (`ordersync dlq show ID` for the whole record)")
    for column in ("id", "integration", "order_id", "reason", "first error"):
        table.add_column(column)
    for d in letters:
        table.add_row(str(d.get("id", "")), str(d.get("integration_id") or "-"),
                      escape(str(d.get("order_id") or "-")), escape(_short(_category(d["reason"]))),
                      escape(_short(_first_error(d.get("errors") or []))))
    out.print(table)


def print_dead_letters(letters: Sequence[DeadLetter]) -> None:
    if not letters:
        out.print("no dead letters")
        return
    print_dead_letters_summary([d.summary() for d in letters])


def print_dead_letter(d: DeadLetter) -> None:
    lines = [
        f"dead letter {d.id}: integration {d.integration_id}, order {d.order_id}",
        f"reason: {d.reason}",
        f"attempts: {d.attempts}" + (" (rejected before sending)" if d.attempts == 0 else ""),
        f"first seen: {iso(d.first_seen)}   last seen: {iso(d.last_seen)}",
    ]
    if d.replayed_at is not None:
        lines.append(f"replayed at: {iso(d.replayed_at)}")
    lines += [f"  {e.get('pointer') or '(record)'}: {e.get('detail')}" for e in d.errors]
    lines.append("record as stored (fix the source and sync it again; `ordersync dlq replay "
                 f"{d.id}` re-sends it as it is):")
    for line in lines:
        out.print(line, markup=False)
    out.print_json(data=d.record)


def print_status(counts: dict[str, Any]) -> None:
    rows = [(f"orders {name} in Sendcloud", str(value))
            for name, value in counts["orders"].items()]
    rows += [(f"outbox {name.replace('_', ' ')}", str(value))
             for name, value in sorted(counts["outbox"].items())]
    rows.append(("dead letters", str(counts["dead_letters"])))
    rows.append(("chunks being ingested", str(counts["staged_chunks"])))
    requests = counts.get("requests", {})
    rows.append(("API requests", ", ".join(f"{k} {v}" for k, v in sorted(requests.items()))))
    rows += [(f"ALERT {name}", message) for name, message in counts.get("alerts", {}).items()]
    _rows("ordersync: status", rows)


def print_demo(summary: dict[str, Any], *, records: Path, db: Path, emulator_url: str,
               emulator_orders: int | None, command: str) -> None:
    print_summary(summary)
    if emulator_orders is not None:
        out.print(f"The emulator at {emulator_url} now holds {emulator_orders} orders "
                  "(records count updates, patches and deletes of the same orders too).",
                  markup=False)
    env = f"ORDERSYNC_DATABASE_URL=sqlite:///{db}"
    out.print("\nWhere to look next:", markup=False)
    for what, line in (("the input", str(records)),
                       ("dead letters", f"{env} {command} dlq list"),
                       ("one of them", f"{env} {command} dlq show ID"),
                       ("the state store", f"{env} {command} status"),
                       ("your own orders", f"{command} sync FILE.jsonl (README: Configuration)")):
        out.print(f"  {what + ':':<18}{line}", markup=False)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
