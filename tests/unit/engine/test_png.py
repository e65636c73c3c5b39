"""The fast PNG writer: any reader gets the same pixels back, whatever the mode, size or
level."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cutout import png
from cutout.images import encode
from cutout.options import EncodeOptions

MODES = ("L", "LA", "RGB", "RGBA")


def decoded(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # Pillow checks every chunk's CRC and the zlib stream while loading
        return image


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth gradients plus noise, with a transparent band: like a cut-out."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), (x + y) % 256])
    pixels = (rgb.transpose(1, 2, 0) + rng.integers(-8, 8, (height, width, 3))).clip(0, 255)
    alpha = np.where(x < width // 3, 0, 255).astype(np.uint8)
    return Image.fromarray(np.dstack([pixels.astype(np.uint8), alpha]), "RGBA")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size", [(1, 1), (7, 1), (1, 5), (33, 17)])
def test_round_trip_every_mode_and_odd_sizes(mode: str, size: tuple[int, int]) -> None:
    image = photo(*size).convert(mode)
    back = decoded(png.encode(image, 5))
    assert back.format == "PNG" and back.mode == mode and back.size == size
    assert np.array_equal(np.asarray(back), np.asarray(image))


@pytest.mark.parametrize("level", [0, 1, 2, 6, 12])
def test_every_level_is_lossless_and_higher_is_smaller(level: int) -> None:
    image = photo(300, 200)
    data = png.encode(image, level)
    assert np.array_equal(np.asarray(decoded(data)), np.asarray(image))
    if level:
        assert len(data) < 0.9 * len(png.encode(image, 0))


def test_a_large_image_round_trips() -> None:
    image = photo(1024, 1024, seed=1)  # 4 MiB of scanlines
    assert np.array_equal(np.asarray(decoded(png.encode(image, 2))), np.asarray(image))


def test_other_modes_are_left_to_pillow() -> None:
    for image in (Image.new("1", (9, 9), 1), Image.new("P", (9, 9), 3)):
        assert not png.supports(image)
        back = decoded(encode(image, "png"))
        assert back.mode == image.mode  # (Pillow may renumber a palette: compare colours)
        assert np.array_equal(np.asarray(back.convert("RGB")), np.asarray(image.convert("RGB")))
    with pytest.raises(ValueError, match="mode P"):
        png.encode(Image.new("P", (2, 2)), 5)


def test_encode_uses_the_level_asked_for() -> None:
    image = photo(600, 400)
    fast = encode(image, "png", EncodeOptions(png_compress_level=0))
    small = encode(image, "png", EncodeOptions(png_compress_level=12))
    assert len(fast) > 1.3 * len(small)
    assert np.array_equal(np.asarray(decoded(small)), np.asarray(image))


@pytest.mark.parametrize("streamed", [True, False])
@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_an_image_read_in_strips_keeps_its_pixels(
    monkeypatch: pytest.MonkeyPatch, mode: str, streamed: bool
) -> None:
    """Strips of 64 rows over 700 (the last one short): read, filtered against the row
    above across each seam, and deflated whole (libdeflate) or strip by strip (zlib)."""
    image = photo(90, 700).convert(mode)
    monkeypatch.setattr(png, "STREAM_PIXELS", 1000 if streamed else 10**9)
    monkeypatch.setattr(png, "STRIP_ROWS", 64)
    data = png.encode(image, 2)
    assert np.array_equal(np.asarray(decoded(data)), np.asarray(image))
