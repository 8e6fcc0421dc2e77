"""ordersync's Celery app and tasks: `celery -A tasks worker`, `celery -A tasks flower`.

Producers: `from tasks import submit; submit(records) -> submission id`.
"""

from tasks import flow, ingest, send, watchdog
from tasks.app import app
from tasks.producer import submit

__all__ = ["app", "flow", "ingest", "send", "submit", "watchdog"]
