"""`ordersync`: the command line (CONTRACT §3).

Every error a user can cause (bad argument, missing file, bad JSON, wrong credentials, a service
that does not answer) ends as one line on stderr and exit 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from pipeline.errors import ConfigError
from pipeline.settings import Settings, parse_rate

EXIT_OK, EXIT_DEAD_LETTERS, EXIT_USAGE = 0, 1, 2
COMMANDS = ("sync", "submit", "status", "dlq", "demo", "sample", "emulator")
EPILOG = """\
Credentials come from SENDCLOUD_PUBLIC_KEY and SENDCLOUD_SECRET_KEY (the emulator's demo account:
demo-public / demo-secret). Without ORDERSYNC_BROKER_URL, `sync` runs its own worker (embedded
mode). Try `ordersync demo` for a tour; the README lists every setting."""
SYNC_HELP = """\
Run every record through normalize → validate → batch → upsert → confirm and wait until each one
is settled: confirmed in Sendcloud, patched, deleted, unchanged, superseded or dead-lettered.
Exit 0: all settled, none dead-lettered; 1: some dead-lettered (listed); 2: usage or
configuration error. Without ORDERSYNC_BROKER_URL a worker runs inside this command."""


class _Parser(argparse.ArgumentParser):
    """argparse, with one clear line for every mistake instead of a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"ordersync: {self._explain(message)} (see `{self.prog} --help`)\n")

    def _explain(self, message: str) -> str:
        # argparse checks required arguments before unknown options: name the unknown option
        # first, it is usually the real mistake.
        unknown = [w for w in sys.argv[1:] if w.startswith("--") and not self._knows(w)]
        if unknown and "required" in message:
            return f"unrecognized option {unknown[0]}"
        if message.endswith("required: COMMAND"):
            return f"choose a command: {', '.join(COMMANDS)}"
        if message.endswith("required: SUBCOMMAND"):
            return "dlq needs a subcommand: list, show or replay"
        return message

    def _knows(self, word: str) -> bool:
        name = word.split("=", 1)[0]
        return any(name in action.option_strings for action in self._actions)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ordersync", epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter, description=(
                         "Keep Sendcloud's Incoming Orders in step with your shops: normalize,\n"
                         "validate, batch, upsert and confirm orders through the Orders API v3."))
    parser.add_argument("--version", action="version", version=f"ordersync {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser,
                                metavar="COMMAND")

    sync = sub.add_parser("sync", help="run records through the pipeline and wait for the "
                          "outcome", description=SYNC_HELP,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    _files(sync)
    _json(sync, "print only the summary, as JSON, on stdout")
    sync.add_argument("--timeout", type=float, metavar="SECONDS",
                      help="stop waiting after SECONDS (exit 2; the records stay queued)")
    sync.add_argument("--concurrency", type=int, default=4, metavar="N",
                      help="worker threads in embedded mode (default 4)")
    _overrides(sync, api=True)

    submit = sub.add_parser("submit", help="enqueue records on the broker and return",
                            description="Hand records to the workers through the broker "
                            "(ORDERSYNC_BROKER_URL) and return at once; follow them with "
                            "`ordersync status`.")
    _files(submit)
    _json(submit, "print the submission id and record count as JSON")
    _overrides(submit, api=True)

    status = sub.add_parser("status", help="orders by state, the outbox, dead letters, alerts")
    _json(status, "print the counts as JSON")
    _overrides(status)

    dlq = sub.add_parser("dlq", help="dead letters: list, show, replay")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True, parser_class=_Parser,
                                 metavar="SUBCOMMAND")
    dlq_list = dlq_sub.add_parser("list", help="dead letters not yet replayed")
    _json(dlq_list, "print them as a JSON list")
    dlq_list.add_argument("--limit", type=int, default=100, metavar="N",
                          help="at most N (default 100)")
    dlq_show = dlq_sub.add_parser("show", help="one dead letter: record, reason, errors")
    dlq_show.add_argument("id", type=int, metavar="ID", help="the dead letter's id")
    _json(dlq_show, "print it as JSON")
    replay = dlq_sub.add_parser("replay", help="send dead letters through the pipeline again",
                                description="Send the stored records again (as they were "
                                "stored: fix the source first when the record itself was "
                                "wrong). Embedded mode waits for the outcome.")
    replay.add_argument("ids", type=int, nargs="*", metavar="ID", help="dead letters to replay")
    replay.add_argument("--all", action="store_true", help="replay every dead letter")
    _json(replay, "print the summary as JSON")
    for p in (dlq_list, dlq_show):
        _overrides(p)
    _overrides(replay, api=True)

    sub.add_parser("emulator", help="the local Sendcloud Orders API emulator "
                   "(`ordersync emulator --help`)", add_help=False)

    demo = sub.add_parser("demo", help="emulator + pipeline + sample orders, end to end")
    demo.add_argument("--count", type=int, default=300, metavar="N",
                      help="sample orders to generate (default 300)")
    demo.add_argument("--seed", type=int, default=7, help="seed of the sample (default 7)")
    _json(demo, "print the summary as JSON")

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


def _json(p: argparse.ArgumentParser, text: str) -> None:
    p.add_argument("--json", action="store_true", help=text)


def _overrides(p: argparse.ArgumentParser, api: bool = False) -> None:
    p.add_argument("--database-url", metavar="URL", help="overrides ORDERSYNC_DATABASE_URL")
    if not api:
        return
    p.add_argument("--api-url", metavar="URL", help="overrides SENDCLOUD_API_URL")
    p.add_argument("--broker-url", metavar="URL", help="overrides ORDERSYNC_BROKER_URL")
    p.add_argument("--linger", type=float, metavar="SECONDS", help="overrides ORDERSYNC_LINGER")
    p.add_argument("--write-rate", type=_rate, metavar="RATE",
                   help="overrides ORDERSYNC_WRITE_RATE (e.g. 100/m)")
    p.add_argument("--read-rate", type=_rate, metavar="RATE",
                   help="overrides ORDERSYNC_READ_RATE (e.g. 1000/m)")


def _rate(text: str) -> Any:
    try:
        return parse_rate(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ordersync")
    except PackageNotFoundError:
        return "(not installed)"


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
    except BrokenPipeError:
        # The reader went away (`ordersync sample | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("ordersync: interrupted; queued orders stay in the outbox (see `ordersync status`)",
              file=sys.stderr)
        return 130
    except OSError as exc:  # a file or folder the user named cannot be used
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"ordersync: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE


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
