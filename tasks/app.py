"""The Celery app. Configuration lives in celeryconfig.py (read from the environment)."""

from __future__ import annotations

from celery import Celery

app = Celery("ordersync")
app.config_from_object("celeryconfig")
