"""Refinement of the up-sampled mask, after the model and before compositing.

`none` leaves rembg's mask as it is. `guided` is a fast guided filter (He, Sun and Tang,
"Guided Image Filtering", TPAMI 2013; He and Sun, "Fast Guided Filter", 2015) with the
full-resolution photo as the guide, then a mild, order-preserving sharpening. `matting` is
rembg's alpha matting (`cutout.matting`).

Why a guided filter: U^2-Net sees the photo at 320x320, so at full size every edge of its
mask is an interpolated ramp a model pixel or more wide (6 px on an HD photo). The filter
fits, in each small window, the mask as a linear function of the photo; where the window
straddles an edge of the photo, the fitted mask steps where the photo does. The fit is made
on a grid of the model's own resolution (the mask holds nothing finer) and only
`a * guide + b` is evaluated at full size: a few operations per pixel.

The guide is one channel: the photo projected on the colour axis that best separates the
subject's colours from the background's as the model's mask weighs them (Fisher's linear
discriminant). Unlike luminance it sees a red subject on a green background of the same
brightness; unlike the three-channel guide it costs one coefficient map, not three, at
full size (and scored within 0.002 of it on pascal_s).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageMath
from scipy import ndimage

from cutout import matting
from cutout.errors import ConfigError
from cutout.options import REFINE_MODES, MattingOptions

# Window radius in cells of the working grid (about one model pixel): the mask's edges
# are uncertain by about that much, so that is how far an edge may move.
GUIDED_RADIUS = 1
# Guide variance the fit treats as noise rather than an edge (the guide spans 0..1 over the
# photo): that of a step of 16 levels out of 255 across the window (step^2 / 4), above JPEG
# noise and sensor grain, below the edges of a subject.
GUIDED_EPS = 1e-3
# Opaque subjects have hard edges, while the up-sampled mask ramps over several pixels
# and leaves a half-transparent halo: the odds of each mask value are raised to this power
# (a logistic temperature of 1/2). Never decreasing, so thresholds keep their order (the
# faintest levels merge into 0, the strongest into 255).
SHARPEN_POWER = 2
# Added to the colour covariance (0..1 scale) so that a grey photo, which has no colour
# spread at all, still has a defined axis (luminance-like); negligible for colour photos.
DISCRIMINANT_RIDGE = 1e-4
LUMA = (0.299, 0.587, 0.114, 0.0)  # ITU-R 601, as Pillow's own convert("L")


def _sharpen_table(power: int) -> list[int]:
    q = np.arange(256, dtype=np.float64) / 255
    odds = q**power / (q**power + (1 - q) ** power)
    return [round(v) for v in odds * 255]


SHARPEN_TABLE = _sharpen_table(SHARPEN_POWER)


def working_size(size: tuple[int, int], grid: int) -> tuple[int, int]:
    """The image size scaled down so that its long side is `grid` (never scaled up)."""
    width, height = size
    scale = max(width, height) / grid
    if scale <= 1:
        return size
    return max(1, round(width / scale)), max(1, round(height / scale))


def _box(x: np.ndarray, radius: int) -> np.ndarray:
    result: np.ndarray = ndimage.uniform_filter(x, size=2 * radius + 1, mode="reflect")
    return result


def coefficients(
    guide: np.ndarray, p: np.ndarray, radius: int, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """The guided filter's mean coefficients: q = a * guide + b (float32, 0..1 scales)."""
    mean_i = _box(guide, radius)
    mean_p = _box(p, radius)
    cov = _box(guide * p, radius) - mean_i * mean_p
    var = _box(guide * guide, radius) - mean_i * mean_i
    a = cov / (var + eps)
    b = mean_p - a * mean_i
    return _box(a, radius), _box(b, radius)


def _upsample(x: np.ndarray, size: tuple[int, int]) -> Image.Image:
    return Image.fromarray(x.astype(np.float32)).resize(size, Image.Resampling.BILINEAR)


def shrink(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Area-average down to `size`: by Pillow's faster integer reduce when it fits exactly
    (otherwise its partial last block would shift the grid against the photo)."""
    factor = image.width // size[0]
    if factor >= 2 and image.size == (size[0] * factor, size[1] * factor):
        return image.reduce(factor)
    return image.resize(size, Image.Resampling.BOX)


def discriminant(colours: np.ndarray, p: np.ndarray) -> np.ndarray | None:
    """Fisher's axis: the colour direction that best separates subject from background,
    each pixel weighted by the mask and by its complement. None without both sides.

    `colours` is Nx3 and `p` N, float32 on a 0..1 scale.
    """
    subject = float(p.sum())
    background = p.size - subject
    if min(subject, background) < 1:
        return None
    mean_fg = p @ colours / subject
    mean_bg = (1 - p) @ colours / background
    moments = colours.T @ colours
    moments_fg = (colours * p[:, None]).T @ colours
    within = (
        moments_fg / subject
        - np.outer(mean_fg, mean_fg)
        + (moments - moments_fg) / background
        - np.outer(mean_bg, mean_bg)
        + DISCRIMINANT_RIDGE * np.eye(3)
    )
    axis: np.ndarray = np.linalg.solve(within, mean_fg - mean_bg)
    return axis


def guide_matrix(small: Image.Image, p: np.ndarray) -> tuple[float, float, float, float]:
    """Pillow's RGB -> L matrix that projects on Fisher's axis, stretched to 0..255."""
    colours = np.asarray(small, dtype=np.float32).reshape(-1, 3) / 255
    axis = discriminant(colours, p.reshape(-1))
    if axis is None:
        return LUMA
    projected = colours @ axis
    low, span = float(projected.min()), float(projected.max() - projected.min())
    if span < 1e-6:
        return LUMA
    red, green, blue = (float(v) for v in axis / span)
    return red, green, blue, -low * 255 / span


def guided(image: Image.Image, mask: Image.Image, grid: int) -> Image.Image:
    """The mask refined by a fast guided filter on a `grid`-px grid, then sharpened."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    work = working_size(mask.size, grid)
    small = shrink(rgb, work)
    p = np.asarray(shrink(mask, work), dtype=np.float32) / 255
    matrix = guide_matrix(small, p)
    guide = rgb.convert("L", matrix)
    a, b = coefficients(
        np.asarray(small.convert("L", matrix), dtype=np.float32) / 255,
        p,
        GUIDED_RADIUS,
        GUIDED_EPS,
    )
    # Only this runs at full size, in Pillow's C loops (a numpy round trip of the float
    # maps costs more than the arithmetic). The 0..255 scales of guide and mask cancel
    # out in a; b takes the mask's 255.
    refined: Image.Image = ImageMath.lambda_eval(
        lambda m: m["a"] * m["guide"] + m["b"],
        a=_upsample(a, mask.size),
        b=_upsample(b * 255 + 0.5, mask.size),
        guide=guide,
    )
    return refined.convert("L").point(SHARPEN_TABLE)


@dataclass(frozen=True)
class Refined:
    colours: Image.Image  # what to composite: the photo, or matting's own estimate
    mask: Image.Image


def check(mode: str) -> None:
    """Fail before the first image: an unknown mode, or matting without pymatting."""
    if mode not in REFINE_MODES:
        raise ConfigError(f"unknown refine mode {mode!r}; accepted: {', '.join(REFINE_MODES)}")
    if mode == "matting":
        matting.require()


def refine(
    mode: str,
    image: Image.Image,
    mask: Image.Image,
    *,
    grid: int,
    matting_options: MattingOptions | None = None,
) -> Refined:
    """The mask (and colours) after refinement `mode`; `grid` is the model's input size."""
    if mode == "guided":
        return Refined(image, guided(image, mask, grid))
    if mode == "matting":
        colours, alpha = matting.matte(image, mask, matting_options or MattingOptions())
        return Refined(colours, alpha)
    check(mode)
    return Refined(image, mask)
