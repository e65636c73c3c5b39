"""Colour decontamination: the subject's own colours under its soft edges, without matting.

A pixel on a soft edge (hair, fur, motion blur) is a blend, `I = a F + (1 - a) B`. Kept as
it is with alpha `a`, the background colour B stays mixed into it: a halo once composited
over anything else. This estimates F by blur fusion (Forte and Pitie, "Approximate Fast
Foreground Colour Estimation", ICIP 2021): the subject's and the background's colours
averaged over a wide window, each weighted by its own coverage (`Fm`, `Bm`), then the
pixel's residual against that pair given back to the subject,
`F = Fm + a (I - a Fm - (1 - a) Bm)`; then once more with the estimate as `Fm` (the
paper's second, narrow pass: narrower than one pixel measured best, bench/colours.py).
rembg's `-dc` does the same job with pymatting's multi-level estimate, an optional extra
here.

The averages are smooth by construction, so they are made on a grid of at most GRID px a
side and read from its nearest cell where needed; only the soft pixels are computed at full
size, in strips of rows. Pixels within SURE levels of 0 or 255 are left as they are: the
other side's share of their colour is at most 3%, and a saliency mask holds such
near-certain values almost everywhere (most of a u2net mask is neither exactly 0 nor 255).
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from cutout.refine import shrink, working_size

GRID = 256  # long side of the grid the averages are made on
WINDOW = 0.09  # of the image's long side: the paper's 90 px on a 1000 px photo
SURE = 8  # alpha levels from 0 or 255 within which a pixel counts as background or subject
STRIP_ROWS = 512
_EPS = 1e-5


def decontaminate(image: Image.Image, mask: Image.Image) -> Image.Image:
    """The image (RGB or RGBA, alpha kept) with each soft pixel's colour replaced by the
    subject's estimated own colour; the same object when the mask has no soft pixel."""
    if not any(mask.histogram()[SURE + 1 : 255 - SURE]):
        return image
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    fg, bg = _means(rgb, mask)
    scale = (fg.shape[1] / mask.width, fg.shape[0] / mask.height)
    result = rgb.copy()
    for top in range(0, mask.height, STRIP_ROWS):
        box = (0, top, mask.width, min(mask.height, top + STRIP_ROWS))
        alpha = np.asarray(mask.crop(box))
        ys, xs = np.nonzero((alpha > SURE) & (alpha < 255 - SURE))
        if not len(ys):
            continue
        colours = np.array(rgb.crop(box))
        # The nearest grid cell: the means hardly change over one cell of a wide window.
        cell = ((ys + top) * scale[1]).astype(np.intp), (xs * scale[0]).astype(np.intp)
        a = (alpha[ys, xs] / np.float32(255))[:, None]
        observed = colours[ys, xs] / np.float32(255)
        background = bg[cell]
        estimate = _unmix(observed, fg[cell], background, a)
        estimate = _unmix(observed, estimate, background, a)
        colours[ys, xs] = (estimate * 255 + 0.5).astype(np.uint8)
        result.paste(Image.fromarray(colours), box)
    if image.mode == "RGBA":
        result.putalpha(image.getchannel("A"))
    return result


def _unmix(observed: np.ndarray, fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The subject colour: `fg` plus the part of the observed colour that the blend of
    `fg` and `bg` at this alpha does not explain, given back to the subject."""
    unmixed: np.ndarray = np.clip(fg + alpha * (observed - alpha * fg - (1 - alpha) * bg), 0, 1)
    return unmixed


def _means(rgb: Image.Image, mask: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """The subject's and the background's local mean colours (HxWx3, 0..1) on the grid,
    each weighted by its own coverage."""
    size = working_size(mask.size, GRID)
    image = np.asarray(shrink(rgb, size), dtype=np.float32) / 255
    alpha = np.asarray(shrink(mask, size), dtype=np.float32)[..., None] / 255
    window = max(3, round(WINDOW * max(size)))

    def mean(x: np.ndarray) -> np.ndarray:
        result: np.ndarray = ndimage.uniform_filter(x, size=(window, window, 1), mode="reflect")
        return result

    coverage = mean(alpha)
    fg = mean(image * alpha) / (coverage + _EPS)
    bg = mean(image * (1 - alpha)) / (1 - coverage + _EPS)
    return fg, bg
