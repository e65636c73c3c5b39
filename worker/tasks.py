"""The `cutout.remove` task: hand the job to its handler, turn the decision into Celery's terms.

Thin on purpose: the decisions (what is retried, what fails for good, what is a poison job)
are in `worker.handling`, the work in `worker.runner` (and the engine). Here are the Celery
signals that build each process's state from the settings the app carries (worker_init,
in the main process before the pool forks) and the task itself.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

import redis
from celery import Task
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    task_failure,
    task_rejected,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_shutdown,
)

from cutout.errors import CutoutError
from settings import Settings, engine
from worker import metrics
from worker.app import app, settings_of
from worker.handling import Failed, JobHandler, Retry, Succeeded
from worker.jobs import TASK_NAME
from worker.logs import guard
from worker.presence import Presence, keep_beating
from worker.runner import JobRunner
from worker.status import StatusStore

log = logging.getLogger(__name__)


class JobFailed(CutoutError):
    """The job failed for good; the message says why (one string, so it survives JSON)."""


class _ProcessState:
    """What one worker process builds once and keeps: the settings worker_init hands down,
    the metrics, its runner, status store and job handler."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self.processes = 1
        self.hostname = socket.gethostname()
        self.metrics: metrics.Metrics = metrics.NoMetrics()
        self.stop = threading.Event()
        self._runner: JobRunner | None = None
        self._status: StatusStore | None = None
        self._handler: JobHandler | None = None
        self._lock = threading.RLock()  # handler() builds the runner and the store under it

    def start(self, settings: Settings, *, processes: int, hostname: str) -> None:
        """At worker_init, in the main process: the pool inherits all of it."""
        self._settings = settings
        self.processes = processes
        self.hostname = hostname or self.hostname
        self.metrics = metrics.start(
            settings.metrics_address,
            settings.worker_metrics_port,
            settings.broker_url,
            settings.queue,
        )

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            raise RuntimeError("no settings: worker_init hands them down, and has not run")
        return self._settings

    def runner(self) -> JobRunner:
        with self._lock:
            if self._runner is None:
                self._runner = JobRunner(self.settings, processes=self.processes)
            return self._runner

    def handler(self) -> JobHandler:
        with self._lock:
            if self._handler is None:
                settings = self.settings
                self._handler = JobHandler(
                    self.runner(),
                    self.status(),
                    self.metrics,
                    model=settings.model,
                    inline_max_bytes=settings.inline_max_bytes,
                    max_retries=settings.max_retries,
                    retry_backoff=settings.retry_backoff,
                    max_deliveries=settings.max_deliveries,
                    soft_time_limit=settings.task_soft_time_limit,
                )
            return self._handler

    def warm_and_beat(self) -> None:
        """Load the model, then tell `cutout health` every few seconds what this process runs."""
        started = time.monotonic()
        try:
            session = self.runner().warm()
        except CutoutError as exc:
            log.error("cannot load the model: %s", exc)
            return
        self.metrics.model_loaded(time.monotonic() - started)
        info = {
            "hostname": self.hostname,
            "host": socket.gethostname(),  # the machine (or container), for `cutout health`
            "pid": os.getpid(),
            "model": session.spec.name,
            "precision": session.precision,
            "runs_at": session.runs_at,
            "providers": list(session.providers),
            "requested": list(session.requested),
            "fell_back": session.fell_back,
            "load_seconds": round(time.monotonic() - started, 3),
        }
        presence = Presence(self.status().client, prefix=self.settings.key_prefix)
        keep_beating(presence, "worker", f"{self.hostname}:{os.getpid()}", lambda: info, self.stop)

    def status(self) -> StatusStore:
        with self._lock:
            if self._status is None:
                settings = self.settings
                # A Redis restart must not cost a job its record, nor its message (a task
                # that fails on a lost connection is acknowledged as failed): wait for
                # Redis as long as a job may run at all.
                self._status = StatusStore.from_url(
                    settings.status_url,
                    prefix=settings.key_prefix,
                    ttl=settings.status_ttl,
                    result_ttl=settings.result_ttl,
                    outage_wait=settings.task_time_limit,
                )
            return self._status


_state = _ProcessState()


@worker_init.connect
def _before_fork(sender: Any = None, **_: Any) -> None:
    """In the main process: take the settings from the app, set up the metrics and fetch
    the model once, before the pool forks."""
    settings = settings_of(sender.app)
    _state.start(
        settings,
        processes=int(getattr(sender, "concurrency", 1) or 1),
        hostname=str(getattr(sender, "hostname", "") or ""),
    )
    # Every model a job may name, so that a missing one fails now, not on its first job.
    for name in settings.offered_models:
        engine.model_file(settings, name, progress=False)


@after_setup_logger.connect
@after_setup_task_logger.connect
def _escaped_logs(logger: logging.Logger, **_: Any) -> None:
    """No job's name can forge a line in the worker's log (worker.logs)."""
    guard(logger.handlers)


@task_failure.connect
def _failed_outside_the_body(
    sender: Any = None, task_id: str | None = None, exception: BaseException | None = None, **_: Any
) -> None:
    """A message the task could not even be called with (positional arguments, say) fails
    in Celery, before the task's own code: it still gets a `failed` record, so that its
    sender does not wait in vain."""
    if getattr(sender, "name", None) != TASK_NAME or not task_id:
        return
    if not isinstance(exception, JobFailed):  # JobFailed: recorded by the task itself
        _record_refusal(task_id, f"{type(exception).__name__}: {exception}")


@task_rejected.connect
def _refused_unread(message: Any = None, exc: BaseException | None = None, **_: Any) -> None:
    """A message Celery will not decode (pickle, any content type but JSON) is logged and
    dropped by Celery; its task id is in the headers, readable without the body."""
    job_id = (getattr(message, "headers", None) or {}).get("id")
    if isinstance(job_id, str) and job_id:
        content = getattr(message, "content_type", "?")
        _record_refusal(
            job_id, f"message refused unread: content type {content!r}; send JSON ({exc})"
        )


def _record_refusal(job_id: str, reason: str) -> None:
    """Record the job as failed unless it already has an outcome."""
    try:
        store = _state.status()
        current = store.get(job_id)
        if current is None or not current.done:
            store.update(job_id, "failed", error=reason, error_kind="invalid")
    except redis.RedisError as error:  # the message is dropped all the same
        log.warning("job %s: %s, and not recorded (%s)", job_id, reason, error)


@worker_process_shutdown.connect
def _process_gone(pid: int | None = None, **_: Any) -> None:
    _state.metrics.process_exited(pid or os.getpid())


@worker_shutdown.connect
def _shutdown(**_: Any) -> None:
    _state.metrics.close()


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    # ONNX Runtime sessions do not survive a fork: each child loads its own, in a thread,
    # because worker_process_init must return within 4 s and u2net may take longer.
    threading.Thread(target=_state.warm_and_beat, name="cutout-warm", daemon=True).start()


@app.task(name=TASK_NAME, bind=True, throws=(JobFailed,))
def remove(self: Task, **kwargs: Any) -> dict[str, Any]:
    decision = _state.handler().handle(
        str(self.request.id),
        kwargs,
        attempt=self.request.retries,
        worker=self.request.hostname or socket.gethostname(),
    )
    match decision:
        case Retry(error, countdown):
            raise self.retry(exc=error, countdown=countdown)
        case Failed(reason):
            raise JobFailed(reason)
        case Succeeded(record):
            return record.model_dump(mode="json")
