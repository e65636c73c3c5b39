"""The job's decisions, with no Celery app or task in sight: what succeeded, what is
retried and when, what fails for good (a bad payload or image, a poison job, a job past
its time limit).

Each decision is recorded in the status store and counted in the metrics before it is
returned; the task (worker.tasks) only turns it into Celery's terms (a return value, a
retry, a raised JobFailed). Built once per worker process, from the settings handed down.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import redis
from celery.exceptions import SoftTimeLimitExceeded

from cutout.errors import CutoutError, ImageError, ModelError
from worker.jobs import JobError, JobRecord, RemoveJob, State, parse_job
from worker.metrics import Metrics
from worker.runner import Outcome

log = logging.getLogger(__name__)

# Transient: a shared folder hiccup or a lost Redis connection may work next time.
TRANSIENT = (OSError, redis.RedisError)


class JobStatus(Protocol):
    """The StatusStore methods the handler uses."""

    def get(self, job_id: str) -> JobRecord | None: ...

    def update(self, job_id: str, state: State, **fields: Any) -> JobRecord: ...

    def begin_attempt(self, job_id: str) -> int: ...

    def end_attempt(self, job_id: str) -> None: ...

    def store_result(self, job_id: str, data: bytes) -> None: ...


class Runner(Protocol):
    """What the handler needs of worker.runner.JobRunner."""

    def run(self, job: RemoveJob, job_id: str = "") -> Outcome: ...


@dataclass(frozen=True)
class Succeeded:
    record: JobRecord


@dataclass(frozen=True)
class Retry:
    error: Exception
    countdown: float  # seconds before the next attempt


@dataclass(frozen=True)
class Failed:
    reason: str  # the record's error, and the message Celery shows
    kind: str  # the metric label: never the message itself


Decision = Succeeded | Retry | Failed


class JobHandler:
    """One job's attempt, from its task kwargs to a recorded decision."""

    def __init__(
        self,
        runner: Runner,
        status: JobStatus,
        metrics: Metrics,
        *,
        model: str,
        inline_max_bytes: int,
        max_retries: int,
        retry_backoff: float,
        max_deliveries: int,
        soft_time_limit: int,
    ) -> None:
        """`model`: the default model, recorded for jobs that name none."""
        self.runner = runner
        self.status = status
        self.metrics = metrics
        self.model = model
        self.inline_max_bytes = inline_max_bytes
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.max_deliveries = max_deliveries
        self.soft_time_limit = soft_time_limit

    def handle(
        self, job_id: str, kwargs: Mapping[str, Any], *, attempt: int, worker: str
    ) -> Decision:
        """`attempt`: retries so far (0 on the first try); `worker`: who runs it, recorded."""
        try:
            job = parse_job(dict(kwargs), inline_max_bytes=self.inline_max_bytes)
        except JobError as exc:
            self.status.update(job_id, "failed", error=str(exc), error_kind="invalid")
            self.metrics.failed("invalid")
            return Failed(str(exc), "invalid")
        done = self.status.get(job_id)
        if done is not None and done.state == "succeeded":
            # A re-sent job (a watcher recovering after a restart): the output already exists.
            return Succeeded(done)
        crashes = self.status.begin_attempt(job_id)
        if crashes >= self.max_deliveries:
            reason = f"its worker died {crashes} times on it (poison image?)"
            return self._fail(job_id, job, reason, "poison")
        model = job.model or self.model
        self.status.update(job_id, "started", input=job.label, model=model, worker=worker)
        return self._run(job_id, job, attempt)

    def _run(self, job_id: str, job: RemoveJob, attempt: int) -> Decision:
        try:
            outcome = self.runner.run(job, job_id)
        except SoftTimeLimitExceeded:
            return self._fail(job_id, job, f"took longer than {self.soft_time_limit} s", "timeout")
        except CutoutError as exc:  # bad image, refused path, unusable output format
            return self._fail(job_id, job, str(exc), failure_kind(exc))
        except TRANSIENT as exc:
            return self._retry(job_id, job, exc, attempt)
        return self._succeed(job_id, job, outcome)

    def _succeed(self, job_id: str, job: RemoveJob, outcome: Outcome) -> Succeeded:
        if outcome.data is not None:
            self.status.store_result(job_id, outcome.data)
        record = self.status.update(
            job_id,
            "succeeded",
            output=str(outcome.output) if outcome.output else None,
            duration=round(outcome.duration, 3),
            has_bytes=outcome.data is not None,
            error=None,
            error_kind=None,
        )
        self.status.end_attempt(job_id)
        self.metrics.succeeded(outcome.pixels, outcome.duration)
        log.info("%s -> %s in %.2f s", job.label, record.output or "bytes", outcome.duration)
        return Succeeded(record)

    def _fail(self, job_id: str, job: RemoveJob, reason: str, kind: str) -> Failed:
        self.status.update(job_id, "failed", error=reason, error_kind=kind)
        self.status.end_attempt(job_id)
        self.metrics.failed(kind)
        log.warning("%s failed: %s", job.label, reason)
        return Failed(reason, kind)

    def _retry(self, job_id: str, job: RemoveJob, exc: Exception, attempt: int) -> Decision:
        if attempt >= self.max_retries:
            reason = f"gave up after {attempt + 1} attempts: {exc}"
            return self._fail(job_id, job, reason, "transient")
        self.status.update(job_id, "retrying", error=f"{type(exc).__name__}: {exc}")
        self.status.end_attempt(job_id)
        return Retry(exc, self.retry_backoff * 2**attempt)


def failure_kind(exc: CutoutError) -> str:
    """A small, fixed set of metric labels: never the message itself."""
    if isinstance(exc, ImageError):
        return "image"
    if isinstance(exc, JobError):
        return "job"
    if isinstance(exc, ModelError):
        return "model"
    return "output"
