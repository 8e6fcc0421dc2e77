"""The emulator's running state: configuration plus store, limiter, faults and counters."""

from __future__ import annotations

import base64
import binascii
import hmac
import random
import time
from dataclasses import dataclass, field

from emulator import errors
from emulator.config import Account, Config
from emulator.faults import FaultPlan
from emulator.persist import SqliteFile
from emulator.ratelimit import Limiter
from emulator.state import Store
from emulator.stats import Stats


@dataclass
class Emulator:
    config: Config
    store: Store
    faults: FaultPlan
    limiter: Limiter | None
    stats: Stats = field(default_factory=Stats)
    accounts: dict[str, Account] = field(default_factory=dict)

    @classmethod
    def create(cls, config: Config) -> Emulator:
        db = SqliteFile(config.db) if config.db else None
        store = Store(visibility_delay=config.visibility_delay, db=db)
        store.load()
        seed = config.seed if config.seed is not None else random.SystemRandom().randrange(2**32)
        limiter = (Limiter(config.write_rate, config.write_burst, config.read_rate)
                   if config.rate_limit else None)
        return cls(config, store, FaultPlan(config.faults, seed), limiter,
                   accounts={a.public_key: a for a in config.accounts})

    def authenticate(self, header: str | None) -> Account:
        """HTTP Basic → the account, or the spec's 401 bodies."""
        if not header:
            raise errors.no_credentials()
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "basic":
            raise errors.no_credentials()
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeError):
            raise errors.bad_credentials() from None
        public, sep, secret = decoded.partition(":")
        account = self.accounts.get(public)
        if not sep or account is None or not hmac.compare_digest(
                account.secret_key.encode(), secret.encode()):
            raise errors.bad_credentials()
        return account

    def reset(self) -> None:
        self.store.reset()
        self.stats.reset()
        if self.limiter is not None:
            self.limiter.reset()
        self.faults.reseed()

    def close(self) -> None:
        if self.store.db is not None:
            self.store.db.close()

    @staticmethod
    def now() -> float:
        return time.time()
