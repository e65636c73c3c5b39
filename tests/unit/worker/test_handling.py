"""The job's decisions, in-process: succeed, retry with backoff then give up, fail for good,
poison, timeout, and a finished job not run again.

The real JobRunner on real folders, with two fakes where they are not the point: an
inference session that answers a fixed mask (the real model's masks are tested in
tests/unit/engine and through a real worker in tests/integration/test_worker.py), and the
job records kept in a dict instead of Redis (the StatusStore is tested on a real Redis in
tests/integration/test_status.py).
"""

from __future__ import annotations

import base64
import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from celery.exceptions import SoftTimeLimitExceeded
from PIL import Image

from cutout.models import get_model
from cutout.session import CPU, Session
from settings import Settings
from worker.handling import Failed, JobHandler, Retry, Succeeded
from worker.jobs import JobRecord, State
from worker.metrics import NoMetrics
from worker.runner import JobRunner

MODEL = "u2netp"
GRID = get_model(MODEL).input_size
MAX_RETRIES = 3
MAX_DELIVERIES = 3


@dataclass(frozen=True)
class _Input:
    name: str


class FixedMask:
    """An inference session that sees a subject in the middle half of every image."""

    def __init__(self) -> None:
        self.calls = 0

    def get_inputs(self) -> Sequence[Any]:
        return [_Input("input.1")]

    def run(
        self, output_names: Sequence[str] | None, input_feed: dict[str, np.ndarray]
    ) -> list[Any]:
        self.calls += 1
        self.answer(input_feed)
        pred = np.zeros((1, 1, GRID, GRID), dtype=np.float32)
        pred[..., GRID // 4 : 3 * GRID // 4, GRID // 4 : 3 * GRID // 4] = 1
        return [pred]

    def answer(self, input_feed: dict[str, np.ndarray]) -> None:
        """What happens while the model runs: nothing special here."""


class PastTheSoftLimit(FixedMask):
    def answer(self, input_feed: dict[str, np.ndarray]) -> None:
        raise SoftTimeLimitExceeded()  # what Celery's signal raises in the running task


class ProcessKilled(BaseException):
    """Stands for a worker process killed mid-job: nothing after it runs."""


class KillsItsWorker(FixedMask):
    def answer(self, input_feed: dict[str, np.ndarray]) -> None:
        raise ProcessKilled()


class MemoryStatus:
    """The StatusStore methods the handler uses (worker.handling.JobStatus), on dicts, with
    the same bookkeeping: "started" counts an attempt, and an attempt never ended counts as
    a crash at the next."""

    def __init__(self) -> None:
        self.records: dict[str, JobRecord] = {}
        self.events: list[tuple[str, State]] = []
        self.running: set[str] = set()
        self.crashes: Counter[str] = Counter()
        self.results: dict[str, bytes] = {}

    def get(self, job_id: str) -> JobRecord | None:
        return self.records.get(job_id)

    def update(self, job_id: str, state: State, **fields: Any) -> JobRecord:
        old = self.records.get(job_id)
        base = old.model_dump() if old is not None else {"id": job_id}
        attempts = int(base.get("attempts") or 0) + (state == "started")
        record = JobRecord.model_validate({**base, **fields, "state": state, "attempts": attempts})
        self.records[job_id] = record
        self.events.append((job_id, state))
        return record

    def begin_attempt(self, job_id: str) -> int:
        if job_id in self.running:
            self.crashes[job_id] += 1
        self.running.add(job_id)
        return self.crashes[job_id]

    def end_attempt(self, job_id: str) -> None:
        self.running.discard(job_id)

    def store_result(self, job_id: str, data: bytes) -> None:
        self.results[job_id] = data

    def states(self, job_id: str) -> list[State]:
        return [state for id_, state in self.events if id_ == job_id]


@dataclass
class CountedMetrics(NoMetrics):
    """The handler's counts, as the worker's metrics would label them."""

    done: list[tuple[str, str]] = field(default_factory=list)
    pixels: list[int] = field(default_factory=list)

    def succeeded(self, pixels: int, seconds: float) -> None:
        self.done.append(("succeeded", ""))
        self.pixels.append(pixels)

    def failed(self, reason: str) -> None:
        self.done.append(("failed", reason))


@dataclass
class Worker:
    """A handler on its folders, with what it records and counts."""

    handler: JobHandler
    status: MemoryStatus
    metrics: CountedMetrics
    inference: FixedMask
    inbox: Path
    outbox: Path
    opened: list[tuple[str, str]]  # the sessions the runner asked for: (model, precision)

    def handle(self, job_id: str, attempt: int = 0, **kwargs: Any) -> Succeeded | Retry | Failed:
        return self.handler.handle(job_id, kwargs, attempt=attempt, worker="test@host")

    def drop(self, rel: str, size: tuple[int, int] = (64, 48)) -> str:
        path = self.inbox / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (200, 120, 40)).save(path, "JPEG")
        return rel


def make_worker(root: Path, inference: FixedMask, **settings_given: Any) -> Worker:
    folders = {name: root / name for name in ("inbox", "outbox", "failed", "done")}
    for folder in folders.values():
        folder.mkdir()
    settings = Settings(
        model=MODEL,
        inbox=folders["inbox"],
        outbox=folders["outbox"],
        failed_dir=folders["failed"],
        done_dir=folders["done"],
        **settings_given,
    )

    opened: list[tuple[str, str]] = []

    def sessions(model: str, precision: str) -> Session:
        opened.append((model, precision))
        spec = get_model(model)
        return Session(spec, inference, providers=(CPU,), path=root / spec.file_name)

    status, metrics = MemoryStatus(), CountedMetrics()
    handler = JobHandler(
        JobRunner(settings, sessions=sessions),
        status,
        metrics,
        model=MODEL,
        inline_max_bytes=1_000_000,
        max_retries=MAX_RETRIES,
        retry_backoff=2.0,
        max_deliveries=MAX_DELIVERIES,
        soft_time_limit=120,
    )
    return Worker(handler, status, metrics, inference, folders["inbox"], folders["outbox"], opened)


@pytest.fixture
def worker(tmp_path: Path) -> Worker:
    return make_worker(tmp_path, FixedMask())


def test_success_records_the_output_and_duration(worker: Worker) -> None:
    rel = worker.drop("shop/red shoe.jpg")
    decision = worker.handle("job-1", input_path=rel)
    assert isinstance(decision, Succeeded)
    out = worker.outbox / "shop" / "red shoe.png"
    record = worker.status.records["job-1"]
    assert decision.record == record
    assert record.state == "succeeded" and record.error is None
    assert record.output == str(out) and record.input == rel
    assert record.model == MODEL and record.worker == "test@host" and record.attempts == 1
    assert record.duration is not None and record.duration >= 0
    assert worker.status.states("job-1") == ["started", "succeeded"]
    assert not worker.status.running  # the attempt is over
    with Image.open(out) as image:
        alpha = np.asarray(image.getchannel("A"))
    assert image.size == (64, 48)
    assert alpha[24, 32] == 255 and alpha[0, 0] == 0  # the session's mask is the cut-out
    assert worker.metrics.done == [("succeeded", "")] and worker.metrics.pixels == [64 * 48]


def test_a_job_gets_a_session_per_model_and_precision(worker: Worker) -> None:
    for n, precision in enumerate(("bf16", None, "bf16")):
        extra = {"precision": precision} if precision else {}
        decision = worker.handle(f"job-{n}", input_path=worker.drop(f"{n}.jpg"), **extra)
        assert isinstance(decision, Succeeded)
    assert worker.opened == [(MODEL, "bf16"), (MODEL, "fp32")]  # the setting's, then reused


def test_inline_image_comes_back_as_bytes(worker: Worker) -> None:
    data = io.BytesIO()
    Image.new("RGB", (20, 10), "white").save(data, "PNG")
    payload = base64.b64encode(data.getvalue()).decode()
    decision = worker.handle("job-1", input_data=payload, format="webp")
    assert isinstance(decision, Succeeded)
    assert decision.record.has_bytes and decision.record.output is None
    with Image.open(io.BytesIO(worker.status.results["job-1"])) as image:
        assert image.format == "WEBP" and image.size == (20, 10)


def test_a_transient_error_retries_with_backoff_then_gives_up(worker: Worker) -> None:
    # A file where the output folder should be: every write fails (NotADirectoryError).
    (worker.outbox / "blocked").write_text("in the way")
    rel = worker.drop("dog.jpg")
    countdowns = []
    for attempt in range(MAX_RETRIES):
        decision = worker.handle("job-1", attempt, input_path=rel, output_path="blocked/dog.png")
        assert isinstance(decision, Retry), decision
        assert isinstance(decision.error, OSError)
        countdowns.append(decision.countdown)
        record = worker.status.records["job-1"]
        assert record.state == "retrying" and "NotADirectoryError" in (record.error or "")
    assert countdowns == [2.0, 4.0, 8.0]  # 2 * 2**n
    decision = worker.handle("job-1", MAX_RETRIES, input_path=rel, output_path="blocked/dog.png")
    assert isinstance(decision, Failed) and decision.kind == "transient"
    record = worker.status.records["job-1"]
    assert record.state == "failed" and record.attempts == MAX_RETRIES + 1
    assert (record.error or "").startswith(f"gave up after {MAX_RETRIES + 1} attempts: ")
    assert worker.status.states("job-1") == ["started", "retrying"] * 3 + ["started", "failed"]
    assert worker.metrics.done == [("failed", "transient")]


def test_a_bad_image_fails_for_good_naming_the_file(worker: Worker) -> None:
    (worker.inbox / "broken.jpg").write_bytes(b"not an image at all")
    decision = worker.handle("job-1", input_path="broken.jpg")
    assert isinstance(decision, Failed) and decision.kind == "image"
    record = worker.status.records["job-1"]
    assert record.state == "failed" and "broken.jpg" in (record.error or "")
    assert record.error == decision.reason and record.attempts == 1
    assert worker.inference.calls == 0 and not worker.status.running
    assert not list(worker.outbox.iterdir())
    assert worker.metrics.done == [("failed", "image")]


def test_an_invalid_payload_fails_at_once(worker: Worker) -> None:
    decision = worker.handle("job-1", input_path="a.jpg", crop_margin=-5)
    assert isinstance(decision, Failed) and decision.kind == "invalid"
    record = worker.status.records["job-1"]
    assert record.state == "failed" and "crop_margin" in (record.error or "")
    assert worker.status.states("job-1") == ["failed"]
    assert worker.metrics.done == [("failed", "invalid")]


def test_a_job_chooses_among_the_models_the_operator_offers(tmp_path: Path) -> None:
    """CUTOUT_MODEL and CUTOUT_JOB_MODELS, and nothing else: each model costs the worker
    its memory (and a download where auto-pull is on)."""
    worker = make_worker(tmp_path, FixedMask(), job_models="silueta")
    rel = worker.drop("a.jpg")
    decision = worker.handle("job-1", input_path=rel, model="u2net")
    assert isinstance(decision, Failed) and decision.kind == "job"
    assert decision.reason == "model 'u2net' is not offered here; offered: u2netp, silueta"
    assert worker.inference.calls == 0
    decision = worker.handle("job-2", input_path=rel, model="silueta", output_path="b.png")
    assert isinstance(decision, Succeeded) and decision.record.model == "silueta"


def test_a_job_whose_worker_died_max_deliveries_times_is_poison(tmp_path: Path) -> None:
    worker = make_worker(tmp_path, KillsItsWorker())
    rel = worker.drop("poison.jpg")
    for _ in range(MAX_DELIVERIES):
        with pytest.raises(ProcessKilled):
            worker.handle("job-1", input_path=rel)
    decision = worker.handle("job-1", input_path=rel)
    reason = f"its worker died {MAX_DELIVERIES} times on it (poison image?)"
    assert decision == Failed(reason, "poison")
    record = worker.status.records["job-1"]
    assert record.state == "failed" and record.error == decision.reason
    assert worker.inference.calls == MAX_DELIVERIES  # not run a fourth time
    assert worker.metrics.done == [("failed", "poison")]


def test_past_the_soft_time_limit_is_a_timeout_failure(tmp_path: Path) -> None:
    worker = make_worker(tmp_path, PastTheSoftLimit())
    decision = worker.handle("job-1", input_path=worker.drop("slow.jpg"))
    assert decision == Failed("took longer than 120 s", "timeout")
    assert worker.status.records["job-1"].state == "failed"
    assert not list(worker.outbox.iterdir()) and not worker.status.running
    assert worker.metrics.done == [("failed", "timeout")]


def test_a_job_that_succeeded_is_not_run_again(worker: Worker) -> None:
    rel = worker.drop("once.jpg")
    first = worker.handle("job-1", input_path=rel)
    assert isinstance(first, Succeeded)
    (worker.outbox / "once.png").unlink()
    again = worker.handle("job-1", input_path=rel)  # a re-sent message
    assert again == first
    assert worker.inference.calls == 1
    assert worker.status.states("job-1") == ["started", "succeeded"]
    assert not (worker.outbox / "once.png").exists()
    assert worker.metrics.done == [("succeeded", "")]
