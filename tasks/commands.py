"""The `ordersync` subcommands (the parser is in tasks/cli.py)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.sample import SampleSpec, generate, write_jsonl
from pipeline.settings import Settings
from pipeline.sources import spool_stdin
from pipeline.store import Store
from tasks import report, runner
from tasks.cli import EXIT_DEAD_LETTERS, EXIT_OK, emit_json


def _sources(files: list[str]) -> list[runner.Source]:
    return [runner.Source(spool_stdin() if f == "-" else Path(f), f) for f in files]


def _exit_code(summary: dict[str, Any]) -> int:
    return EXIT_DEAD_LETTERS if summary["dead_lettered"] else EXIT_OK


def sync(args: argparse.Namespace, cfg: Settings) -> int:
    if args.concurrency < 1:
        raise ConfigError("--concurrency must be at least 1")
    with report.progress_bar(enabled=not args.json) as progress:
        summary = runner.sync(cfg, _sources(args.files), concurrency=args.concurrency,
                              timeout=args.timeout, progress=progress)
    if args.json:
        emit_json(summary)
    else:
        report.print_summary(summary)
    return _exit_code(summary)


def submit(args: argparse.Namespace, cfg: Settings) -> int:
    if cfg.embedded:
        raise ConfigError("submit hands records to a broker for workers to pick up: set "
                          "ORDERSYNC_BROKER_URL (or use `ordersync sync`, which runs its own "
                          "worker)")
    sources = _sources(args.files)
    total = runner.check_sources(sources)
    svc = runner.preflight(cfg, check_api=False)
    sid = runner.hand_over(svc, runner.records_of(sources))
    if args.json:
        emit_json({"submission": sid, "records": total})
    else:
        print(f"submitted {total} records as {sid}; follow them with `ordersync status`")
    return EXIT_OK


def _store(cfg: Settings) -> Store:
    return Store(cfg.effective_database_url)


def status(args: argparse.Namespace, cfg: Settings) -> int:
    counts = _store(cfg).status()
    if args.json:
        emit_json(counts)
    else:
        report.print_status(counts)
    return EXIT_OK


def dlq(args: argparse.Namespace, cfg: Settings) -> int:
    store = _store(cfg)
    if args.dlq_command == "list":
        letters = store.dead_letters(limit=args.limit)
        if args.json:
            emit_json([_letter(d) for d in letters])
        else:
            report.print_dead_letters(letters)
        return EXIT_OK
    if args.dlq_command == "show":
        letter = store.dead_letter(args.id)
        if letter is None:
            raise ConfigError(f"there is no dead letter {args.id} (see `ordersync dlq list`)")
        if args.json:
            emit_json(_letter(letter))
        else:
            report.print_dead_letter(letter)
        return EXIT_OK
    return _replay(args, cfg, store)


def _replay(args: argparse.Namespace, cfg: Settings, store: Store) -> int:
    if not args.ids and not args.all:
        raise ConfigError("name the dead letters to replay (IDs) or pass --all")
    letters = store.dead_letters() if args.all else [store.dead_letter(i) for i in args.ids]
    missing = [i for i, d in zip(args.ids, letters, strict=False) if d is None]
    if missing:
        raise ConfigError(f"no dead letter {missing[0]} (see `ordersync dlq list`)")
    chosen = [d for d in letters if d is not None]
    if not chosen:
        print("nothing to replay")
        return EXIT_OK
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "replay.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            write_jsonl((d.record for d in chosen), handle)
        store.mark_replayed([d.id for d in chosen])
        if cfg.embedded:
            summary = runner.sync(cfg, [runner.Source(path, "dead letters")])
            emit_json(summary) if args.json else report.print_summary(summary)
            return _exit_code(summary)
        svc = runner.preflight(cfg, check_api=False)
        sid = runner.hand_over(svc, runner.records_of([runner.Source(path, "dead letters")]))
    print(f"replaying {len(chosen)} dead letters as submission {sid}")
    return EXIT_OK


def _letter(d: Any) -> dict[str, Any]:
    return {"id": d.id, "submission": d.submission_id, "integration_id": d.integration_id,
            "order_id": d.order_id, "reason": d.reason, "errors": d.errors,
            "attempts": d.attempts, "first_seen": report.iso(d.first_seen),
            "last_seen": report.iso(d.last_seen),
            "replayed_at": report.iso(d.replayed_at) if d.replayed_at is not None else None,
            "record": d.record}


def sample(args: argparse.Namespace, _cfg: Settings) -> int:
    try:
        spec = SampleSpec(count=args.count, seed=args.seed,
                          integrations=_ints(args.integrations),
                          invalid_client_rate=args.invalid_rate,
                          invalid_server_rate=args.server_invalid_rate,
                          update_rate=args.update_rate, delete_rate=args.delete_rate)
    except ValueError as exc:
        raise ConfigError(f"sample: {exc}") from None
    if args.out == "-":
        write_jsonl(generate(spec), sys.stdout)
        return EXIT_OK
    try:
        with open(args.out, "w", encoding="utf-8") as handle:
            n = write_jsonl(generate(spec), handle)
    except OSError as exc:
        raise ConfigError(f"{args.out}: cannot be written ({exc.strerror})") from None
    print(f"wrote {n} records to {args.out}", file=sys.stderr)
    return EXIT_OK


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"--integrations {text!r}: expected comma-separated numbers") from None
    if not values:
        raise ConfigError("--integrations needs at least one id")
    return values


def demo(args: argparse.Namespace, cfg: Settings) -> int:
    from emulator.testing import running_emulator  # the demo's own Sendcloud

    home = Path(".ordersync")
    home.mkdir(exist_ok=True)
    db = home / "demo.db"
    for stale in home.glob("demo.db*"):
        stale.unlink()
    spec = SampleSpec(count=args.count, seed=args.seed, invalid_client_rate=0.03,
                      invalid_server_rate=0.02, update_rate=0.2, out_of_order_rate=0.3,
                      patch_rate=0.05, delete_rate=0.05, loose_rate=0.2)
    records = home / "demo-orders.jsonl"
    with records.open("w", encoding="utf-8") as handle:
        written = write_jsonl(generate(spec), handle)
    with running_emulator() as url:
        if not args.json:
            print(f"Started a local Sendcloud emulator at {url} (nothing goes to the real "
                  f"Sendcloud).\nGenerated {args.count} sample orders as {written} records "
                  f"(updates, late old versions, patches, cancellations, a few invalid) → "
                  f"{records}\nSyncing them through the embedded pipeline…\n", flush=True)
        demo_cfg = replace(cfg, api_url=url, public_key="demo-public", secret_key="demo-secret",
                           broker_url=None, database_url=f"sqlite:///{db.resolve()}")
        with report.progress_bar(enabled=not args.json) as progress:
            summary = runner.sync(demo_cfg, [runner.Source(records, str(records))],
                                  progress=progress)
        held = _emulator_count(url)
    if args.json:
        emit_json({**summary, "emulator_orders": held})
    else:
        report.print_demo(summary, records=records, db=db, emulator_url=url,
                          emulator_orders=held, command=_own_command())
    return EXIT_OK


def _own_command() -> str:
    """How the user can run ordersync again: bare when it is on PATH, else by its path."""
    import shutil

    here = Path(sys.argv[0]).resolve()
    on_path = shutil.which("ordersync")
    if on_path and Path(on_path).resolve() == here:
        return "ordersync"
    try:
        return str(here.relative_to(Path.cwd()))
    except ValueError:
        return str(here)


def _emulator_count(api_url: str) -> int | None:
    import requests

    root = api_url.split("/api/v3")[0]
    try:
        return int(requests.get(f"{root}/_emulator/stats", timeout=5).json()["orders"])
    except (requests.RequestException, KeyError, ValueError):
        return None
