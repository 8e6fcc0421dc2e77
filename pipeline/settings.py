"""Settings as a frozen dataclass built from the environment (CONTRACT §2)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ConfigError

DEFAULT_API_URL = "https://panel.sendcloud.sc/api/v3"
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d*)\s*([smh])\s*$")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class Rate:
    """`count` events per `period` seconds."""

    count: float
    period: float

    @property
    def per_second(self) -> float:
        return self.count / self.period

    def __str__(self) -> str:
        return f"{self.count:g}/{self.period:g}s"


def parse_rate(text: str) -> Rate:
    """'100/m' → Rate(100, 60); '600/m', '15/s', '1000/10m' also work."""
    match = _RATE.match(text)
    if not match:
        raise ConfigError(f"rate {text!r} is not of the form N/s, N/m or N/h (e.g. 100/m)")
    count, multiple, unit = match.groups()
    period = _UNIT_SECONDS[unit] * (float(multiple) if multiple else 1.0)
    if float(count) <= 0 or period <= 0:
        raise ConfigError(f"rate {text!r} must be positive")
    return Rate(float(count), period)


@dataclass(frozen=True)
class Settings:
    api_url: str = DEFAULT_API_URL
    public_key: str | None = None
    secret_key: str | None = None
    broker_url: str | None = None  # None = embedded (kombu memory transport, in-process worker)
    home: Path = Path(".ordersync")
    database_url: str | None = None  # None = SQLite file under `home`
    redis_url: str | None = None
    write_rate: Rate = Rate(100, 60)
    write_burst: int = 15
    read_rate: Rate = Rate(1000, 60)
    linger: float = 1.0

    @property
    def embedded(self) -> bool:
        return not self.broker_url

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'ordersync.db').resolve()}"

    @property
    def auth(self) -> tuple[str, str] | None:
        if self.public_key and self.secret_key:
            return (self.public_key, self.secret_key)
        return None

    def __repr__(self) -> str:  # never show the secret key
        return (f"Settings(api_url={self.api_url!r}, broker_url={_redact(self.broker_url)!r}, "
                f"database_url={_redact(self.database_url)!r}, write_rate={self.write_rate}, "
                f"write_burst={self.write_burst}, read_rate={self.read_rate}, "
                f"linger={self.linger})")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        linger = _number(get("ORDERSYNC_LINGER") or "1.0", "ORDERSYNC_LINGER", float, 0)
        burst = int(_number(get("ORDERSYNC_WRITE_BURST") or "15", "ORDERSYNC_WRITE_BURST", int, 1))
        return cls(
            api_url=(get("SENDCLOUD_API_URL") or DEFAULT_API_URL).rstrip("/"),
            public_key=get("SENDCLOUD_PUBLIC_KEY"),
            secret_key=get("SENDCLOUD_SECRET_KEY"),
            broker_url=get("ORDERSYNC_BROKER_URL"),
            home=Path(get("ORDERSYNC_HOME") or ".ordersync"),
            database_url=get("ORDERSYNC_DATABASE_URL"),
            redis_url=get("ORDERSYNC_REDIS_URL"),
            write_rate=parse_rate(get("ORDERSYNC_WRITE_RATE") or "100/m"),
            write_burst=burst,
            read_rate=parse_rate(get("ORDERSYNC_READ_RATE") or "1000/m"),
            linger=linger,
        )


def _number(text: str, name: str, kind: type[float] | type[int], minimum: float) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a number") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum:g}, got {text}")
    return float(value)


def _redact(url: str | None) -> str | None:
    """Hide a password inside a URL (`amqp://user:secret@host` → `amqp://user:***@host`)."""
    if not url:
        return url
    return re.sub(r"(//[^:/@]+:)[^@]+@", r"\1***@", url)
