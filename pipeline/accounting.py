"""Writes shared by the store's parts: how records ended (per submission) and dead letters.
Both run inside the caller's transaction, beside the state change they account for."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, update

from pipeline.codec import exact_dumps
from pipeline.errors import FieldError
from pipeline.tables import dead_letters, submissions


def bump_outcomes(conn: Connection, tally: Counter[tuple[str, str]]) -> None:
    """Add to submissions' outcome counters: tally[(submission id, outcome)] = n.
    An upsert is counted as upserted and confirmed together, when it is confirmed."""
    for (sid, outcome), n in sorted(tally.items()):
        values: dict[str, Any] = {outcome: submissions.c[outcome] + n}
        if outcome == "upserted":
            values["confirmed"] = submissions.c.confirmed + n
        conn.execute(update(submissions).where(submissions.c.id == sid).values(**values))


def insert_dead_letter(conn: Connection, sid: str | None, key: tuple[int, str] | None,
                       record: Any, reason: str, errors: Sequence[FieldError],
                       attempts: int) -> None:
    now = time.time()
    conn.execute(dead_letters.insert().values(
        submission_id=sid, integration_id=key[0] if key else None,
        order_id=key[1] if key else None, record=exact_dumps(record), reason=reason,
        errors=exact_dumps([e.as_dict() for e in errors]), attempts=attempts,
        first_seen=now, last_seen=now))
