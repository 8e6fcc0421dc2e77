"""Celery settings for ordersync, read from the environment (CONTRACT §2).

With ORDERSYNC_BROKER_URL unset, the broker is kombu's in-process memory transport: the
embedded mode, where `ordersync sync` runs a worker inside its own process.
"""

from __future__ import annotations

from kombu.entity import Queue

from pipeline.settings import Settings

_settings = Settings.from_env()

broker_url = _settings.broker_url or "memory://"
broker_connection_retry_on_startup = True
broker_transport_options = {
    # Redis redelivers an unacknowledged message after this; it must outlast the longest
    # countdown (the retry policy caps at 300 s), or ETA tasks would run twice.
    "visibility_timeout": 3600,
    # The memory transport polls its queues; kombu's default (1 s) would add up to a second
    # to every step of the chain in embedded mode.
    "polling_interval": 0.01,
}

# One queue per stage so stages scale apart (`celery -A tasks worker -Q ordersync.upsert`);
# a plain worker consumes all three.
task_queues = (
    Queue("ordersync.ingest"),
    Queue("ordersync.upsert"),
    Queue("ordersync.confirm"),
)
task_default_queue = "ordersync.ingest"
task_routes = {
    "ordersync.normalize": {"queue": "ordersync.ingest"},
    "ordersync.validate": {"queue": "ordersync.ingest"},
    "ordersync.batch": {"queue": "ordersync.ingest"},
    "ordersync.flush": {"queue": "ordersync.ingest"},
    "ordersync.upsert": {"queue": "ordersync.upsert"},
    "ordersync.patch": {"queue": "ordersync.upsert"},
    "ordersync.delete": {"queue": "ordersync.upsert"},
    "ordersync.confirm": {"queue": "ordersync.confirm"},
}

# Nothing is lost when a worker dies mid-task: the message is acknowledged only after the task
# has written its state, and a killed worker's message goes back to the queue.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1

# Ride out a broker restart when publishing (a claimed batch, a retry, the next chain step):
# about a minute of attempts before the publish fails.
task_publish_retry = True
task_publish_retry_policy = {"max_retries": 40, "interval_start": 0, "interval_step": 0.5,
                             "interval_max": 2}

# The write/read budget is our own global limiter (pipeline.ratelimit); Celery's per-worker
# rate limits are unused, so skip their bookkeeping on every task.
worker_disable_rate_limits = True

task_serializer = "json"
accept_content = ["json"]
task_ignore_result = True  # state lives in the store; results would only duplicate it
result_backend = None

# Flower: task events with arguments that carry ids and counts only (see tasks/). Workers send
# them only when asked: Flower asks every 5 s (its --enable_events, on by default), and
# `celery worker -E` sends them from the first task. Unwatched, they cost 5-9 % of a worker's CPU.
worker_send_task_events = False
task_send_sent_event = True
task_track_started = True
worker_hijack_root_logger = False
