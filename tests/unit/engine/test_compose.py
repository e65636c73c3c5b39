"""Backgrounds and crop on synthetic images with known masks (no model needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cutout import compose
from cutout.options import Background, parse_background
from cutout.png import encode as png_encode


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
    # Straight alpha: the soft edge keeps the image colour instead of being darkened
    # (to within the one bit that cannot show at alpha 128).
    source = np.asarray(image)[15, 19].astype(int)
    assert px[15, 19, 3] == 128 and (abs(px[15, 19, :3] - source) <= 1).all()
    exact = rgba(compose.compose(image, mask, parse_background("transparent"), exact_colours=True))
    assert tuple(exact[15, 19]) == (*source, 128)


def test_soft_edge_colours_keep_what_can_show_and_cost_fewer_bytes() -> None:
    # Every colour at every alpha: composited over black and over white, the result is
    # within one level of the exact colours'.
    colours = np.tile(np.arange(256, dtype=np.uint8), (256, 1))
    image = Image.fromarray(np.stack([colours, colours[:, ::-1], colours // 2], axis=2))
    alpha = Image.fromarray(np.tile(np.arange(256, dtype=np.uint8)[:, None], (1, 256)))
    out = rgba(compose.transparent(image, alpha))
    a = out[..., 3:4] / 255
    source = np.asarray(image).astype(int)
    for backdrop in (0, 255):
        shown = out[..., :3] * a + backdrop * (1 - a)
        exact = source * a + backdrop * (1 - a)
        assert np.abs(shown - exact).max() < 1
    assert (out[0, :, :3] == 0).all()  # alpha 0: no colour
    assert (out[255, :, :3] == source[255]).all()  # alpha 255: untouched
    # A noisy photo under a wide translucent mask: the invisible noise is not stored.
    rng = np.random.default_rng(1)
    noisy = Image.fromarray(rng.integers(0, 256, (200, 300, 3), dtype=np.uint8))
    faint = Image.fromarray(np.tile(np.linspace(2, 12, 300).astype(np.uint8), (200, 1)))
    small = len(png_encode(compose.transparent(noisy, faint), 5))
    full = len(png_encode(compose.transparent(noisy, faint, exact=True), 5))
    assert small < 0.6 * full


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


@pytest.mark.parametrize(
    "spec", ["transparent", "#20a0ff", "#20a0ff80", "image"], ids=lambda s: s.strip("#")
)
@pytest.mark.parametrize("exact", [False, True])
def test_a_large_image_composed_in_strips_has_the_same_pixels(
    monkeypatch: pytest.MonkeyPatch, spec: str, exact: bool
) -> None:
    """Above STRIP_PIXELS the composite runs strip by strip (a tiny file decoding huge
    costs no more than its result); the pixels must not change."""
    rng = np.random.default_rng(3)
    image = Image.fromarray(rng.integers(0, 256, (700, 90, 3), dtype=np.uint8))
    mask = Image.fromarray(rng.integers(0, 256, (700, 90), dtype=np.uint8))
    backdrop = Image.fromarray(rng.integers(0, 256, (50, 40, 3), dtype=np.uint8))
    background = Background("image") if spec == "image" else parse_background(spec)

    def composed() -> np.ndarray:
        out = compose.compose(image, mask, background, backdrop=backdrop, exact_colours=exact)
        return np.asarray(out)

    whole = composed()
    monkeypatch.setattr(compose, "STRIP_PIXELS", 1000)
    monkeypatch.setattr(compose, "STRIP_ROWS", 64)  # 700 rows: ten full strips, one part
    assert np.array_equal(composed(), whole)
