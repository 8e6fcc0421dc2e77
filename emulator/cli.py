"""`ordersync emulator` / `python -m emulator`: flags → Config → a listening server.

Contract (CONTRACT §5): a bad flag gives one line on stderr and exit status 2, no traceback;
when ready, exactly one line goes to stdout: `ordersync emulator listening on http://H:P/api/v3`.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import signal
import sqlite3
import sys
from typing import NoReturn

from emulator.config import Config, ConfigError, load_accounts, parse_faults, parse_rate

PROG = "ordersync emulator"


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a number of seconds ≥ 0")
    return value


def _port(text: str) -> int:
    if not text.isdecimal() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return int(text)


def _positive_int(text: str) -> int:
    if not text.isdecimal() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="A local emulator of Sendcloud's Orders API v3, served under /api/v3.",
        epilog="Helper endpoints outside the API: GET /_emulator/stats, GET /_emulator/orders "
               "[?include_deleted=1], POST /_emulator/reset.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8765,
                   help="port to listen on; 0 picks a free one (default 8765)")
    p.add_argument("--accounts", metavar="FILE",
                   help='JSON list of {"public_key", "secret_key", "integrations": [ids]}; '
                        "replaces the default demo-public/demo-secret → 101, 102, 103 and "
                        "other-public/other-secret → 201")
    p.add_argument("--no-rate-limit", action="store_true", help="turn the rate limits off")
    p.add_argument("--write-rate", default="100/m", metavar="N/UNIT",
                   help="POST/PATCH/DELETE per rolling window, per account (default 100/m)")
    p.add_argument("--write-burst", type=_positive_int, default=15, metavar="N",
                   help="writes in any rolling second, per account (default 15)")
    p.add_argument("--read-rate", default="1000/m", metavar="N/UNIT",
                   help="GETs per rolling window, per account (default 1000/m)")
    p.add_argument("--faults", default="", metavar="SPEC",
                   help="fault probabilities per request, e.g. conflict=0.1,server_error=0.05,"
                        "timeout=0.02,lost_response=0.02,rate_limit=0.02,slow=0.1")
    p.add_argument("--seed", type=_int, default=None,
                   help="seed of the fault draws (default: random, printed on stderr)")
    p.add_argument("--conflict-status", type=int, choices=(400, 409), default=400,
                   help="status of the 'still processing' conflict (default 400)")
    p.add_argument("--hang-seconds", type=_seconds, default=35.0, metavar="S",
                   help="how long a timeout fault holds the connection (default 35)")
    p.add_argument("--slow-seconds", type=_seconds, default=2.0, metavar="S",
                   help="how late a slow fault answers (default 2)")
    p.add_argument("--latency", type=_seconds, default=0.0, metavar="S",
                   help="fixed delay added to every /api/v3 request (default 0)")
    p.add_argument("--visibility-delay", type=_seconds, default=0.0, metavar="S",
                   help="accepted writes become readable only this much later (default 0)")
    p.add_argument("--db", metavar="PATH",
                   help="keep orders in this SQLite file across restarts (default: in memory)")
    p.add_argument("--errors-without-pointers", action="store_true",
                   help="answer field errors without source.pointer (for testing a client's "
                        "fallback to bisection)")
    return p


def parse_args(argv: list[str]) -> Config:
    """Flags → Config; raises _UsageError / ConfigError with a one-line message."""
    ns = build_parser().parse_args(argv)
    return Config(
        host=ns.host,
        port=ns.port,
        accounts=load_accounts(ns.accounts) if ns.accounts else Config().accounts,
        rate_limit=not ns.no_rate_limit,
        write_rate=parse_rate(ns.write_rate),
        write_burst=ns.write_burst,
        read_rate=parse_rate(ns.read_rate),
        faults=parse_faults(ns.faults),
        seed=ns.seed,
        conflict_status=ns.conflict_status,
        hang_seconds=ns.hang_seconds,
        slow_seconds=ns.slow_seconds,
        latency=ns.latency,
        visibility_delay=ns.visibility_delay,
        db=ns.db,
        errors_without_pointers=ns.errors_without_pointers,
    )


async def _serve(config: Config) -> int:
    from emulator.api import EMULATOR  # the server stack loads only once flags are good
    from emulator.server import start

    try:
        runner, url = await start(config)
    except sqlite3.Error as exc:
        print(f"{PROG}: error: cannot use database {config.db}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{PROG}: error: cannot listen on {config.host}:{config.port}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 2
    emu = runner.app[EMULATOR]
    if emu.faults.active:
        print(f"{PROG}: faults {config.faults} with seed {emu.faults.seed}", file=sys.stderr)
    print(f"ordersync emulator listening on {url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        config = parse_args(args)
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    except (_UsageError, ConfigError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve(config))
    except KeyboardInterrupt:
        return 0
