"""How `cutout health` judges what the heartbeats say (the live path is in test_worker)."""

from __future__ import annotations

from cutout.session import Session
from cutout_cli.health import watcher_checks, worker_checks


def beat(**extra: object) -> dict[str, object]:
    return {"hostname": "gpu1@box", "pid": 7, "model": "u2net"} | extra


def test_worker_that_fell_back_from_cuda_to_cpu_is_unhealthy() -> None:
    # No GPU here: the record is what a worker on a CUDA host without cuDNN would send.
    (check,) = worker_checks(
        [
            beat(
                providers=["CPUExecutionProvider"],
                requested=["CUDAExecutionProvider", "CPUExecutionProvider"],
                fell_back=True,
            )
        ],
        None,
    )
    assert not check.ok and "fell back" in check.detail and "CUDAExecutionProvider" in check.detail


def test_worker_on_its_requested_provider_is_healthy_and_host_filter_applies() -> None:
    records = [beat(providers=["CUDAExecutionProvider", "CPUExecutionProvider"], fell_back=False)]
    assert worker_checks(records, None)[0].ok
    (missing,) = worker_checks(records, "cpu-host")
    assert not missing.ok and "cpu-host" in missing.detail


def test_session_knows_when_it_fell_back() -> None:
    fell = Session(
        spec=None,
        inference=None,
        providers=("CPUExecutionProvider",),
        path=None,  # type: ignore[arg-type]
        requested=("CUDAExecutionProvider", "CPUExecutionProvider"),
    )
    fine = Session(
        spec=None,
        inference=None,
        providers=("CPUExecutionProvider",),
        path=None,  # type: ignore[arg-type]
        requested=("CPUExecutionProvider",),
    )
    assert fell.fell_back and not fine.fell_back


def test_missing_watcher_is_reported_but_only_required_on_request() -> None:
    (check,) = watcher_checks([], required=False)
    assert not check.ok and not check.required


def test_worker_shows_the_precision_it_runs_at() -> None:
    records = [beat(providers=["OpenVINO:CPU"], precision="bf16", runs_at="119 conv bf16")]
    (check,) = worker_checks(records, None)
    assert check.ok and "u2net on OpenVINO:CPU, precision bf16 (119 conv bf16)" in check.detail
