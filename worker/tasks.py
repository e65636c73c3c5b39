"""The `cutout.remove` task: validate the payload, run the job, record its status.

Thin on purpose: the work is in `worker.runner` (and the engine); here are only the
Celery-facing decisions: what is retried, what fails for good, what is a poison job.
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
from celery.exceptions import SoftTimeLimitExceeded
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

from cutout import store as model_store
from cutout.errors import CutoutError, ImageError, ModelError
from cutout.models import get_model
from worker import metrics
from worker.app import app, settings
from worker.jobs import TASK_NAME, JobError, RemoveJob, parse_job
from worker.logs import guard
from worker.presence import Presence, keep_beating
from worker.runner import JobRunner
from worker.status import StatusStore

log = logging.getLogger(__name__)


class JobFailed(CutoutError):
    """The job failed for good; the message says why (one string, so it survives JSON)."""


# Transient: a shared folder hiccup or a lost Redis connection may work next time.
TRANSIENT = (OSError, redis.RedisError)


class _ProcessState:
    """What one worker process builds once and keeps: its runner and status store."""

    def __init__(self) -> None:
        self.processes = 1
        self.hostname = socket.gethostname()
        self.stop = threading.Event()
        self._runner: JobRunner | None = None
        self._status: StatusStore | None = None
        self._lock = threading.Lock()

    def runner(self) -> JobRunner:
        with self._lock:
            if self._runner is None:
                self._runner = JobRunner(settings, processes=self.processes)
            return self._runner

    def warm_and_beat(self) -> None:
        """Load the model, then tell `cutout health` every few seconds what this process runs."""
        started = time.monotonic()
        try:
            session = self.runner().warm()
        except CutoutError as exc:
            log.error("cannot load the model: %s", exc)
            return
        metrics.MODEL_LOAD_SECONDS.set(time.monotonic() - started)
        info = {
            "hostname": self.hostname,
            "host": socket.gethostname(),  # the machine (or container), for `cutout health`
            "pid": os.getpid(),
            "model": session.spec.name,
            "providers": list(session.providers),
            "requested": list(session.requested),
            "fell_back": session.fell_back,
            "load_seconds": round(time.monotonic() - started, 3),
        }
        presence = Presence(self.status().client, prefix=settings.key_prefix)
        keep_beating(presence, "worker", f"{self.hostname}:{os.getpid()}", lambda: info, self.stop)

    def status(self) -> StatusStore:
        with self._lock:
            if self._status is None:
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
    """In the main process: fetch the model once, before the pool forks."""
    _state.processes = int(getattr(sender, "concurrency", 1) or 1)
    _state.hostname = str(getattr(sender, "hostname", "") or _state.hostname)
    if settings.worker_metrics_port:
        metrics.serve(
            settings.metrics_address,
            settings.worker_metrics_port,
            settings.broker_url,
            settings.queue,
        )
    if settings.model_path is None:
        model_store.ensure(
            get_model(settings.model),
            settings.model_home,
            auto_pull=settings.model_auto_pull,
            mirror=settings.model_mirror,
            progress=False,
        )


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
            store.update(job_id, "failed", error=reason)
    except redis.RedisError as error:  # the message is dropped all the same
        log.warning("job %s: %s, and not recorded (%s)", job_id, reason, error)


@worker_process_shutdown.connect
def _process_gone(pid: int | None = None, **_: Any) -> None:
    metrics.process_exited(pid or os.getpid())


@worker_shutdown.connect
def _shutdown(**_: Any) -> None:
    metrics.remove_multiprocess_dir()


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    # ONNX Runtime sessions do not survive a fork: each child loads its own, in a thread,
    # because worker_process_init must return within 4 s and u2net may take longer.
    threading.Thread(target=_state.warm_and_beat, name="cutout-warm", daemon=True).start()


@app.task(name=TASK_NAME, bind=True, throws=(JobFailed,))
def remove(self: Task, **kwargs: Any) -> dict[str, Any]:
    job_id = str(self.request.id)
    store = _state.status()
    try:
        job = parse_job(kwargs, inline_max_bytes=settings.inline_max_bytes)
    except JobError as exc:
        store.update(job_id, "failed", error=str(exc))
        metrics.IMAGES.labels("failed", "invalid").inc()
        raise JobFailed(str(exc)) from exc
    done = store.get(job_id)
    if done is not None and done.state == "succeeded":
        # A re-sent job (a watcher recovering after a restart): the output already exists.
        return done.model_dump(mode="json")
    crashes = store.begin_attempt(job_id)
    if crashes >= settings.max_deliveries:
        reason = f"its worker died {crashes} times on it (poison image?)"
        return _fail(store, job_id, job, reason, "poison")
    store.update(
        job_id,
        "started",
        input=job.label,
        model=job.model or settings.model,
        worker=self.request.hostname or socket.gethostname(),
    )
    try:
        outcome = _state.runner().run(job, job_id)
    except SoftTimeLimitExceeded:
        reason = f"took longer than {settings.task_soft_time_limit} s"
        return _fail(store, job_id, job, reason, "timeout")
    except CutoutError as exc:  # bad image, refused path, unusable output format
        return _fail(store, job_id, job, str(exc), failure_kind(exc))
    except TRANSIENT as exc:
        return _retry(self, store, job_id, job, exc)
    if outcome.data is not None:
        store.store_result(job_id, outcome.data)
    record = store.update(
        job_id,
        "succeeded",
        output=str(outcome.output) if outcome.output else None,
        duration=round(outcome.duration, 3),
        has_bytes=outcome.data is not None,
        error=None,
    )
    store.end_attempt(job_id)
    metrics.IMAGES.labels("succeeded", "").inc()
    metrics.IMAGE_SECONDS.labels(metrics.size_class(outcome.pixels)).observe(outcome.duration)
    log.info("%s -> %s in %.2f s", job.label, record.output or "bytes", outcome.duration)
    return record.model_dump(mode="json")


def failure_kind(exc: CutoutError) -> str:
    """A small, fixed set of metric labels: never the message itself."""
    if isinstance(exc, ImageError):
        return "image"
    if isinstance(exc, JobError):
        return "job"
    if isinstance(exc, ModelError):
        return "model"
    return "output"


def _fail(
    store: StatusStore, job_id: str, job: RemoveJob, reason: str, kind: str
) -> dict[str, Any]:
    store.update(job_id, "failed", error=reason)
    store.end_attempt(job_id)
    metrics.IMAGES.labels("failed", kind).inc()
    log.warning("%s failed: %s", job.label, reason)
    raise JobFailed(reason)


def _retry(
    task: Task, store: StatusStore, job_id: str, job: RemoveJob, exc: Exception
) -> dict[str, Any]:
    attempt = task.request.retries
    if attempt >= settings.max_retries:
        reason = f"gave up after {attempt + 1} attempts: {exc}"
        return _fail(store, job_id, job, reason, "transient")
    store.update(job_id, "retrying", error=f"{type(exc).__name__}: {exc}")
    store.end_attempt(job_id)
    raise task.retry(exc=exc, countdown=settings.retry_backoff * 2**attempt)
