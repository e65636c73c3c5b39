"""rembg's alpha matting, kept for parity: a trimap from the mask, closed-form alpha
(Levin et al. 2008) and multi-level foreground colours (Germer et al. 2020) by pymatting.

Slow (seconds per megapixel, and memory to match) and, on human-drawn masks, no better
than the plain mask: see README "Quality". pymatting is the optional extra
`cutout-queue[matting]`; it is imported only when matting runs.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from cutout.errors import MissingExtraError
from cutout.options import MattingOptions

log = logging.getLogger(__name__)

EXTRA_HINT = "pip install 'cutout-queue[matting]'"


def require() -> None:
    """Fail now, not on the first image, when pymatting is missing."""
    if importlib.util.find_spec("pymatting") is None:
        raise MissingExtraError(f"--refine matting needs pymatting: {EXTRA_HINT}")


def _pymatting() -> Any:
    try:
        import pymatting
    except ImportError as exc:
        raise MissingExtraError(f"--refine matting needs pymatting: {EXTRA_HINT}") from exc
    return pymatting


def trimap(mask: np.ndarray, options: MattingOptions) -> np.ndarray:
    """0 (background), 128 (unknown) or 255 (subject), exactly as rembg builds it."""
    structure = None
    if options.erode_size > 0:
        structure = np.ones((options.erode_size, options.erode_size), dtype=np.uint8)
    sure_fg = ndimage.binary_erosion(mask > options.foreground_threshold, structure=structure)
    sure_bg = ndimage.binary_erosion(
        mask < options.background_threshold, structure=structure, border_value=1
    )
    result = np.full(mask.shape, 128, dtype=np.uint8)
    result[sure_fg] = 255
    result[sure_bg] = 0
    return result


def matte(
    image: Image.Image, mask: Image.Image, options: MattingOptions
) -> tuple[Image.Image, Image.Image]:
    """(colours, alpha): the subject's estimated own colours and its alpha matte.

    The colours are the estimated foreground where alpha > 0 and the photo elsewhere, so
    that a blurred background is still made of the photo's own background. An input alpha
    channel is kept on the colours, for compositing to honour it.
    """
    pm = _pymatting()
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64) / 255
    # pymatting print()s its performance warnings: they must not land in an image piped
    # to stdout (`cutout i photo.jpg - --refine matting`). Process-wide while it runs, which
    # a worker, one job per process at a time, can afford.
    with contextlib.redirect_stdout(sys.stderr):
        try:
            alpha = pm.estimate_alpha_cf(rgb, trimap(np.asarray(mask), options) / 255.0)
        except ValueError as exc:
            # No sure subject or no sure background (rembg falls back the same way).
            log.warning("alpha matting skipped, the mask is used as it is: %s", exc)
            alpha = np.asarray(mask, dtype=np.float64) / 255
        foreground = pm.estimate_foreground_ml(rgb, alpha)
    alpha_u8 = np.clip(alpha * 255, 0, 255).astype(np.uint8)  # rounded as rembg does
    return _colours(image, foreground, alpha_u8), Image.fromarray(alpha_u8)


def _colours(image: Image.Image, foreground: np.ndarray, alpha: np.ndarray) -> Image.Image:
    estimate = Image.fromarray(np.clip(foreground * 255, 0, 255).astype(np.uint8))
    seen = Image.fromarray(np.where(alpha > 0, 255, 0).astype(np.uint8))
    colours = Image.composite(estimate, image.convert("RGB"), seen)
    if image.mode == "RGBA":
        colours.putalpha(image.getchannel("A"))
    return colours
