"""The Celery app, configured from Settings only. `celery -A worker worker` loads it.

This module is an edge: it reads the settings once, for the whole process, and the app
carries them; everything else gets them from the app (worker.tasks, at worker_init).
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from settings import Settings, load_settings
from worker.jobs import TASK_NAME
from worker.redisio import OUTAGE_BACKOFF_CAP, outage_retries


def visibility_timeout(settings: Settings) -> int:
    """Longer than the hard time limit plus every retry's wait, so Redis never hands a job
    still running to a second worker."""
    backoff = sum(settings.retry_backoff * 2**n for n in range(settings.max_retries))
    return int(max(3600, 2 * settings.task_time_limit + backoff))


class CutoutApp(Celery):  # type: ignore[misc]  # Celery's classes carry no types
    """A Celery app with the Settings it was made from."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings

    def __reduce_keys__(self) -> dict[str, Any]:
        """An app sent to another process (pickled) comes back with its settings."""
        return {**super().__reduce_keys__(), "settings": self.settings}


def settings_of(app: Celery) -> Settings:
    """The settings an app was made from (by create_app)."""
    if not isinstance(app, CutoutApp):
        raise TypeError(f"{app!r} was not made by worker.app.create_app: it has no settings")
    return app.settings


def create_app(settings: Settings) -> CutoutApp:
    app = CutoutApp(
        settings,
        main="cutout",
        broker=settings.broker_url,
        backend=settings.status_url,
        include=["worker.tasks"],
    )
    transport = {"visibility_timeout": visibility_timeout(settings)}
    app.conf.update(
        # JSON only: a pickle message is refused, never deserialised.
        task_serializer="json",
        result_serializer="json",
        event_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        # Acknowledge after the work, and hand the job back if its process dies.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # A Redis restart must lose no job. Cancelling the running jobs on a lost broker
        # connection (Celery 6's default) *terminates* them, and a terminated request is
        # acknowledged once the connection is back: its message leaves Redis's unacked
        # set, never to return, and its record stays "started". Kept running instead, a
        # job waits for Redis to finish its record (worker.tasks, outage_wait), and its
        # acknowledgement, by delivery tag, works on the new connection. One that could
        # not be acknowledged comes back after the visibility timeout and, its record
        # final, is not run again.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_connection_max_retries=None,  # a worker waits out a Redis restart
        # Celery's own result write waits for Redis too: failing it fails the task.
        result_backend_always_retry=True,
        result_backend_max_retries=outage_retries(settings.task_time_limit),
        result_backend_max_sleep_between_retries_ms=int(OUTAGE_BACKOFF_CAP * 1000),
        broker_transport_options=transport,
        result_backend_transport_options=transport,
        broker_connection_retry_on_startup=True,
        task_soft_time_limit=settings.task_soft_time_limit,
        task_time_limit=settings.task_time_limit,
        # A pool process that grew past this (a huge image, a leak) is replaced after its job.
        worker_max_memory_per_child=settings.max_memory_per_child_mb * 1024 or None,
        task_default_queue=settings.queue,
        task_routes={TASK_NAME: {"queue": settings.queue}},
        result_expires=settings.status_ttl,
        task_track_started=True,
        # Events for Flower.
        worker_send_task_events=True,
        task_send_sent_event=True,
    )
    return app


app = create_app(load_settings())
