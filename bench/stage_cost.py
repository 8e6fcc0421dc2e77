"""Where a worker's CPU goes: the ingest stages run in this process, without Celery.

    .venv/bin/python bench/stage_cost.py [--records 3000] [--store postgresql|sqlite] [--json]

Stages seeded sample orders (`pipeline.sample`) into a fresh store (a throwaway PostgreSQL
database, or SQLite in a temporary folder), then runs normalize, validate and batch over them
exactly as the tasks do (`pipeline.ingest`), timing each with this process's CPU clock
(`time.process_time`: other processes on the machine do not count). Twice:

- bulk: chunks of 100 records, as `submit(records)` and `ordersync sync` stage them;
- trickle: one record a chunk, as `submit([record])` from a shop's request handler, plus the
  dispatch check every batch task makes (`pipeline.dispatch.full_batches`).

It prints CPU milliseconds per record for each stage. It is the floor under the pipeline
benches: the Celery workers pay these costs and more (messages, acknowledgements, upsert,
confirm). Exit status 0; 2 when a service is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import git_revision, machine, pg_database
from pipeline import dispatch, ingest
from pipeline.sample import SampleSpec, generate
from pipeline.store import Store

STAGES: dict[str, Callable[[Store, str], Any]] = {
    "normalize": ingest.normalize_chunk, "validate": ingest.validate_chunk,
    "batch": ingest.batch_chunk}


@contextmanager
def fresh_store(kind: str) -> Iterator[Store]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            store = Store(f"sqlite:///{folder}/state.db")
            try:
                yield store
            finally:
                store.close()
        return
    with pg_database("ordersync_stage_cost") as url:
        store = Store(url)
        try:
            yield store
        finally:
            store.close()


def run(store: Store, records: Sequence[dict[str, Any]], chunk: int,
        with_dispatch: bool) -> dict[str, float]:
    """CPU ms per record of staging and of each stage, chunk by chunk as the chain runs them."""
    cpu: dict[str, float] = {}

    def timed(name: str, call: Callable[..., Any], *args: Any) -> Any:
        start = time.process_time()
        result = call(*args)
        cpu[name] = cpu.get(name, 0.0) + time.process_time() - start
        return result

    sid = store.open_submission()
    for i in range(0, len(records), chunk):
        chunk_id = timed("stage (producer)", store.stage_chunk, sid, records[i:i + chunk])
        for name, stage in STAGES.items():
            timed(name, stage, store, chunk_id)
        if with_dispatch:
            timed("dispatch check", dispatch_check, store)
    out = {name: 1000 * seconds / len(records) for name, seconds in cpu.items()}
    out["worker total"] = sum(v for k, v in out.items() if k != "stage (producer)")
    return out


def dispatch_check(store: Store) -> None:
    """What every batch task does after enqueueing (tasks.flow.dispatch_full)."""
    if not store.alerts().get("stopped"):
        dispatch.full_batches(store)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--store", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--json", action="store_true", help="print one JSON dict, nothing else")
    args = parser.parse_args(argv)
    if args.records < 100:
        parser.error("--records: at least 100")
    records = list(generate(SampleSpec(count=args.records, seed=41)))
    trickle = records[: max(100, args.records // 10)]
    results: dict[str, Any] = {"machine": machine(), "revision": git_revision(),
                               "store": args.store}
    try:
        with fresh_store(args.store) as store:
            results["bulk"] = run(store, records, 100, with_dispatch=False)
        with fresh_store(args.store) as store:
            results["trickle"] = run(store, trickle, 1, with_dispatch=True)
    except Exception as exc:  # a service that is down: one line, not a traceback
        print(f"stage_cost: cannot run ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"machine: {results['machine']}; ordersync {results['revision']}; "
          f"store {args.store}")
    for mode, size in (("bulk", f"{args.records} records in chunks of 100"),
                       ("trickle", f"{len(trickle)} records, one a chunk")):
        print(f"{mode} ({size}), CPU ms per record:")
        for name, ms in results[mode].items():
            print(f"  {name:18s} {ms:7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
