"""`cutout p` with several images in flight: results and failures come back in input order,
and the outputs are the same as one at a time."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, cast

import pytest

from cutout.errors import ImageError
from cutout.pipeline import Remover
from cutout_cli.p import Job, lanes_for, run_jobs


class SlowRemover:
    """Takes longer for earlier images, fails on names containing "bad", counts overlap."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def process(self, data: Any, fmt: str, source: str | None = None) -> bytes:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            index = int(Path(str(data)).stem.split("-")[0])
            time.sleep(0.02 * (self.count - index))
            if "bad" in str(data):
                raise ImageError(str(data), "not an image")
            return f"{index}:{fmt}".encode()
        finally:
            with self._lock:
                self.running -= 1


def jobs(tmp_path: Path, names: list[str]) -> list[Job]:
    return [Job(tmp_path / "in" / n, tmp_path / "out" / "sub" / f"{n}.png") for n in names]


@pytest.mark.parametrize("lanes", [1, 2, 3])
def test_results_in_input_order_with_failures_in_place(tmp_path: Path, lanes: int) -> None:
    names = ["0-a", "1-bad", "2-b", "3-c", "4-bad", "5-d"]
    remover = SlowRemover(len(names))
    results = list(run_jobs(cast(Remover, remover), jobs(tmp_path, names), "png", lanes))
    assert [job.source.name for job, _ in results] == names
    failed = [job.source.name for job, error in results if error is not None]
    assert failed == ["1-bad", "4-bad"]
    assert all("not an image" in (error or "") for _, error in results if error)
    written = sorted(p.name for p in (tmp_path / "out" / "sub").iterdir())
    assert written == ["0-a.png", "2-b.png", "3-c.png", "5-d.png"]
    assert (tmp_path / "out" / "sub" / "3-c.png").read_bytes() == b"3:png"
    assert remover.most == min(lanes, len(names))


def test_stopping_early_starts_nothing_more(tmp_path: Path) -> None:
    names = [f"{i}-x" for i in range(12)]
    remover = SlowRemover(len(names))
    results = run_jobs(cast(Remover, remover), jobs(tmp_path, names), "png", 2)
    next(results)
    results.close()  # what Ctrl-C in the loop does
    written = list((tmp_path / "out" / "sub").iterdir())
    assert len(written) <= 4  # the first, those in flight and the one queued; not all 12


def test_two_images_in_flight_from_two_cores() -> None:
    assert [lanes_for(cores) for cores in (1, 2, 16)] == [1, 2, 2]
