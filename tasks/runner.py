"""What `ordersync sync` and `submit` do, below the argument parsing: check that everything they
need answers, hand the records over, and (sync) wait until each one is settled."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import (
    ApiError,
    AuthError,
    ConfigError,
    RateLimited,
    ServerError,
    TransportError,
)
from pipeline.sender import Services
from pipeline.settings import Settings
from pipeline.sources import check_source, read_records
from pipeline.store import TERMINAL
from tasks import context
from tasks.app import app
from tasks.embedded import embedded_worker
from tasks.flow import schedule_flush
from tasks.producer import chunked, resume_staged, start_chunk

POLL = 0.25  # seconds between looks at the store while waiting
WATCHDOG = 5.0  # seconds between flush re-schedules while waiting (a lost flush costs no more)
AHEAD = 16  # chunks of 100 records in ingestion at once during `sync`

Progress = Callable[[int, int], None]  # (settled, total)


@dataclass(frozen=True)
class Source:
    path: Path
    shown: str  # the name the user typed ("-" for standard input)


def check_sources(sources: Sequence[Source]) -> int:
    """Read every file once: a missing file or a bad line stops us before anything is sent."""
    return sum(check_source(s.path, s.shown) for s in sources)


def records_of(sources: Sequence[Source]) -> Iterator[Any]:
    for source in sources:
        yield from read_records(source.path, source.shown)


def preflight(cfg: Settings, *, check_api: bool = True) -> Services:
    """Build the services and prove that the store, the broker and the API answer."""
    if cfg.auth is None:
        raise ConfigError("SENDCLOUD_PUBLIC_KEY and SENDCLOUD_SECRET_KEY must be set "
                          "(for the emulator: demo-public / demo-secret)")
    context.configure(cfg)
    svc = context.services()
    if not cfg.embedded:
        _check_broker(cfg)
    if check_api:
        _check_api(svc, cfg)
    return svc


def _check_broker(cfg: Settings) -> None:
    scheme = (cfg.broker_url or "").split("://", 1)[0]
    if scheme not in ("amqp", "amqps", "pyamqp", "redis", "rediss"):
        raise ConfigError(f"ORDERSYNC_BROKER_URL: unknown transport {scheme!r}; use amqp://… "
                          "(RabbitMQ) or redis://…, or unset it for embedded mode")
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=5)
    except Exception as exc:  # kombu raises transport-specific errors
        raise ConfigError(f"the broker at {_host(cfg.broker_url)} cannot be reached "
                          f"({type(exc).__name__}): start it or fix ORDERSYNC_BROKER_URL") from None


PREFLIGHT_TRIES = 4


def _check_api(svc: Services, cfg: Settings) -> None:
    """One GET proves the URL and the credentials. A 429 or 5xx says nothing about either:
    wait as the API asks (or back off) and ask again a few times."""
    for attempt in range(PREFLIGHT_TRIES):
        try:
            return _ask_api(svc, cfg)
        except (RateLimited, ServerError) as exc:
            if attempt + 1 == PREFLIGHT_TRIES:
                raise ConfigError(f"Sendcloud answered {exc.status} {PREFLIGHT_TRIES} times in a "
                                  "row; it may be busy or down: try again later") from None
            wait = exc.retry_after if isinstance(exc, RateLimited) and exc.retry_after else 0
            time.sleep(min(10.0, max(wait, 2.0 ** attempt)))


def _ask_api(svc: Services, cfg: Settings) -> None:
    try:
        next(iter(svc.client.iter_orders(page_size=1)), None)
    except (RateLimited, ServerError):
        raise
    except AuthError as exc:
        raise ConfigError(f"Sendcloud refused the credentials ({exc.status}): check "
                          "SENDCLOUD_PUBLIC_KEY and SENDCLOUD_SECRET_KEY") from None
    except TransportError:
        raise ConfigError(f"the Sendcloud API at {cfg.api_url} cannot be reached: check "
                          "SENDCLOUD_API_URL (or start `ordersync emulator`)") from None
    except ApiError as exc:
        raise ConfigError(f"the Sendcloud API at {cfg.api_url} answered {exc.status} "
                          f"({exc.message}): check SENDCLOUD_API_URL") from None


def _host(url: str | None) -> str:
    """host:port of a broker URL, without credentials or vhost."""
    return (url or "").rsplit("@", 1)[-1].split("://", 1)[-1].split("/", 1)[0]


def hand_over(svc: Services, records: Iterator[Any], *, ahead: int | None = None) -> str:
    """Stage and start every chunk. With `ahead`, wait while that many chunks are still being
    ingested: the pipeline then works through the file front to back (first orders are sent
    while later ones are read) and a million-record file never piles up in the broker."""
    store = svc.store
    sid = store.open_submission()
    for n, chunk in enumerate(chunked(records, 100)):
        if ahead is not None and n >= ahead:
            while store.staged_count() >= ahead:
                time.sleep(POLL / 5)
        start_chunk(store.stage_chunk(sid, chunk), len(chunk))
    store.close_submission(sid)
    return sid


def worker_for(cfg: Settings, concurrency: int) -> AbstractContextManager[None]:
    return embedded_worker(concurrency) if cfg.embedded else nullcontext()


def sync(cfg: Settings, sources: Sequence[Source], *, concurrency: int = 4,
         timeout: float | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Run every record through the pipeline and wait until each is settled. Returns the
    CONTRACT §3 summary; raises ConfigError for anything an operator must fix."""
    total = check_sources(sources)
    svc = preflight(cfg)
    svc.store.clear_alert("stopped")
    before = svc.store.counters()
    with worker_for(cfg, concurrency):
        if cfg.embedded:
            resume_staged(svc.store)  # chunks a killed earlier run left behind
        sid = hand_over(svc, records_of(sources), ahead=AHEAD)
        wait(svc, sid, total, timeout=timeout, progress=progress)
    after = svc.store.counters()
    return svc.store.summary(sid, {k: after.get(k, 0) - before.get(k, 0) for k in after})


def wait(svc: Services, sid: str, total: int, *, timeout: float | None,
         progress: Progress | None) -> None:
    started = last_watch = time.monotonic()
    schedule_flush()
    while True:
        row = svc.store.submission(sid)
        settled = sum(row[name] for name in TERMINAL)
        if progress is not None:
            progress(settled, total)
        if row["closed"] and settled >= row["records"]:
            return
        stopped = svc.store.alerts().get("stopped")
        if stopped:
            raise ConfigError(stopped)
        now = time.monotonic()
        if timeout is not None and now - started > timeout:
            raise ConfigError(f"not settled after {timeout:g}s ({settled} of {total} records): "
                              "the rest stay queued; see `ordersync status`")
        if now - last_watch > WATCHDOG:
            schedule_flush()
            last_watch = now
        time.sleep(POLL)
