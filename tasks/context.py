"""Per-process services for the tasks: settings, store, API client, rate limiter.

Built lazily and per process id: Celery's prefork pool forks workers, and a database engine or
HTTP session must not be shared across a fork.
"""

from __future__ import annotations

import os
import threading

from pipeline.client import SendcloudClient
from pipeline.errors import ConfigError
from pipeline.ratelimit import Limiter, limiter_from_settings
from pipeline.sender import Services
from pipeline.settings import Settings
from pipeline.store import Store

_lock = threading.Lock()
_services: dict[int, Services] = {}
_settings_override: Settings | None = None


def configure(settings: Settings | None) -> None:
    """Use these settings instead of the environment's (the CLI's flags); drops cached ones."""
    global _settings_override
    with _lock:
        _settings_override = settings
        _services.clear()


def settings() -> Settings:
    return _settings_override or Settings.from_env()


def services() -> Services:
    pid = os.getpid()
    with _lock:
        svc = _services.get(pid)
        if svc is None:
            svc = _services[pid] = build_services(settings())
        return svc


def build_services(cfg: Settings) -> Services:
    store = Store(cfg.effective_database_url)
    limiter = limiter_from_settings(cfg)
    client = make_client(cfg, store, limiter)
    return Services(store=store, client=client, limiter=limiter)


def make_client(cfg: Settings, store: Store, limiter: Limiter) -> SendcloudClient:
    if cfg.auth is None:
        raise ConfigError("SENDCLOUD_PUBLIC_KEY and SENDCLOUD_SECRET_KEY must be set")

    def throttle(method: str) -> None:
        limiter.acquire("read" if method == "GET" else "write")

    def observe(method: str, status: int | None) -> None:
        store.bump(method)
        if status == 429:
            store.bump("rate_limited")

    return SendcloudClient(cfg.api_url, cfg.auth, throttle=throttle, observe=observe)
