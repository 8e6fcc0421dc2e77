"""The emulator's configuration: accounts, rates, faults and delays, parsed from flags.

Everything here is plain data built once at start-up; the request path only reads it.
Parsing errors raise `ConfigError` with a message fit for one line on stderr.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FAULT_KINDS = ("conflict", "server_error", "timeout", "lost_response", "rate_limit", "slow")

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d*(?:\.\d+)?)\s*([smh])\s*$")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0}


class ConfigError(ValueError):
    """A flag or file the emulator cannot start with."""


@dataclass(frozen=True)
class Rate:
    """At most `count` events in any rolling window of `period` seconds."""

    count: int
    period: float

    def __str__(self) -> str:
        return f"{self.count}/{self.period:g}s"


def parse_rate(text: str) -> Rate:
    """'100/m' → Rate(100, 60); '15/s', '1000/10m', '5000/h' work too."""
    match = _RATE.match(text)
    if not match:
        raise ConfigError(f"rate {text!r} is not of the form N/s, N/m or N/h (e.g. 100/m)")
    count_text, multiple, unit = match.groups()
    count = float(count_text)
    period = _UNIT_SECONDS[unit] * (float(multiple) if multiple else 1.0)
    # A sliding window counts whole requests, so a fractional budget has no meaning.
    if count <= 0 or period <= 0 or not count.is_integer():
        raise ConfigError(f"rate {text!r} needs a positive whole count and a positive period")
    return Rate(int(count), period)


@dataclass(frozen=True)
class Account:
    public_key: str
    secret_key: str
    integrations: frozenset[int]


DEFAULT_ACCOUNTS: tuple[Account, ...] = (
    Account("demo-public", "demo-secret", frozenset({101, 102, 103})),
    Account("other-public", "other-secret", frozenset({201})),
)


def load_accounts(path: str) -> tuple[Account, ...]:
    """Read `[{"public_key", "secret_key", "integrations": [ids]}, …]` (CONTRACT §5)."""
    try:
        raw: Any = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read accounts file {path}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"accounts file {path} is not valid JSON: {exc}") from None
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"accounts file {path} must hold a non-empty JSON list of accounts")
    accounts: list[Account] = []
    seen_keys: set[str] = set()
    owner: dict[int, str] = {}
    for n, item in enumerate(raw):
        where = f"accounts file {path}, entry {n}"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: expected an object")
        public, secret = item.get("public_key"), item.get("secret_key")
        ids = item.get("integrations")
        if not isinstance(public, str) or not public or not isinstance(secret, str) or not secret:
            raise ConfigError(f"{where}: public_key and secret_key must be non-empty strings")
        if ":" in public:
            # HTTP Basic splits user:password on the first colon.
            raise ConfigError(f"{where}: public_key may not contain ':'")
        if not isinstance(ids, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids
        ):
            raise ConfigError(f"{where}: integrations must be a list of positive integers")
        if public in seen_keys:
            raise ConfigError(f"{where}: public_key {public!r} appears twice")
        seen_keys.add(public)
        for integration in ids:
            # An integration belongs to exactly one account in Sendcloud.
            if integration in owner and owner[integration] != public:
                raise ConfigError(f"{where}: integration {integration} already belongs to "
                                  f"{owner[integration]!r}")
            owner[integration] = public
        accounts.append(Account(public, secret, frozenset(ids)))
    return tuple(accounts)


def parse_faults(text: str) -> dict[str, float]:
    """'conflict=0.1,slow=0.2' → {"conflict": 0.1, "slow": 0.2}; probabilities sum to ≤ 1."""
    faults: dict[str, float] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep:
            raise ConfigError(f"fault {part!r} is not of the form kind=probability")
        if name not in FAULT_KINDS:
            raise ConfigError(f"unknown fault kind {name!r} (known: {', '.join(FAULT_KINDS)})")
        try:
            probability = float(value)
        except ValueError:
            raise ConfigError(f"fault {name}: {value.strip()!r} is not a number") from None
        if not (0.0 <= probability <= 1.0) or math.isnan(probability):
            raise ConfigError(f"fault {name}: probability must be between 0 and 1")
        faults[name] = probability
    # One draw per request picks at most one fault, so the kinds share the unit interval.
    if sum(faults.values()) > 1.0 + 1e-9:
        raise ConfigError("fault probabilities add up to more than 1")
    return faults


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8765
    accounts: tuple[Account, ...] = DEFAULT_ACCOUNTS
    rate_limit: bool = True
    write_rate: Rate = Rate(100, 60.0)
    write_burst: int = 15
    read_rate: Rate = Rate(1000, 60.0)
    faults: dict[str, float] = field(default_factory=dict)
    seed: int | None = None
    conflict_status: int = 400
    hang_seconds: float = 35.0
    slow_seconds: float = 2.0
    latency: float = 0.0
    visibility_delay: float = 0.0
    db: str | None = None
    errors_without_pointers: bool = False
