"""Submitting jobs from other applications, and waiting for them.

    from worker.client import submit, wait
    job_id = submit("inbox/shoes/red.jpg", background="white")
    record = wait(job_id, timeout=60).record

Apps that do not import this project send the same task with plain Celery (README).
"""

from __future__ import annotations

import base64
import os
import uuid
from contextlib import suppress
from dataclasses import dataclass
from functools import cache
from typing import Any

from celery import Celery

from settings import Settings, load_settings
from worker.jobs import TASK_NAME, JobRecord, RemoveJob, parse_job
from worker.status import StatusStore


class WaitTimeout(TimeoutError):
    """The job did not finish in time; it may still finish later."""


@dataclass(frozen=True)
class JobResult:
    record: JobRecord
    data: bytes | None  # the encoded image, for jobs that asked for the bytes


class Client:
    def __init__(self, app: Celery, status: StatusStore, *, queue: str, inline_max_bytes: int):
        self.app = app
        self.status = status
        self.queue = queue
        self.inline_max_bytes = inline_max_bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> Client:
        from worker.app import create_app

        status = StatusStore.from_url(
            settings.status_url,
            prefix=settings.key_prefix,
            ttl=settings.status_ttl,
            result_ttl=settings.result_ttl,
        )
        return cls(
            create_app(settings),
            status,
            queue=settings.queue,
            inline_max_bytes=settings.inline_max_bytes,
        )

    def close(self) -> None:
        self.status.close()
        self.app.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(
        self, path: str | os.PathLike[str], *, job_id: str | None = None, **options: Any
    ) -> str:
        """Enqueue a file the workers can see (under their configured folders).

        Giving the job id makes a re-send idempotent: a job already done is not redone.
        """
        return self._send({"input_path": os.fspath(path), **options}, job_id)

    def submit_bytes(
        self,
        data: bytes,
        *,
        name: str | None = None,
        job_id: str | None = None,
        **options: Any,
    ) -> str:
        """Enqueue an image sent inline; without output_path the result comes back as bytes.

        Choosing the job id lets a caller start following the job before it exists.
        """
        payload = {"input_data": base64.b64encode(data).decode("ascii"), **options}
        if name is not None:
            payload["input_name"] = name
        return self._send(payload, job_id)

    def wait(self, job_id: str, timeout: float = 60.0) -> JobResult:
        """The job's final record (and bytes, when it returned them); WaitTimeout if none."""
        for record in self.status.follow(job_id, timeout=timeout):
            if record.done:
                return self._result(record)
        last = self.status.get(job_id)
        if last is not None and last.done:  # finished between two looks
            return self._result(last)
        raise WaitTimeout(f"job {job_id} not finished after {timeout:.0f} s")

    def _send(self, payload: dict[str, Any], job_id: str | None) -> str:
        job: RemoveJob = parse_job(payload, inline_max_bytes=self.inline_max_bytes)
        job_id = job_id or str(uuid.uuid4())
        # Recorded before sending, so a fast worker's "started" is never overwritten.
        self.status.update(job_id, "queued", input=job.label, output=job.output_path)
        kwargs = job.model_dump(exclude_none=True)
        try:
            self.app.send_task(
                TASK_NAME,
                kwargs=kwargs,
                task_id=job_id,
                queue=self.queue,
                kwargsrepr=readable(kwargs),
            )
        except Exception as exc:  # kombu's and redis-py's errors have no common base
            self._unsent(job_id, exc)
            raise
        return job_id

    def _unsent(self, job_id: str, exc: Exception) -> None:
        """A record left "queued" for a job that never reached the broker would say so for a
        day: it says what happened instead (unless a worker has it after all: a publish can
        fail after the broker took the message). Re-sending the same id runs the job."""
        with suppress(Exception):  # the status Redis may be the one that is down
            self.status.update_if(
                job_id, "queued", "failed", error=f"not queued: {exc}", error_kind="unsent"
            )

    def _result(self, record: JobRecord) -> JobResult:
        data = self.status.fetch_result(record.id) if record.has_bytes else None
        return JobResult(record, data)


def readable(kwargs: dict[str, Any]) -> str:
    """The arguments as Flower shows them: an inline image as its size, not as base64."""
    data = kwargs.get("input_data")
    if data is None:
        return repr(kwargs)
    return repr({**kwargs, "input_data": f"<{len(data) * 3 // 4} bytes, base64>"})


@cache
def default_client() -> Client:
    """The client built from this process's settings (CUTOUT_* variables, .env): the edge of
    the module's `submit`/`wait` shortcuts, read on their first call, never at import."""
    return Client.from_settings(load_settings())


def submit(path: str | os.PathLike[str], **options: Any) -> str:
    return default_client().submit(path, **options)


def submit_bytes(data: bytes, *, name: str | None = None, **options: Any) -> str:
    return default_client().submit_bytes(data, name=name, **options)


def wait(job_id: str, timeout: float = 60.0) -> JobResult:
    return default_client().wait(job_id, timeout)
