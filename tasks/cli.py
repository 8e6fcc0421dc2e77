"""`ordersync`: the command line (CONTRACT §3).

Every error a user can cause (bad argument, missing file, bad JSON, wrong credentials, a service
that does not answer) ends as one line on stderr and exit 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from pipeline.errors import ConfigError
from pipeline.settings import Settings, parse_rate

EXIT_OK, EXIT_DEAD_LETTERS, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One clear line, not argparse's usage block.
        self.exit(EXIT_USAGE, f"ordersync: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ordersync", description=(
        "Keep Sendcloud's Incoming Orders in step with your shops: normalize, validate, batch, "
        "upsert and confirm orders through the Orders API v3."))
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sync = sub.add_parser("sync", help="run records through the pipeline and wait until each "
                          "is settled (exit 0: all synced; 1: some dead-lettered; 2: error)")
    _files(sync)
    _overrides(sync)
    sync.add_argument("--json", action="store_true", help="print only the summary as JSON")
    sync.add_argument("--timeout", type=float, help="give up waiting after SECONDS")
    sync.add_argument("--concurrency", type=int, default=4,
                      help="embedded worker threads (default 4)")

    submit = sub.add_parser("submit", help="enqueue records on the broker and return")
    _files(submit)
    _overrides(submit)
    submit.add_argument("--json", action="store_true")

    status = sub.add_parser("status", help="counts of orders by state")
    status.add_argument("--json", action="store_true")
    _overrides(status)

    dlq = sub.add_parser("dlq", help="dead letters: list, show, replay")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True, parser_class=_Parser)
    dlq_list = dlq_sub.add_parser("list", help="dead letters not yet replayed")
    dlq_list.add_argument("--json", action="store_true")
    dlq_list.add_argument("--limit", type=int, default=100)
    dlq_show = dlq_sub.add_parser("show", help="one dead letter: payload, reason, errors")
    dlq_show.add_argument("id", type=int)
    dlq_show.add_argument("--json", action="store_true")
    replay = dlq_sub.add_parser("replay", help="send dead letters through the pipeline again")
    replay.add_argument("ids", type=int, nargs="*")
    replay.add_argument("--all", action="store_true")
    replay.add_argument("--json", action="store_true")
    for p in (dlq_list, dlq_show, replay):
        _overrides(p)

    sub.add_parser("emulator", help="the local Sendcloud Orders API emulator "
                   "(`ordersync emulator --help`)", add_help=False)

    demo = sub.add_parser("demo", help="emulator + pipeline + sample orders, end to end")
    demo.add_argument("--count", type=int, default=300)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--json", action="store_true")

    sample = sub.add_parser("sample", help="write seeded sample orders as JSON Lines")
    sample.add_argument("--count", type=int, default=100)
    sample.add_argument("--seed", type=int, default=7)
    sample.add_argument("--out", default="-", help="file to write (default: standard output)")
    sample.add_argument("--invalid-rate", type=float, default=0.0,
                        help="fraction of records the pre-flight rejects")
    sample.add_argument("--server-invalid-rate", type=float, default=0.0,
                        help="fraction only Sendcloud rejects")
    sample.add_argument("--update-rate", type=float, default=0.0)
    sample.add_argument("--delete-rate", type=float, default=0.0)
    sample.add_argument("--integrations", default="101,102,103",
                        help="comma-separated integration ids")
    return parser


def _files(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="JSON Lines (.jsonl/.ndjson), a JSON array (.json), or - for stdin")


def _overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("--api-url", help="overrides SENDCLOUD_API_URL")
    p.add_argument("--database-url", help="overrides ORDERSYNC_DATABASE_URL")
    p.add_argument("--broker-url", help="overrides ORDERSYNC_BROKER_URL")
    p.add_argument("--linger", type=float, help="overrides ORDERSYNC_LINGER")
    p.add_argument("--write-rate", type=parse_rate, help="overrides ORDERSYNC_WRITE_RATE")
    p.add_argument("--read-rate", type=parse_rate, help="overrides ORDERSYNC_READ_RATE")


def settings_from(args: argparse.Namespace) -> Settings:
    cfg = Settings.from_env()
    changes: dict[str, Any] = {}
    for flag, field in (("api_url", "api_url"), ("database_url", "database_url"),
                        ("broker_url", "broker_url"), ("linger", "linger"),
                        ("write_rate", "write_rate"), ("read_rate", "read_rate")):
        value = getattr(args, flag, None)
        if value is not None:
            changes[field] = value
    return replace(cfg, **changes)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["emulator"]:
        from emulator.cli import main as emulator_main

        return emulator_main(argv[1:])
    try:
        args = build_parser().parse_args(argv)
        return _run(args)
    except ConfigError as exc:
        print(f"ordersync: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ordersync: interrupted; queued orders stay in the outbox (see `ordersync status`)",
              file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    import tasks.commands as commands  # imports Celery: only once the arguments are good

    handler: dict[str, Any] = {
        "sync": commands.sync, "submit": commands.submit, "status": commands.status,
        "dlq": commands.dlq, "demo": commands.demo, "sample": commands.sample,
    }
    cfg = Settings() if args.command == "sample" else settings_from(args)
    result: int = handler[args.command](args, cfg)
    return result


def emit_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def path_arg(text: str) -> Path:
    return Path(text)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
