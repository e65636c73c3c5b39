"""The `cutout.remove` task: validate the payload, run the job, record its status.

Thin on purpose: the work is in `worker.runner` (and the engine); here are only the
Celery-facing decisions: what is retried, what fails for good, what is a poison job.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

import redis
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_init, worker_process_init

from cutout import store as model_store
from cutout.errors import CutoutError
from cutout.models import get_model
from worker.app import app, settings
from worker.jobs import TASK_NAME, JobError, RemoveJob, parse_job
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
        self._runner: JobRunner | None = None
        self._status: StatusStore | None = None
        self._lock = threading.Lock()

    def runner(self) -> JobRunner:
        with self._lock:
            if self._runner is None:
                self._runner = JobRunner(settings, processes=self.processes)
            return self._runner

    def status(self) -> StatusStore:
        with self._lock:
            if self._status is None:
                self._status = StatusStore.from_url(
                    settings.status_url, ttl=settings.status_ttl, result_ttl=settings.result_ttl
                )
            return self._status


_state = _ProcessState()


@worker_init.connect
def _before_fork(sender: Any = None, **_: Any) -> None:
    """In the main process: fetch the model once, before the pool forks."""
    _state.processes = int(getattr(sender, "concurrency", 1) or 1)
    if settings.model_path is None:
        model_store.ensure(
            get_model(settings.model),
            settings.model_home,
            auto_pull=settings.model_auto_pull,
            mirror=settings.model_mirror,
            progress=False,
        )


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    # ONNX Runtime sessions do not survive a fork: each child loads its own, in a thread,
    # because worker_process_init must return within 4 s and u2net may take longer.
    threading.Thread(target=_state.runner().warm, name="cutout-warm", daemon=True).start()


@app.task(name=TASK_NAME, bind=True, throws=(JobFailed,))
def remove(self: Task, **kwargs: Any) -> dict[str, Any]:
    job_id = str(self.request.id)
    store = _state.status()
    try:
        job = parse_job(kwargs, inline_max_bytes=settings.inline_max_bytes)
    except JobError as exc:
        store.update(job_id, "failed", error=str(exc))
        raise JobFailed(str(exc)) from exc
    done = store.get(job_id)
    if done is not None and done.state == "succeeded":
        # A re-sent job (a watcher recovering after a restart): the output already exists.
        return done.model_dump(mode="json")
    crashes = store.begin_attempt(job_id)
    if crashes >= settings.max_deliveries:
        return _fail(store, job_id, job, f"its worker died {crashes} times on it (poison image?)")
    store.update(
        job_id,
        "started",
        input=job.label,
        model=job.model or settings.model,
        worker=self.request.hostname or socket.gethostname(),
    )
    try:
        outcome = _state.runner().run(job)
    except SoftTimeLimitExceeded:
        return _fail(store, job_id, job, f"took longer than {settings.task_soft_time_limit} s")
    except CutoutError as exc:  # bad image, refused path, unusable output format
        return _fail(store, job_id, job, str(exc))
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
    log.info("%s -> %s in %.2f s", job.label, record.output or "bytes", outcome.duration)
    return record.model_dump(mode="json")


def _fail(store: StatusStore, job_id: str, job: RemoveJob, reason: str) -> dict[str, Any]:
    store.update(job_id, "failed", error=reason)
    store.end_attempt(job_id)
    log.warning("%s failed: %s", job.label, reason)
    raise JobFailed(reason)


def _retry(
    task: Task, store: StatusStore, job_id: str, job: RemoveJob, exc: Exception
) -> dict[str, Any]:
    attempt = task.request.retries
    if attempt >= settings.max_retries:
        return _fail(store, job_id, job, f"gave up after {attempt + 1} attempts: {exc}")
    store.update(job_id, "retrying", error=f"{type(exc).__name__}: {exc}")
    store.end_attempt(job_id)
    raise task.retry(exc=exc, countdown=settings.retry_backoff * 2**attempt)
