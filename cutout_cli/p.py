"""`cutout p INPUT_DIR OUTPUT_DIR`: every image of a folder tree, in-process."""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from cutout.errors import CutoutError
from cutout.images import write_atomic
from cutout.pipeline import Remover, output_format
from cutout.session import default_threads, taking_turns, usable_cores
from cutout_cli.common import EXIT_FAILED, echo_err, get_settings, reporting
from cutout_cli.options import (
    build_remover,
    collect,
    model_file_flags,
    removal_options,
    with_model_file,
)
from worker.naming import IMAGE_SUFFIX_LIST, batch, is_image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


def find_files(root: Path, exclude: Path) -> tuple[list[Path], int]:
    """The images under root (worker.naming.is_image), sorted, and how many other files
    were skipped; hidden entries and the output tree are left out unseen."""
    images, others = [], 0
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_relative_to(exclude) or not path.is_file():
            continue
        if is_image(path):
            images.append(path)
        else:
            others += 1
    return images, others


def plan(sources: list[Path], in_dir: Path, out_dir: Path, fmt: str) -> list[Job]:
    """Mirror the tree, outputs named by worker.naming.batch: `a.jpg` and `a.png` in one
    folder give `a.png` and `a (2).png`, the same names on every run."""
    named = batch((source.relative_to(in_dir) for source in sources), fmt)
    return [Job(source, out_dir / named[source.relative_to(in_dir)]) for source in sources]


def up_to_date(job: Job) -> bool:
    """Whether the job's output exists and is newer than its input: done by an earlier run
    (an output is renamed into place only once whole, so one that exists is complete)."""
    try:
        return job.target.stat().st_mtime_ns > job.source.stat().st_mtime_ns
    except OSError:  # no output yet (or an input gone meanwhile: let its job say so)
        return False


def lanes_for(cores: int) -> int:
    """Images in flight at once: two as soon as there are two cores. The model's runs take
    turns on all the cores (cutout.session.TakingTurns: a run's activations are the largest
    part of the memory), and one image's decoding, compositing and encoding run while the
    other's model runs (README "Performance")."""
    return 2 if cores >= 2 else 1


def process_one(remover: Remover, job: Job, fmt: str) -> str | None:
    """Cut out and write one image; the reason it failed, or None."""
    try:
        data = remover.process(job.source, fmt, source=str(job.source))
        job.target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(job.target, data, like=job.source)
    except (CutoutError, OSError) as exc:
        return str(exc)
    return None


def run_jobs(
    remover: Remover, jobs: list[Job], fmt: str, lanes: int
) -> Iterator[tuple[Job, str | None]]:
    """Each job and its failure (or None), in order, with up to `lanes` images in flight
    (Pillow, zlib-ng and ONNX Runtime release the GIL) and a few more queued."""
    if lanes <= 1:
        for job in jobs:
            yield job, process_one(remover, job, fmt)
        return
    queued: deque[tuple[Job, Future[str | None]]] = deque()
    todo = iter(jobs)
    with ThreadPoolExecutor(lanes, thread_name_prefix="cutout-p") as pool:
        try:
            for job in todo:
                queued.append((job, pool.submit(process_one, remover, job, fmt)))
                if len(queued) > lanes:
                    done, future = queued.popleft()
                    yield done, future.result()
            while queued:
                done, future = queued.popleft()
                yield done, future.result()
        finally:  # Ctrl-C or an unexpected error: finish what runs, start nothing more
            for _, future in queued:
                future.cancel()


HELP = f"""Remove the background of every image under INPUT_DIR into OUTPUT_DIR.

Subfolders are mirrored; two inputs that would share an output name (a.jpg, a.png) get
a.png and a (2).png. Images are the files whose names end in
{" ".join(IMAGE_SUFFIX_LIST)} (any case); other files are counted and skipped.
A file that fails is reported and skipped; the exit code is 1 when any failed.
With --skip-existing, an input whose output exists and is newer than it is left alone:
a run that was interrupted, run again, does only the rest.
"""


@click.command("p", help=HELP)
@click.argument("input_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("output_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--skip-existing",
    is_flag=True,
    help="Skip inputs whose output exists and is newer than the input.",
)
@removal_options
@model_file_flags
@click.pass_context
def p_command(
    ctx: click.Context, /, input_dir: Path, output_dir: Path, skip_existing: bool, **params: Any
) -> None:
    settings = with_model_file(get_settings(ctx), params)
    given = collect(params)
    lanes = lanes_for(usable_cores())
    fast = (given.get("precision") or settings.precision) != "fp32"
    if fast and not settings.threads:
        # OpenVINO runs one stream per image in flight, the cores shared out: a stream holds
        # far less than an ONNX Runtime run (bf16: ~115 MB), and it measured 7-10% faster
        # than one stream on every core taking turns.
        settings = settings.model_copy(update={"threads": default_threads(lanes)})
    with reporting(ctx):
        fmt = output_format(None, given.get("format"), settings.output_format)
        remover = build_remover(settings, given)  # CUTOUT_THREADS: those of a run
    if not fast:
        remover.session = taking_turns(remover.session)
    in_dir, out_dir = input_dir.resolve(), output_dir.resolve()
    images, skipped = find_files(in_dir, out_dir)
    planned = plan(images, in_dir, out_dir, fmt)
    # Names are planned over every input first, so that skipping keeps them the same.
    jobs = [job for job in planned if not (skip_existing and up_to_date(job))]
    started = time.monotonic()
    failed = 0
    with tqdm(total=len(jobs), unit="img", desc="cutout", disable=None, leave=False) as bar:
        for _, error in run_jobs(remover, jobs, fmt, lanes):
            bar.update()
            if error is not None:
                failed += 1
                tqdm.write(f"FAILED {error}", file=sys.stderr)
    elapsed = time.monotonic() - started
    fresh = f", {len(planned) - len(jobs)} up to date" if skip_existing else ""
    echo_err(
        f"{len(jobs) - failed} done, {failed} failed{fresh}, of {len(planned)} images "
        f"in {elapsed:.1f} s -> {out_dir}{_skipped(skipped)}"
    )
    if failed:
        ctx.exit(EXIT_FAILED)


def _skipped(count: int) -> str:
    """The files that are not images, counted so that none goes missing unexplained."""
    if not count:
        return ""
    return f"; {count} file{'s' if count > 1 else ''} skipped: not an image by name"
