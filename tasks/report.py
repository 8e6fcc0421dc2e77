"""What the CLI shows people: rich tables and a progress bar on a terminal, plain lines when
piped. Never a customer's address: order keys, counts and reasons only."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipeline.store import DeadLetter

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

SUMMARY_ROWS = ("records", "upserted", "confirmed", "patched", "deleted", "unchanged",
                "superseded", "dead_lettered")


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
    table = Table(title="ordersync: sync summary", show_header=False)
    for name in SUMMARY_ROWS:
        table.add_row(name.replace("_", " "), str(summary.get(name, 0)))
    requests = summary.get("requests", {})
    table.add_row("requests", ", ".join(f"{k} {v}" for k, v in requests.items()))
    out.print(table)
    if summary.get("dead_letters"):
        print_dead_letters_summary(summary["dead_letters"])


def print_dead_letters_summary(letters: Sequence[dict[str, Any]]) -> None:
    table = Table(title="dead letters (fix and `ordersync dlq replay`)")
    for column in ("id", "integration", "order_id", "reason", "first error"):
        table.add_column(column)
    for d in letters:
        errors = d.get("errors") or []
        first = f"{errors[0].get('pointer') or '(record)'}: {errors[0].get('detail')}" \
            if errors else ""
        table.add_row(str(d.get("id", "")), str(d.get("integration_id") or "-"),
                      str(d.get("order_id") or "-"), str(d["reason"]), first)
    out.print(table)


def print_dead_letters(letters: Sequence[DeadLetter]) -> None:
    if not letters:
        out.print("no dead letters")
        return
    print_dead_letters_summary([d.summary() for d in letters])


def print_dead_letter(d: DeadLetter) -> None:
    out.print(f"dead letter {d.id}  integration {d.integration_id}  order {d.order_id}")
    out.print(f"reason:   {d.reason}")
    out.print(f"attempts: {d.attempts}   first seen {_when(d.first_seen)}   "
              f"last seen {_when(d.last_seen)}")
    for e in d.errors:
        out.print(f"  {e.get('pointer') or '(record)'}: {e.get('detail')}")
    out.print("payload (fix it, then `ordersync dlq replay " + str(d.id) + "`):")
    out.print_json(data=d.record)


def print_status(counts: dict[str, Any]) -> None:
    table = Table(title="ordersync: status", show_header=False)
    for name, value in counts["orders"].items():
        table.add_row(f"orders {name}", str(value))
    for name, value in sorted(counts["outbox"].items()):
        table.add_row(f"outbox {name.replace('_', ' ')}", str(value))
    table.add_row("dead letters", str(counts["dead_letters"]))
    table.add_row("chunks being ingested", str(counts["staged_chunks"]))
    requests = counts.get("requests", {})
    table.add_row("requests", ", ".join(f"{k} {v}" for k, v in sorted(requests.items())))
    out.print(table)
    for name, message in counts.get("alerts", {}).items():
        out.print(f"[bold red]{name}[/]: {message}")


def print_demo(summary: dict[str, Any], *, records: Path, db: Path,
               emulator_orders: int | None) -> None:
    print_summary(summary)
    if emulator_orders is not None:
        out.print(f"The emulator now holds {emulator_orders} orders.")
    env = f"ORDERSYNC_DATABASE_URL=sqlite:///{db}"
    out.print("\nWhere to look next:")
    out.print(f"  the input:           {records}")
    out.print(f"  dead letters:        {env} ordersync dlq list")
    out.print(f"  one of them:         {env} ordersync dlq show ID")
    out.print(f"  state of the store:  {env} ordersync status")
    out.print("  your own orders:     ordersync sync FILE.jsonl (see README: configuration)")


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
