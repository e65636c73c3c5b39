"""Mask quality on human ground truth: our refine modes beside rembg's, same images, one run.

    .venv/bin/python bench/quality.py [SET] [--model u2net] [--modes none,guided,matting]
                                      [--precisions bf16,int8] [--truth auto|soft|binary]

SET is laid out as images/ + masks/ (same stem; 255 subject, 0 background, 128 not scored);
default: ../shared/evalsets/pascal_s, which a clone lacks (`make quality QUALITY_SET=...`
points at another). The model runs once per image for us and once for
rembg; every refine mode starts from our one mask, and rembg's -ppm from rembg's mask, so
the rows differ only by what they claim to. Writes results.json, table.md and report.html
under --out, and prints the table. Each of --precisions adds a row of its mask as is
(`ours none (bf16)`) and a verdict against fp32's (issue 18: within 0.005 IoU and 5%
boundary MAE); a precision refused for the model is said so and skipped.

A set whose masks are alpha mattes ("soft truth": found by `soft_share`, or --truth soft)
is also scored as the matting benchmarks score it: SAD, MSE, gradient and connectivity
errors over the whole image (cutout/scores.py), in a table of their own and beside the
binary scores in results.json; IoU, MAE, max-F and boundary MAE are then taken against the
matte binarised at half, and the report is ordered by SAD.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make the engine importable
    sys.path.insert(0, str(REPO))

from bench import colours  # noqa: E402
from cutout import mask as model_mask  # noqa: E402
from cutout import refine, scores  # noqa: E402
from cutout.decontaminate import decontaminate  # noqa: E402
from cutout.images import decode  # noqa: E402
from cutout.models import MODELS  # noqa: E402
from cutout.options import REFINE_MODES  # noqa: E402
from cutout.report import (  # noqa: E402
    Panel,
    Row,
    find_pairs,
    load_truth,
    over_checkerboard,
    render,
    worst_first,
)
from cutout.session import Session  # noqa: E402
from settings import engine, load_settings  # noqa: E402
from worker.naming import IMAGE_SUFFIXES  # noqa: E402

DEFAULT_SET = REPO.parent / "shared" / "evalsets" / "pascal_s"
DEFAULT_OUT = REPO / "bench" / "out" / "quality"
REMBG = "rembg"
REMBG_PPM = "rembg -ppm"
HD = (1920, 1080)
# The bar for a refine mode to become the default.
BAR_BOUNDARY_GAIN = 0.15
BAR_IOU_LOSS = 0.005
BAR_MAX_F_LOSS = 0.01
# Issue 18's bar for a precision against fp32, on human truth.
FAST_IOU_LOSS = 0.005
FAST_BOUNDARY_LOSS = 0.05
# --truth auto: soft when more than this share of the truth pixels are partial. A binary
# set has none (128 aside), an anti-aliased outline about a pixel's width of its subject's
# edge; an alpha matte's soft band is several pixels wide all round, hair much more.
SOFT_SHARE = 0.01
TRUTHS = ("auto", "soft", "binary")
MaskFn = Callable[[Image.Image, Image.Image], Image.Image]


def ours(mode: str) -> str:
    return f"ours {mode}"


def at(precision: str) -> str:
    return f"ours none ({precision})"


def precision_verdict(mean: dict[str, scores.Scores], precision: str) -> str | None:
    """Whether a precision's masks score within issue 18's bar of fp32's on human truth."""
    base, it = mean.get(ours("none")), mean.get(at(precision))
    if base is None or it is None:
        return None
    iou, boundary = it.iou - base.iou, it.boundary_mae / base.boundary_mae - 1
    checks = {
        f"IoU {iou:+.4f} (needs >= -{FAST_IOU_LOSS})": iou >= -FAST_IOU_LOSS,
        f"boundary MAE {boundary:+.1%} (needs <= +{FAST_BOUNDARY_LOSS:.0%})": boundary
        <= FAST_BOUNDARY_LOSS,
    }
    head = "within" if all(checks.values()) else "beyond"
    details = "; ".join(k + (" ok" if ok else " FAIL") for k, ok in checks.items())
    return f"{at(precision)}: {head} the bar against fp32 ({details})"


@dataclass
class Outcome:
    """One image: the masks of every method, their scores and their cost."""

    name: str
    masks: dict[str, Image.Image] = field(default_factory=dict)
    # Soft truth only. Declared above `scores`, whose name would hide the module's here.
    matting: dict[str, scores.MattingScores] = field(default_factory=dict)
    scores: dict[str, scores.Scores] = field(default_factory=dict)
    ms: dict[str, float] = field(default_factory=dict)  # on top of the model
    colours: dict[str, dict[str, float]] = field(default_factory=dict)  # bench.colours


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn()
    return result, (time.perf_counter() - started) * 1000


class Methods:
    """Everything compared: our model with each refine mode, and rembg's own masks."""

    def __init__(
        self,
        session: Session,
        modes: list[str],
        with_rembg: bool,
        fast: dict[str, Session] | None = None,
        soft: bool = False,
    ) -> None:
        self.session = session
        self.soft = soft  # the truth is alpha mattes
        self.modes = modes
        self.fast = fast or {}  # other precisions of the same model
        self.rembg = _rembg_session(session) if with_rembg else None
        self.model_ms: list[float] = []
        self.colour_methods = colours.methods(with_rembg and _has("pymatting"))
        self.decontaminate_ms: list[float] = []
        self._previous: Image.Image | None = None  # the backdrop of the next photo's blends
        # The first run of a session pays for allocations: keep it out of the timings.
        model_mask.predict(session.inference, session.spec, Image.new("RGB", (64, 64)))

    @property
    def names(self) -> list[str]:
        theirs = [REMBG, REMBG_PPM] if self.rembg is not None else []
        return [*theirs, *(ours(m) for m in self.modes), *(at(p) for p in self.fast)]

    def run(self, image_path: Path, truth_path: Path) -> tuple[Outcome, Image.Image]:
        decoded = decode(image_path, max_pixels=10**9, source=str(image_path))
        image = decoded.image
        outcome = Outcome(image_path.name)
        if self.rembg is not None:
            self._run_rembg(image_path, outcome)
        spec = self.session.spec
        base, model_ms = timed(
            lambda: model_mask.predict(self.session.inference, spec, decoded.model_input)
        )
        self.model_ms.append(model_ms)
        for mode in self.modes:
            refined, ms = timed(partial(refine.refine, mode, image, base, grid=spec.input_size))
            outcome.masks[ours(mode)], outcome.ms[ours(mode)] = refined.mask, ms
        for precision, fast in self.fast.items():
            predicted = model_mask.predict(fast.inference, spec, decoded.model_input)
            outcome.masks[at(precision)] = predicted
        outcome.colours = colours.measure(image, base, self.colour_methods, self._previous)
        self.decontaminate_ms.append(timed(lambda: decontaminate(image, base))[1])
        self._previous = image
        truth = load_truth(truth_path, image.size)
        matte = np.asarray(truth)
        binary = scores.binarise(matte) if self.soft else matte
        for name, picture in outcome.masks.items():
            pixels = np.asarray(picture)
            outcome.scores[name] = scores.score(pixels, binary)
            if self.soft:
                outcome.matting[name] = scores.matting_score(pixels, matte)
        return outcome, truth

    def _run_rembg(self, image_path: Path, outcome: Outcome) -> None:
        from rembg import remove
        from rembg.bg import post_process

        with Image.open(image_path) as opened:
            theirs = remove(opened, session=self.rembg, only_mask=True)
        # Exactly what `rembg -ppm` does to the same mask: no second model run needed.
        ppm, ms = timed(lambda: post_process(np.asarray(theirs)))
        outcome.masks[REMBG] = theirs
        outcome.masks[REMBG_PPM] = Image.fromarray(ppm)
        outcome.ms[REMBG_PPM] = ms


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _rembg_session(session: Session) -> Any:
    """rembg's session on the very file ours uses, so that rembg never downloads."""
    os.environ["U2NET_HOME"] = str(session.path.parent)
    try:
        from rembg import new_session as rembg_new_session
    except ImportError:
        sys.exit("rembg is not installed: pip install -e '.[dev]', or pass --no-rembg")
    return rembg_new_session(session.spec.name)


def hd_cost(session: Session, image_path: Path, repeats: int = 5) -> dict[str, float]:
    """Model, guided-refinement and decontamination time on one photo scaled to 1920x1080.

    The fastest of several runs of each: on a shared machine, the least disturbed one.
    """
    with Image.open(image_path) as opened:
        image = opened.convert("RGB").resize(HD, Image.Resampling.BICUBIC)
    spec = session.spec
    model = [
        timed(lambda: model_mask.predict(session.inference, spec, image))[1] for _ in range(repeats)
    ]
    base = model_mask.predict(session.inference, spec, image)
    guided = [
        timed(lambda: refine.guided(image, base, spec.input_size))[1] for _ in range(4 * repeats)
    ]
    cleaned = [timed(lambda: decontaminate(image, base))[1] for _ in range(4 * repeats)]
    model_ms, guided_ms, decontaminate_ms = min(model), min(guided), min(cleaned)
    return {
        "model_ms": model_ms,
        "guided_ms": guided_ms,
        "guided_share": guided_ms / model_ms,
        "decontaminate_ms": decontaminate_ms,
        "decontaminate_share": decontaminate_ms / model_ms,
    }


def report_row(image: Image.Image, truth: Image.Image, outcome: Outcome, lead: str) -> Row:
    """input | each method's mask | the lead method's cut-out | truth, as thumbnails.

    Captions give each mask's boundary MAE, or on soft truth its SAD.
    """
    panels = [Panel("input", image)]
    for name, picture in outcome.masks.items():
        if outcome.matting:
            caption = f"{name}: SAD {outcome.matting[name].sad:.3f}"
        else:
            caption = f"{name}: {outcome.scores[name].boundary_mae:.3f}"
        panels.append(Panel(caption, picture))
    panels.append(Panel(f"cut-out, {lead}", over_checkerboard(image, outcome.masks[lead])))
    panels.append(Panel("alpha matte" if outcome.matting else "ground truth", truth))
    small = [Panel(p.caption, _thumb(p.picture)) for p in panels]
    note = lead
    if outcome.matting:
        m = outcome.matting[lead]
        note += (
            f": SAD {m.sad:.3f}, MSE {m.mse * 1000:.2f}e-3, Grad {m.grad:.3f}, Conn {m.conn:.3f}"
        )
    return Row(outcome.name, tuple(small), outcome.scores[lead], note=note)


def _thumb(picture: Image.Image) -> Image.Image:
    thumb = picture.copy()
    thumb.thumbnail((256, 256), Image.Resampling.LANCZOS)
    return thumb


def means(outcomes: list[Outcome], names: list[str]) -> dict[str, scores.Scores]:
    return {n: scores.mean_scores([o.scores[n] for o in outcomes]) for n in names}


def matting_means(outcomes: list[Outcome], names: list[str]) -> dict[str, scores.MattingScores]:
    return {n: scores.mean_matting([o.matting[n] for o in outcomes]) for n in names}


def soft_share(truth_paths: list[Path]) -> float:
    """The share of truth pixels strictly between 0 and 255, 128 not counted (GrabCut's
    "not scored" value): what tells an alpha matte from a binary mask."""
    partial_px = total = 0
    for path in truth_paths:
        with Image.open(path) as opened:
            levels = np.asarray(opened.convert("L"))
        partial = (levels > 0) & (levels < 255) & (levels != scores.IGNORE)
        partial_px += int(np.count_nonzero(partial))
        total += levels.size
    return partial_px / total if total else 0.0


def truth_kind(wanted: str, share: float) -> str:
    """--truth as asked; auto: soft when more than SOFT_SHARE of the pixels are partial."""
    if wanted != "auto":
        return wanted
    return "soft" if share > SOFT_SHARE else "binary"


def mean_ms(outcomes: list[Outcome], name: str) -> float | None:
    values = [o.ms[name] for o in outcomes if name in o.ms]
    return statistics.fmean(values) if values else None


def verdict(mean: dict[str, scores.Scores], name: str) -> str | None:
    """Whether a mode meets the issue's bar to become the default (needs rembg's rows)."""
    if REMBG not in mean or name == ours("none"):
        return None
    base, ppm, it = mean[REMBG], mean[REMBG_PPM], mean[name]
    change = it.boundary_mae / base.boundary_mae - 1
    checks = {
        f"boundary MAE {change:+.1%} vs rembg (needs <= -{BAR_BOUNDARY_GAIN:.0%})": change
        <= -BAR_BOUNDARY_GAIN,
        "boundary MAE below rembg -ppm": it.boundary_mae < ppm.boundary_mae,
        f"IoU {it.iou - base.iou:+.4f}": it.iou >= base.iou - BAR_IOU_LOSS,
        f"max-F {it.max_f - base.max_f:+.4f}": it.max_f >= base.max_f - BAR_MAX_F_LOSS,
    }
    failed = [label for label, ok in checks.items() if not ok]
    head = "meets the bar" if not failed else "misses the bar"
    return (
        f"{name}: {head} ({'; '.join(k + (' ok' if ok else ' FAIL') for k, ok in checks.items())})"
    )


def table(mean: dict[str, scores.Scores], outcomes: list[Outcome], model_ms: float) -> str:
    lines = [
        "| method | IoU | MAE | max-F | boundary MAE | ms/image beyond the model |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in mean.items():
        ms = mean_ms(outcomes, name)
        cost = "—" if ms is None else f"{ms:.1f}"
        lines.append(
            f"| {name} | {s.iou:.4f} | {s.mae:.4f} | {s.max_f:.4f} | {s.boundary_mae:.4f} "
            f"| {cost} |"
        )
    lines.append("")
    lines.append(f"Model: {model_ms:.0f} ms/image on average on this set.")
    return "\n".join(lines)


def matting_table(mean: dict[str, scores.MattingScores], share: float) -> str:
    """The matting benchmarks' four errors, in the units their tables print."""
    lines = [
        f"Soft truth: alpha mattes ({share:.1%} of the truth pixels partial), scored over the "
        "whole image (no trimaps), mean per image; lower is better.",
        "",
        "| method | SAD (/1000) | MSE (x1000) | Grad (/1000) | Conn (/1000) |",
        "|---|---|---|---|---|",
    ]
    for name, m in mean.items():
        lines.append(f"| {name} | {m.sad:.3f} | {m.mse * 1000:.3f} | {m.grad:.3f} | {m.conn:.3f} |")
    lines += ["", "Against the mattes binarised at half (alpha >= 0.5 is subject):", ""]
    return "\n".join(lines)


def matting_comparison(mean: dict[str, scores.MattingScores], name: str) -> str | None:
    """How a row's matting errors compare with rembg's default on the same mattes."""
    base = mean.get(REMBG)
    if base is None or name == REMBG:
        return None
    it = mean[name]
    changes = [
        f"{label} {_change(getattr(it, key), getattr(base, key))}"
        for label, key in (("SAD", "sad"), ("MSE", "mse"), ("Grad", "grad"), ("Conn", "conn"))
    ]
    return f"{name} against rembg on soft truth: {', '.join(changes)}"


def _change(value: float, base: float) -> str:
    return f"{value / base - 1:+.1%}" if base else f"{value:.4f} (rembg 0)"


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value


def results_json(
    args: argparse.Namespace,
    outcomes: list[Outcome],
    mean: dict[str, scores.Scores],
    matting_mean: dict[str, scores.MattingScores] | None = None,
) -> dict[str, Any]:
    results = {
        "set": str(args.set),
        "model": args.model,
        "images": len(outcomes),
        "mean": {n: s.as_dict() for n, s in mean.items()},
        "ms_beyond_model": {n: mean_ms(outcomes, n) for n in mean},
        "per_image": [
            {
                "name": o.name,
                "scores": {n: s.as_dict() for n, s in o.scores.items()},
                "ms": {n: _finite(v) for n, v in o.ms.items()},
            }
            for o in outcomes
        ],
    }
    if matting_mean is not None:  # soft truth: the binary path's output stays as it was
        results["matting_mean"] = {n: m.as_dict() for n, m in matting_mean.items()}
        for entry, outcome in zip(results["per_image"], outcomes, strict=True):
            entry["matting"] = {n: m.as_dict() for n, m in outcome.matting.items()}
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("set", nargs="?", type=Path, default=DEFAULT_SET)
    parser.add_argument("--model", choices=list(MODELS), default="u2net")
    parser.add_argument("--modes", default=",".join(REFINE_MODES), help="our refine modes")
    parser.add_argument("--no-rembg", action="store_true", help="skip rembg's rows")
    parser.add_argument(
        "--precisions", default="", help="besides fp32, comma-separated: bf16, int8"
    )
    parser.add_argument("--limit", type=int, default=0, help="first N images only")
    parser.add_argument(
        "--truth",
        choices=TRUTHS,
        default="auto",
        help=f"masks are alpha mattes (soft) or not; auto: soft if > {SOFT_SHARE:.0%} partial",
    )
    parser.add_argument("--report-mode", help="the mode that orders the report (guided)")
    parser.add_argument("--no-hd-cost", action="store_true", help="skip the HD timing")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    args.precisions = [p.strip() for p in args.precisions.split(",") if p.strip() != "fp32"]
    args.precisions = [p for p in args.precisions if p]
    for mode in args.modes:
        refine.check(mode)
    if args.report_mode is None:
        args.report_mode = "guided" if "guided" in args.modes else args.modes[0]
    return args


def check_set(root: Path) -> None:
    """A missing set stops the run before the model loads, saying what is wanted."""
    if not root.is_dir():
        sys.exit(
            f"{root}: no evaluation set there; one is images/*.jpg + masks/*.png (same stem). "
            "Point at another: make quality QUALITY_SET=/path/to/set "
            "(or: python bench/quality.py /path/to/set)"
        )


def pairs_of(root: Path, limit: int) -> Iterator[tuple[Path, Path]]:
    found = [(i, t) for i, t in find_pairs(root, IMAGE_SUFFIXES) if t is not None]
    if not found:
        sys.exit(f"{root}: no images/ with masks/ (same stem) found")
    yield from found[:limit] if limit else found


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    check_set(args.set)
    pairs = list(pairs_of(args.set, args.limit))
    share = soft_share([truth for _, truth in pairs])
    soft = truth_kind(args.truth, share) == "soft"
    # Model home, providers and threads from CUTOUT_* settings, as the CLI takes them.
    settings = load_settings()
    session = engine.model_session(settings, args.model, precision="fp32")
    fast, refused = fast_sessions(settings, args.model, args.precisions)
    methods = Methods(session, args.modes, with_rembg=not args.no_rembg, fast=fast, soft=soft)
    outcomes, rows = [], []
    for image_path, truth_path in pairs:
        outcome, truth = methods.run(image_path, truth_path)
        with Image.open(image_path) as opened:
            image = opened.convert("RGB")
        outcomes.append(outcome)
        rows.append(report_row(image, truth, outcome, ours(args.report_mode)))
        outcome.masks.clear()  # keep memory flat on big sets
    mean = means(outcomes, methods.names)
    matting_mean = matting_means(outcomes, methods.names) if soft else None
    results = results_json(args, outcomes, mean, matting_mean)
    model_ms = statistics.fmean(methods.model_ms)
    text = table(mean, outcomes, model_ms)
    verdicts = []
    if matting_mean is not None:
        text = matting_table(matting_mean, share) + "\n" + text
        results["truth"] = {"kind": "soft", "partial_share": share, "region": "whole image"}
        verdicts += [v for v in (matting_comparison(matting_mean, n) for n in methods.names) if v]
    verdicts += [v for v in (verdict(mean, ours(m)) for m in args.modes) if v]
    verdicts += [v for v in (precision_verdict(mean, p) for p in fast) if v]
    verdicts += [f"{p}: refused for {args.model}: {why}" for p, why in refused.items()]
    if not args.no_hd_cost:
        cost = hd_cost(session, next(pairs_of(args.set, 1))[0])
        results["hd_cost"] = cost
        text += (
            f"\nHD (1920x1080): model {cost['model_ms']:.0f} ms, guided refinement "
            f"{cost['guided_ms']:.1f} ms ({cost['guided_share']:.1%} of the model), "
            f"decontamination {cost['decontaminate_ms']:.1f} ms "
            f"({cost['decontaminate_share']:.1%})."
        )
    colour_rows = [o.colours for o in outcomes]
    text += "\n\n" + colours.table(colour_rows, statistics.fmean(methods.decontaminate_ms))
    results["colours"] = colour_rows
    text += "".join(f"\n{v}" for v in verdicts)
    results["verdicts"] = verdicts
    lead = ours(args.report_mode)
    if soft:  # worst SAD first: the binarised boundary says little about a soft edge
        by_sad = sorted(zip(rows, outcomes, strict=True), key=lambda ro: -ro[1].matting[lead].sad)
        write_outputs(args, text, results, [row for row, _ in by_sad], f"{lead}'s SAD")
    else:
        write_outputs(args, text, results, worst_first(rows), lead)
    print(text)
    return results


def fast_sessions(
    settings: Any, model: str, precisions: list[str]
) -> tuple[dict[str, Session], dict[str, str]]:
    """The model at each precision; those the engine refuses, with its reason."""
    from cutout.errors import CutoutError

    fast: dict[str, Session] = {}
    refused: dict[str, str] = {}
    for precision in precisions:
        try:
            fast[precision] = engine.model_session(settings, model, precision=precision)
        except CutoutError as exc:
            refused[precision] = str(exc)
    return fast, refused


def write_outputs(
    args: argparse.Namespace, text: str, results: dict[str, Any], rows: list[Row], order: str
) -> None:
    """table.md, results.json and report.html, whose rows come in the order given."""
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(text + "\n", encoding="utf-8")
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    title = f"cutout quality: {args.set.name}, {args.model}, ordered by {order}"
    summary = f"<pre>{html.escape(text)}</pre>"
    (args.out / "report.html").write_text(render(rows, title, summary), "utf-8")


if __name__ == "__main__":
    main()
