"""Background colour under soft edges, and how much of it decontamination removes.

No evaluation set here has soft (matting) truth, so the truth is made: the photo P blended
by the model's own mask a over a strong backdrop B, `I = a P + (1 - a) B` - what a camera
records on a soft edge, with P standing for the subject's true colour. Each method's
colours for I, composited over any new background, differ from P's composite by
`a |F - P|`: its mean over the soft pixels (those decontamination touches), in levels of
255, is the colour error. The backdrops: a saturated green (a green screen, grass) and the
set's previous photo (a real background's texture and colours).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageOps

from cutout.decontaminate import SURE, decontaminate

NONE = "naive (rembg's default)"
OURS = "ours --decontaminate"
REMBG_DC = "rembg -dc (pymatting)"
GREEN = (0, 177, 64)
Method = Callable[[Image.Image, Image.Image], Image.Image]


def backdrops(photo: Image.Image, other: Image.Image | None) -> dict[str, Image.Image]:
    """Green, and `other` scaled to cover the photo (the first photo: itself, mirrored)."""
    scene = ImageOps.fit(other, photo.size) if other is not None else ImageOps.mirror(photo)
    return {"green": Image.new("RGB", photo.size, GREEN), "another photo": scene}


def rembg_dc(image: Image.Image, alpha: Image.Image) -> Image.Image:
    """rembg's `decontaminate=True`: pymatting's multi-level foreground estimate."""
    from pymatting import estimate_foreground_ml

    with contextlib.redirect_stdout(sys.stderr):  # pymatting prints its own warnings
        fg = estimate_foreground_ml(np.asarray(image) / 255.0, np.asarray(alpha) / 255.0)
    return Image.fromarray(np.clip(fg * 255 + 0.5, 0, 255).astype(np.uint8))


def methods(with_rembg: bool) -> dict[str, Method]:
    chosen: dict[str, Method] = {NONE: lambda image, _: image, OURS: decontaminate}
    if with_rembg:
        chosen[REMBG_DC] = rembg_dc
    return chosen


def colour_error(colours: Image.Image, photo: Image.Image, alpha: Image.Image) -> float:
    """Mean `a |F - P|` (levels, all channels) over the soft pixels; NaN without any."""
    a = np.asarray(alpha, dtype=np.float64)
    soft = (a > SURE) & (a < 255 - SURE)
    if not soft.any():
        return float("nan")
    diff = np.abs(np.asarray(colours, np.float64) - np.asarray(photo, np.float64))[soft]
    return float((diff * (a[soft] / 255)[:, None]).mean())


def measure(
    photo: Image.Image, alpha: Image.Image, chosen: dict[str, Method], other: Image.Image | None
) -> dict[str, dict[str, float]]:
    """{backdrop: {method: colour error}} for one photo and its mask."""
    results: dict[str, dict[str, float]] = {}
    for name, backdrop in backdrops(photo, other).items():
        blended = Image.composite(photo, backdrop, alpha)
        results[name] = {
            method: colour_error(fn(blended, alpha), photo, alpha) for method, fn in chosen.items()
        }
    return results


def table(per_image: list[dict[str, dict[str, float]]], ms: float | None) -> str:
    """The mean error per backdrop and method, as markdown."""
    names = list(per_image[0]["green"])
    lines = ["| colours under soft edges | " + " | ".join(per_image[0]) + " |"]
    lines.append("|---" * (len(per_image[0]) + 1) + "|")
    for method in names:
        cells = [
            f"{np.nanmean([image[backdrop][method] for image in per_image]):.2f}"
            for backdrop in per_image[0]
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Colour error: mean alpha x |colour - truth| over the soft pixels, in levels of 255, "
        "on blends made from each photo and its mask (no set here has soft truth)."
    )
    if ms is not None:
        lines.append(f"Decontamination: {ms:.1f} ms/image on average on this set.")
    return "\n".join(lines)
