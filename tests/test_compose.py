"""Backgrounds and crop on synthetic images with known masks (no model needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cutout import compose
from cutout.specs import Background, parse_background


@pytest.fixture
def scene() -> tuple[Image.Image, Image.Image]:
    """A 60x40 image: red subject in the middle of a striped green/blue background."""
    pixels = np.zeros((40, 60, 3), np.uint8)
    pixels[:, :, 1] = 200
    pixels[::2, :, 2] = 255
    pixels[10:30, 20:40] = (220, 30, 40)
    mask = np.zeros((40, 60), np.uint8)
    mask[10:30, 20:40] = 255
    mask[10:30, 19] = 128  # a soft edge
    return Image.fromarray(pixels), Image.fromarray(mask)


def rgba(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGBA")).astype(int)


def test_transparent_keeps_subject_colour_and_clears_background(
    scene: tuple[Image.Image, Image.Image],
) -> None:
    image, mask = scene
    out = compose.compose(image, mask, parse_background("transparent"))
    assert out.mode == "RGBA"
    px = rgba(out)
    assert (px[10:30, 20:40] == (220, 30, 40, 255)).all()  # unchanged where alpha is 255
    assert (px[0:5, 0:5] == 0).all()  # transparent and colourless
    # Straight alpha: the soft edge keeps the image colour instead of being darkened.
    assert tuple(px[15, 19]) == (*np.asarray(image)[15, 19], 128)


def test_colour_background_is_opaque_and_exact(scene: tuple[Image.Image, Image.Image]) -> None:
    image, mask = scene
    out = compose.compose(image, mask, parse_background("white"))
    assert out.mode == "RGB"
    px = np.asarray(out).astype(int)
    assert (px[0:5, 0:5] == 255).all()
    assert (px[10:30, 20:40] == (220, 30, 40)).all()
    edge = np.asarray(image).astype(int)[15, 19] * 128 / 255 + 255 * 127 / 255
    assert np.abs(px[15, 19] - edge).max() <= 1


def test_translucent_colour_background(scene: tuple[Image.Image, Image.Image]) -> None:
    image, mask = scene
    out = compose.compose(image, mask, parse_background("#0000ff80"))
    px = rgba(out)
    assert out.mode == "RGBA"
    assert tuple(px[0, 0]) == (0, 0, 255, 128)
    assert tuple(px[20, 30]) == (220, 30, 40, 255)


def test_image_background_covers_and_centres(
    scene: tuple[Image.Image, Image.Image], tmp_path: Path
) -> None:
    image, mask = scene
    backdrop = np.zeros((100, 300, 3), np.uint8)  # much wider: cropped at the sides
    backdrop[:, 70:230] = (10, 250, 10)
    backdrop[:, :70] = (250, 10, 10)
    out = compose.compose(
        image,
        mask,
        Background("image", path=tmp_path / "unused"),
        backdrop=Image.fromarray(backdrop),
    )
    px = np.asarray(out).astype(int)
    assert out.size == image.size and out.mode == "RGB"
    # Scaled to 120x40 to cover 60x40, then the centre half: source columns 75..225.
    assert np.abs(px[0, 0] - (10, 250, 10)).max() <= 3
    assert np.abs(px[39, 59] - (10, 250, 10)).max() <= 3
    assert (px[10:30, 20:40] == (220, 30, 40)).all()


def test_blur_background_is_blurred_without_subject_bleeding(
    scene: tuple[Image.Image, Image.Image],
) -> None:
    image, mask = scene
    out = compose.compose(image, mask, parse_background("blur"), blur_radius=4)
    px = np.asarray(out).astype(int)
    assert (px[10:30, 20:40] == (220, 30, 40)).all()  # subject sharp
    # The stripes are smoothed out...
    assert np.ptp(px[0:8, 0:15, 2]) < 60
    # ...and the red subject does not glow into the background next to it.
    assert px[10:30, 45, 0].max() < 40


def test_input_alpha_is_never_exceeded(scene: tuple[Image.Image, Image.Image]) -> None:
    image, mask = scene
    with_alpha = image.convert("RGBA")
    alpha = np.full((40, 60), 255, np.uint8)
    alpha[:, 30:] = 100
    with_alpha.putalpha(Image.fromarray(alpha))
    out = rgba(compose.compose(with_alpha, mask, parse_background("transparent")))
    assert (out[..., 3] <= alpha).all()
    assert out[20, 25, 3] == 255 and out[20, 35, 3] == 100


def test_crop_to_subject_with_margin(scene: tuple[Image.Image, Image.Image]) -> None:
    image, mask = scene
    out = compose.compose(image, mask, parse_background("transparent"))
    assert compose.crop(out, mask, 0).size == (21, 20)  # the soft edge column counts
    assert compose.crop(out, mask, 5).size == (31, 30)
    assert compose.crop(out, mask, 100).size == (60, 40)  # clipped to the image
    assert compose.crop(out, Image.new("L", (60, 40)), 5).size == (60, 40)  # no subject
