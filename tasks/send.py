"""ordersync.upsert, ordersync.patch, ordersync.delete, ordersync.confirm: wiring only; the
logic is pipeline.sender and pipeline.confirming."""

from __future__ import annotations

import random
from typing import Any

from celery import Task

from pipeline import confirming, sender
from tasks.app import app
from tasks.context import services
from tasks.flow import TASK_OPTIONS, follow


@app.task(name="ordersync.upsert", bind=True, max_retries=None, **TASK_OPTIONS)
def upsert(self: Task[Any, Any], batch_id: str) -> None:
    follow(self, batch_id, sender.send_upserts(services(), batch_id, random.random()))


@app.task(name="ordersync.patch", bind=True, max_retries=None, **TASK_OPTIONS)
def patch(self: Task[Any, Any], batch_id: str) -> None:
    follow(self, batch_id, sender.send_single(services(), batch_id, random.random()))


@app.task(name="ordersync.delete", bind=True, max_retries=None, **TASK_OPTIONS)
def delete(self: Task[Any, Any], batch_id: str) -> None:
    follow(self, batch_id, sender.send_single(services(), batch_id, random.random()))


@app.task(name="ordersync.confirm", bind=True, max_retries=None, **TASK_OPTIONS)
def confirm(self: Task[Any, Any], batch_id: str) -> None:
    step = confirming.confirm_batch(services(), batch_id, self.request.retries, random.random())
    follow(self, batch_id, step)
