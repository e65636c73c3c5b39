"""Backgrounds (transparent, colour, image, blur) and cropping to the subject.

Subject colours are kept as they are (straight alpha): unlike rembg's composite, which
multiplies the colours by the mask and darkens every soft edge.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageChops, ImageFilter, ImageOps

from cutout.options import Background

log = logging.getLogger(__name__)

# Alpha below this is treated as background when cropping, so faint mask noise far from
# the subject does not stretch the box.
CROP_ALPHA_THRESHOLD = 16
_NONZERO = [0] + [255] * 255  # a point() table: 255 where alpha > 0


def subject_alpha(image: Image.Image, mask: Image.Image) -> Image.Image:
    """The output alpha: the mask, never more opaque than the input's own alpha."""
    if image.mode != "RGBA":
        return mask
    return ImageChops.multiply(mask, image.getchannel("A"))


def _visible_bits(alpha: int) -> int:
    """Low colour bits that cannot show at this alpha: the most k with (2^k - 1) * a/255 < 1,
    so that over any backdrop the composite moves by less than one level."""
    k = 0
    while (2 ** (k + 1) - 1) * alpha < 255:
        k += 1
    return k


# point() tables over alpha: the colour bits kept, and the middle of the bits dropped (an
# unbiased stand-in). Alpha 0 keeps no colour at all: nothing hidden leaks out.
_KEEP = [0] + [(0xFF << _visible_bits(a)) & 0xFF for a in range(1, 256)]
_MIDDLE = [0] + [(1 << _visible_bits(a)) >> 1 for a in range(1, 256)]


def transparent(image: Image.Image, alpha: Image.Image, *, exact: bool = False) -> Image.Image:
    """The subject with the alpha, straight (not premultiplied). Colours under alpha 0 are
    cleared. Unless `exact`, colours under a soft edge keep only the bits that can show once
    composited (at alpha 128, 7 of 8; at 8, 3): over any backdrop the result is within one
    level of the exact colours', and the file is smaller (low-alpha pixels' noise, which
    nothing can show, no longer has to be stored)."""
    bands = (image if image.mode == "RGB" else image.convert("RGB")).split()
    if exact:
        # Band by band, a multiply by 0 or 255 is exact and a third cheaper than a composite.
        nonzero = alpha.point(_NONZERO)
        return Image.merge("RGBA", [*(ImageChops.multiply(b, nonzero) for b in bands), alpha])
    keep = np.asarray(alpha.point(_KEEP))
    middle = np.asarray(alpha.point(_MIDDLE))
    kept = [Image.fromarray((np.asarray(b) & keep) | middle) for b in bands]
    return Image.merge("RGBA", [*kept, alpha])


def over(image: Image.Image, alpha: Image.Image, backdrop: Image.Image) -> Image.Image:
    """The subject composited over a backdrop of the same size (RGB or RGBA)."""
    if backdrop.mode == "RGB":
        return Image.composite(image.convert("RGB"), backdrop, alpha)
    front = image.convert("RGB")
    front.putalpha(alpha)
    return Image.alpha_composite(backdrop.convert("RGBA"), front)


def cover(backdrop: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale a background image to cover `size`, centred, cropping what overflows."""
    has_alpha = backdrop.mode in ("RGBA", "LA", "PA") or "transparency" in backdrop.info
    mode = "RGBA" if has_alpha else "RGB"
    fitted = ImageOps.fit(backdrop.convert(mode), size, Image.Resampling.BICUBIC)
    if mode == "RGBA" and fitted.getchannel("A").getextrema() == (255, 255):
        return fitted.convert("RGB")
    return fitted


def blurred(image: Image.Image, alpha: Image.Image, radius: float) -> Image.Image:
    """The original's background blurred without the subject bleeding into it.

    A normalised convolution: blur the background weighted by (1 - alpha), then divide by
    the blurred weight. Pillow's premultiplied mode "RGBa" does exactly that on conversion.
    """
    rgb = image.convert("RGB")
    weighted = rgb.copy()
    weighted.putalpha(ImageChops.invert(alpha))
    blur = ImageFilter.GaussianBlur(radius)
    result = weighted.convert("RGBa").filter(blur).convert("RGBA")
    # Where the subject covers the whole neighbourhood there is no background to borrow:
    # fall back to the plain blur (hidden under the opaque subject anyway).
    plain = rgb.filter(blur)
    coverage = result.getchannel("A").point(lambda v: 255 if v else 0)
    return Image.composite(result.convert("RGB"), plain, coverage)


def compose(
    image: Image.Image,
    mask: Image.Image,
    background: Background,
    *,
    blur_radius: float = 20.0,
    backdrop: Image.Image | None = None,
    exact_colours: bool = False,
    final_alpha: bool = False,
) -> Image.Image:
    """The cut-out: RGBA for a transparent (or translucent) result, RGB when opaque.
    `final_alpha`: `mask` is already subject_alpha(image, mask), as the pipeline has it."""
    alpha = mask if final_alpha else subject_alpha(image, mask)
    if background.kind == "blur":  # a neighbourhood operation: whole
        return over(image, alpha, blurred(image, alpha, blur_radius))
    if background.kind == "image":
        if backdrop is None:
            raise ValueError("an image background needs its decoded backdrop")
        fitted = cover(backdrop, image.size)
        return in_strips(image, alpha, lambda i, a, box: over(i, a, fitted.crop(box)))
    if background.kind == "transparent":
        return in_strips(image, alpha, lambda i, a, _: transparent(i, a, exact=exact_colours))
    assert background.color is not None
    color = background.color if background.color[3] < 255 else background.color[:3]
    mode = "RGBA" if len(color) == 4 else "RGB"
    return in_strips(image, alpha, lambda i, a, _: over(i, a, Image.new(mode, i.size, color)))


# Pixels above which a per-pixel composite runs in strips of rows: its temporaries (the
# bands, the bit tables, the colour copies: several bytes a pixel) then cost a strip's
# worth, not the whole image's: ~130 MB less at the peak of a 12 MP cut-out, and a tiny
# file that decodes huge costs no more than its result. Measured no slower on 12 MP (strips
# stay in the cache); smaller images take one pass.
STRIP_PIXELS = 1_000_000
STRIP_ROWS = 256


def in_strips(
    image: Image.Image,
    alpha: Image.Image,
    make: Callable[[Image.Image, Image.Image, tuple[int, int, int, int]], Image.Image],
) -> Image.Image:
    """`make(image, alpha, box)` over the whole image, or strip by strip into one result:
    the same pixels either way (each output pixel depends on its own input pixel only)."""
    width, height = image.size
    if width * height <= STRIP_PIXELS:
        return make(image, alpha, (0, 0, width, height))
    result: Image.Image | None = None
    for top in range(0, height, STRIP_ROWS):
        box = (0, top, width, min(height, top + STRIP_ROWS))
        strip = make(image.crop(box), alpha.crop(box), box)
        if result is None:
            result = Image.new(strip.mode, image.size)
        result.paste(strip, box[:2])
    assert result is not None
    return result


def subject_box(alpha: Image.Image, margin: int) -> tuple[int, int, int, int] | None:
    """The bounding box of the subject grown by `margin` px, clipped to the image."""
    box = alpha.point(lambda v: 255 if v >= CROP_ALPHA_THRESHOLD else 0).getbbox()
    if box is None:
        return None
    left, top, right, bottom = box
    width, height = alpha.size
    return (
        max(0, left - margin),
        max(0, top - margin),
        min(width, right + margin),
        min(height, bottom + margin),
    )


def crop(result: Image.Image, alpha: Image.Image, margin: int) -> Image.Image:
    box = subject_box(alpha, margin)
    if box is None:
        log.warning("no subject found; the output is not cropped")
        return result
    return result.crop(box)
