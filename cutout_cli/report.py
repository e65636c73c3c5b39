"""`cutout report DIR -o report.html`: see where edges fail, worst first."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
import numpy as np
from tqdm import tqdm

from cutout import scores
from cutout.errors import CutoutError
from cutout.images import write_atomic
from cutout.options import TRANSPARENT, merged, option
from cutout.pipeline import Remover
from cutout.report import (
    Panel,
    Row,
    find_pairs,
    load_truth,
    over_checkerboard,
    render,
    worst_first,
)
from cutout_cli.common import EXIT_FAILED, echo_err, fail, get_settings, reporting
from cutout_cli.options import collect, model_file_flags, option_flags, with_model_file
from settings import Settings, engine
from worker.naming import IMAGE_SUFFIXES

# What changes the mask; the rest (background, crop, encoding) is fixed by the page.
REPORT_OPTIONS = tuple(
    option(name)
    for name in (
        "model",
        "refine",
        "matting_fg_threshold",
        "matting_bg_threshold",
        "matting_erode_size",
        "post_process_mask",
        "max_pixels",
    )
)


def make_remover(settings: Settings, given: dict[str, Any]) -> Remover:
    """The configured engine, made to give the transparent, uncropped cut-out."""
    options = replace(
        merged(given, engine.removal_options(settings)),
        background=TRANSPARENT,
        only_mask=False,
        crop=False,
    )
    return Remover(engine.model_session(settings, given.get("model")), options)


def make_row(remover: Remover, image_path: Path, truth_path: Path | None) -> Row:
    decoded = remover.decode(image_path, source=str(image_path))
    result = remover.cut_out(decoded)
    mask = result.getchannel("A")
    panels = [
        Panel("input", decoded.image),
        Panel("mask", mask),
        Panel("cut-out", over_checkerboard(result, mask)),
    ]
    if truth_path is None:
        return Row(image_path.name, tuple(panels))
    truth = load_truth(truth_path, mask.size)
    panels.append(Panel("ground truth", truth))
    return Row(image_path.name, tuple(panels), scores.score(np.asarray(mask), np.asarray(truth)))


def summary_html(rows: list[Row]) -> str:
    scored = [row.scores for row in rows if row.scores is not None]
    if not scored:
        return f"<p>{len(rows)} images, no ground truth: in folder order.</p>"
    mean = scores.mean_scores(scored)
    return (
        f"<p>{len(rows)} images, {len(scored)} with ground truth, worst boundary first. "
        f"Mean: boundary MAE {mean.boundary_mae:.4f}, IoU {mean.iou:.4f}, "
        f"MAE {mean.mae:.4f}, max-F {mean.max_f:.4f}.</p>"
    )


@click.command("report")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The HTML file to write.",
)
@option_flags(REPORT_OPTIONS)
@model_file_flags
@click.pass_context
def report_command(
    ctx: click.Context,
    /,
    *,
    directory: Path,
    output: Path,
    **params: Any,
) -> None:
    """One HTML page of input | mask | cut-out | ground truth for each image of DIRECTORY.

    DIRECTORY holds images/ and masks/ (the truth: same stem, 255 subject, 0 background,
    128 not scored), or is a plain folder of images. With truth, the worst boundary comes
    first. Pictures are embedded: the page is one self-contained file.
    """
    settings = with_model_file(get_settings(ctx), params)
    with reporting(ctx):
        remover = make_remover(settings, collect(params, REPORT_OPTIONS))
    pairs = find_pairs(directory, IMAGE_SUFFIXES)
    if not pairs:
        fail(f"{directory}: no images (nor an images/ folder)", EXIT_FAILED)
    rows: list[Row] = []
    failed = 0
    for image_path, truth_path in tqdm(pairs, unit="img", disable=None, leave=False):
        try:
            rows.append(make_row(remover, image_path, truth_path))
        except (CutoutError, OSError) as exc:
            failed += 1
            tqdm.write(f"FAILED {exc}", file=sys.stderr)
    page = render(worst_first(rows), f"cutout report: {directory}", summary_html(rows))
    output.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(output, page.encode("utf-8"))
    echo_err(f"{len(rows)} images, {failed} failed -> {output}")
    if failed:
        ctx.exit(EXIT_FAILED)
