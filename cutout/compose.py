"""Backgrounds (transparent, colour, image, blur) and cropping to the subject.

Subject colours are kept as they are (straight alpha): unlike rembg's composite, which
multiplies the colours by the mask and darkens every soft edge.
"""

from __future__ import annotations

import logging

from PIL import Image, ImageChops, ImageFilter, ImageOps

from cutout.specs import Background

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


def transparent(image: Image.Image, alpha: Image.Image) -> Image.Image:
    # Fully transparent pixels carry no colour: smaller files, nothing hidden leaks out.
    # Band by band, a multiply by 0 or 255 is exact and a third cheaper than a composite.
    keep = alpha.point(_NONZERO)
    bands = (image if image.mode == "RGB" else image.convert("RGB")).split()
    return Image.merge("RGBA", [*(ImageChops.multiply(band, keep) for band in bands), alpha])


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
) -> Image.Image:
    """The cut-out: RGBA for a transparent (or translucent) result, RGB when opaque."""
    alpha = subject_alpha(image, mask)
    if background.kind == "transparent":
        return transparent(image, alpha)
    if background.kind == "blur":
        return over(image, alpha, blurred(image, alpha, blur_radius))
    if background.kind == "image":
        if backdrop is None:
            raise ValueError("an image background needs its decoded backdrop")
        return over(image, alpha, cover(backdrop, image.size))
    assert background.color is not None
    if background.color[3] == 255:
        return over(image, alpha, Image.new("RGB", image.size, background.color[:3]))
    return over(image, alpha, Image.new("RGBA", image.size, background.color))


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
