"""Decoding odd inputs into upright 8-bit sRGB, encoding results, and writing them safely."""

from __future__ import annotations

import io
import logging
import os
import stat
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pytest
from PIL import Image, ImageCms

from cutout.errors import (
    ConfigError,
    EmptyImageError,
    ImageError,
    ImageTooLargeError,
    NotAnImageError,
    OutputFormatError,
    TruncatedImageError,
    UnsupportedImageError,
)
from cutout.images import Decoded, decode, encode, register_plugins, write_atomic
from cutout.options import EncodeOptions
from tests import imagefactory as factory

LIMIT = 80_000_000
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def load(data: bytes, max_pixels: int = LIMIT) -> Decoded:
    return decode(data, max_pixels=max_pixels)


def values(image: Image.Image) -> list[Any]:
    return np.asarray(image).tolist()  # type: ignore[no-any-return]


def near(actual: Any, expected: Any, tolerance: int = 3) -> bool:
    difference = np.asarray(actual, int) - np.asarray(expected, int)
    return bool(np.all(np.abs(difference) <= tolerance))


def noise(size: tuple[int, int] = (64, 48), mode: str = "RGB") -> Image.Image:
    bands = len(mode)
    array = np.random.default_rng(7).integers(0, 256, (size[1], size[0], bands), np.uint8)
    return Image.fromarray(array[:, :, 0] if bands == 1 else array)


# --- orientation --------------------------------------------------------------------------


def red_corner(image: Image.Image) -> str:
    """Which corner of a white image holds the red block."""
    w, h = image.size
    corners = {
        "top-left": (3, 3),
        "top-right": (w - 4, 3),
        "bottom-left": (3, h - 4),
        "bottom-right": (w - 4, h - 4),
    }
    reds = [name for name, xy in corners.items() if near(image.getpixel(xy), RED, 40)]
    assert len(reds) == 1, reds
    return reds[0]


@pytest.mark.parametrize(
    ("orientation", "size", "corner"),
    [
        (1, (40, 20), "top-left"),
        (3, (40, 20), "bottom-right"),
        (6, (20, 40), "top-right"),  # stored on its side, to be turned clockwise
        (8, (20, 40), "bottom-left"),
    ],
)
def test_exif_orientation_is_applied(orientation: int, size: tuple[int, int], corner: str) -> None:
    stored = Image.new("RGB", (40, 20), WHITE)
    stored.paste(RED, (0, 0, 10, 10))
    data = factory.jpeg_with_orientation(stored, orientation)

    from_bytes = load(data).image
    from_pil = decode(Image.open(io.BytesIO(data)), max_pixels=LIMIT).image

    for image in (from_bytes, from_pil):
        assert image.size == size
        assert red_corner(image) == corner


# --- colour management --------------------------------------------------------------------


def test_non_srgb_profile_is_converted_to_srgb() -> None:
    # Red and blue primaries swapped: the stored red means sRGB blue.
    swapped = factory.rgb_profile(
        red=factory.SRGB_BLUE, blue=factory.SRGB_RED, description="Swapped"
    )
    stored = Image.new("RGB", (2, 1), RED)
    stored.putpixel((1, 0), GREEN)

    image = load(factory.save(stored, "PNG", icc_profile=swapped)).image

    assert near(image.getpixel((0, 0)), BLUE)
    assert near(image.getpixel((1, 0)), GREEN)


def test_model_input_is_the_unmanaged_pixels_as_rembg_reads_them() -> None:
    swapped = factory.rgb_profile(
        red=factory.SRGB_BLUE, blue=factory.SRGB_RED, description="Swapped"
    )
    stored = Image.new("RGB", (3, 2), RED)
    decoded = load(factory.save(stored, "PNG", icc_profile=swapped))
    assert near(decoded.image.getpixel((0, 0)), BLUE)
    assert decoded.model_input.getpixel((0, 0)) == RED
    assert decoded.model_input.size == decoded.image.size
    plain = load(factory.save(stored, "PNG"))
    assert plain.model_input is plain.image  # no second copy without a profile


def test_linear_profile_mid_grey_becomes_srgb_188_and_alpha_is_kept() -> None:
    # Linear 0.502 is sRGB-encoded 0.737, that is 188 of 255.
    linear = factory.rgb_profile(gamma=1.0, description="Linear RGB")
    stored = Image.new("RGBA", (2, 1), (128, 128, 128, 77))
    stored.putpixel((1, 0), (255, 0, 0, 200))

    image = load(factory.save(stored, "PNG", icc_profile=linear)).image

    assert image.mode == "RGBA"
    assert near(image.getpixel((0, 0)), (188, 188, 188, 77), 2)
    assert near(image.getpixel((1, 0)), (255, 0, 0, 200), 2)
    assert [image.getpixel((x, 0))[3] for x in (0, 1)] == [77, 200]  # type: ignore[index]


def test_grey_profile_is_converted() -> None:
    linear_grey = factory.gray_profile(gamma=1.0)
    image = load(factory.save(Image.new("L", (1, 1), 128), "PNG", icc_profile=linear_grey)).image
    assert image.mode == "RGB"
    assert near(image.getpixel((0, 0)), (188, 188, 188), 2)


def test_srgb_profile_leaves_pixels_unchanged() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    stored = noise()
    image = load(factory.save(stored, "PNG", icc_profile=srgb)).image
    assert values(image) == values(stored)


def test_broken_profile_is_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    stored = noise()
    with caplog.at_level(logging.WARNING, logger="cutout.images"):
        image = decode(
            factory.save(stored, "PNG", icc_profile=b"not a profile" * 20),
            max_pixels=LIMIT,
            source="odd.png",
        ).image
    assert values(image) == values(stored)
    assert "odd.png: unusable ICC profile ignored" in caplog.text


def test_cmyk_jpeg_without_profile_reads_as_rgb() -> None:
    # Pillow writes Adobe (inverted) CMYK; reading it back must not invert the colours.
    stored = Image.new("CMYK", (16, 8), (0, 255, 255, 0))  # no cyan, full magenta+yellow: red
    stored.paste((0, 0, 0, 0), (8, 0, 16, 8))  # no ink: white
    image = load(factory.save(stored, "JPEG", quality=100)).image
    assert image.mode == "RGB"
    assert near(image.getpixel((2, 2)), RED, 4)
    assert near(image.getpixel((13, 2)), WHITE, 4)


def test_cmyk_profile_is_used_instead_of_naive_conversion() -> None:
    def red_and_blue_swapped(c: int, m: int, y: int, k: int) -> tuple[int, int, int]:
        r, g, b = (255 * (1 - ink) * (1 - k) for ink in (c, m, y))
        return (b, g, r)

    profile = factory.cmyk_profile(red_and_blue_swapped)
    stored = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # naively red
    image = load(factory.save(stored, "JPEG", quality=100, icc_profile=profile)).image
    assert near(image.getpixel((4, 4)), BLUE, 4)


# --- bit depths and modes -----------------------------------------------------------------


def test_16bit_greyscale_png_is_scaled_not_clipped() -> None:
    stored = Image.fromarray(np.array([[0, 32768, 65535, 257 * 100]], np.uint16))
    data = factory.save(stored, "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"  # what Pillow would clip to white

    image = load(data).image

    assert image.mode == "RGB"
    assert [px[0] for px in values(image)[0]] == [0, 128, 255, 100]


def test_16bit_rgb_png_keeps_the_high_byte() -> None:
    stored = np.array([[[0x8000, 0xFFFF, 0x0000], [0x1234, 0x00FF, 0xFF00]]], np.uint16)
    image = load(factory.png_rgb16(stored)).image
    assert image.mode == "RGB"
    assert values(image) == [[[0x80, 0xFF, 0x00], [0x12, 0x00, 0xFF]]]


@pytest.mark.parametrize(
    ("samples", "expected"),
    [([0.0, 0.5, 1.0], [0, 128, 255]), ([0.0, 100.0, 255.0, 300.0], [0, 100, 255, 255])],
    ids=["0..1", "0..255"],
)
def test_float_image(samples: list[float], expected: list[int]) -> None:
    stored = Image.fromarray(np.array([samples], np.float32))
    assert stored.mode == "F"
    image = decode(stored, max_pixels=LIMIT).image
    assert image.mode == "RGB"
    assert [px[0] for px in values(image)[0]] == expected


def test_one_bit_image() -> None:
    stored = Image.new("1", (2, 1), 0)
    stored.putpixel((1, 0), 1)
    image = load(factory.save(stored, "PNG")).image
    assert image.mode == "RGB"
    assert values(image) == [[[0, 0, 0], [255, 255, 255]]]


def palette_image() -> Image.Image:
    image = Image.new("P", (3, 1))
    image.putpalette([*RED, *GREEN, *BLUE])
    for x in range(3):
        image.putpixel((x, 0), x)
    return image


def test_palette_without_transparency_becomes_rgb() -> None:
    image = load(factory.save(palette_image(), "PNG")).image
    assert image.mode == "RGB"
    assert values(image) == [[list(RED), list(GREEN), list(BLUE)]]


def test_palette_transparent_index_becomes_alpha_zero() -> None:
    image = load(factory.save(palette_image(), "PNG", transparency=1)).image
    assert image.mode == "RGBA"
    assert [px[3] for px in values(image)[0]] == [255, 0, 255]
    assert values(image)[0][0] == [*RED, 255]


@pytest.mark.parametrize(
    ("stored", "key"),
    [
        (Image.new("RGB", (2, 1), (1, 2, 3)), (1, 2, 3)),
        (Image.new("L", (2, 1), 9), 9),
    ],
    ids=["rgb", "grey"],
)
def test_png_colour_key_becomes_alpha_zero(stored: Image.Image, key: Any) -> None:
    stored.putpixel((1, 0), (200, 200, 200) if stored.mode == "RGB" else 200)
    image = load(factory.save(stored, "PNG", transparency=key)).image
    assert image.mode == "RGBA"
    assert [px[3] for px in values(image)[0]] == [0, 255]


def test_grey_with_alpha_keeps_alpha() -> None:
    stored = Image.new("LA", (3, 1))
    for x, (grey, alpha) in enumerate([(10, 0), (128, 128), (250, 255)]):
        stored.putpixel((x, 0), (grey, alpha))
    image = load(factory.save(stored, "PNG")).image
    assert image.mode == "RGBA"
    assert values(image) == [[[10, 10, 10, 0], [128, 128, 128, 128], [250, 250, 250, 255]]]


def test_rgba_alpha_is_preserved_exactly() -> None:
    stored = noise(mode="RGBA")
    image = load(factory.save(stored, "PNG")).image
    assert image.mode == "RGBA"
    assert values(image) == values(stored)


def test_fully_opaque_rgba_becomes_rgb() -> None:
    stored = noise()
    image = load(factory.save(stored.convert("RGBA"), "PNG")).image
    assert image.mode == "RGB"
    assert values(image) == values(stored)


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("RGBa", (100, 50, 0, 128), (199, 99, 0, 128)),  # premultiplied, undone
        ("PA", (0, 128), (0, 0, 0, 128)),
        ("La", (64, 128), (127, 127, 127, 128)),
    ],
)
def test_unusual_alpha_modes(mode: str, value: tuple[int, ...], expected: tuple[int, ...]) -> None:
    image = decode(Image.new(mode, (1, 1), value), max_pixels=LIMIT).image
    assert image.mode == "RGBA"
    assert near(image.getpixel((0, 0)), expected, 1)


def test_pil_input_is_not_modified() -> None:
    stored = Image.open(io.BytesIO(factory.save(palette_image(), "PNG", transparency=1)))
    stored.load()
    before = values(stored)

    image = decode(stored, max_pixels=LIMIT, source="mine").image

    assert image.mode == "RGBA"
    assert stored.mode == "P"
    assert values(stored) == before


# --- animation ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animation_uses_the_first_frame_and_warns(
    fmt: str, caplog: pytest.LogCaptureFixture
) -> None:
    frames = [Image.new("RGB", (8, 8), colour) for colour in (RED, GREEN, BLUE)]
    data = factory.save(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)

    with caplog.at_level(logging.WARNING, logger="cutout.images"):
        decoded = decode(data, max_pixels=LIMIT, source=f"anim.{fmt.lower()}")

    assert decoded.frames == 3
    assert near(decoded.image.getpixel((4, 4)), RED, 2)
    assert f"anim.{fmt.lower()}: animated image with 3 frames; using the first" in caplog.text


def test_multi_picture_jpeg_is_not_called_animated(caplog: pytest.LogCaptureFixture) -> None:
    # Phones store gain and depth maps as extra MPO pictures of an ordinary photo.
    photo, extra = Image.new("RGB", (8, 8), RED), Image.new("RGB", (8, 8), BLUE)
    data = factory.save(photo, "MPO", save_all=True, append_images=[extra])
    with caplog.at_level(logging.WARNING, logger="cutout.images"):
        decoded = load(data)
    assert decoded.frames == 2
    assert near(decoded.image.getpixel((4, 4)), RED, 4)
    assert caplog.records == []


def test_still_image_has_one_frame() -> None:
    assert load(factory.save(noise(), "PNG")).frames == 1


# --- size limit ---------------------------------------------------------------------------


def test_pixel_limit_is_checked_from_the_header(tmp_path: Path) -> None:
    # 900 MP is past Pillow's own hard limit too: its error must come out as ours.
    path = tmp_path / "huge.png"
    path.write_bytes(factory.png_claiming_size(30000, 30000))
    with pytest.raises(ImageTooLargeError) as caught:
        decode(path, max_pixels=LIMIT)
    assert str(path) in str(caught.value)
    assert "900.0 MP exceeds the limit of 80.0 MP" in str(caught.value)


def test_pixel_limit_below_pillows_warning_gives_the_size() -> None:
    # 100 MP is over Pillow's warning threshold (89 MP): the warning must not escape.
    with pytest.raises(ImageTooLargeError, match=r"10000x10000 = 100.0 MP exceeds the limit"):
        load(factory.png_claiming_size(10000, 10000))


def test_small_file_many_pixels_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    Image.new("L", (6000, 6000)).save(path, compress_level=9)
    assert path.stat().st_size < 100_000
    with pytest.raises(ImageTooLargeError, match=r"6000x6000 = 36.0 MP exceeds the limit of 1.0"):
        decode(path, max_pixels=1_000_000)


def test_pixel_limit_is_inclusive_and_applies_to_every_input() -> None:
    assert load(factory.save(noise((10, 10)), "PNG"), max_pixels=100).image.size == (10, 10)
    with pytest.raises(ImageTooLargeError, match=r"<image>: 10x11"):
        decode(Image.new("RGB", (10, 11)), max_pixels=100)
    with pytest.raises(ImageTooLargeError, match=r"<array>: 11x10"):
        decode(np.zeros((10, 11), np.uint8), max_pixels=100)


# --- broken inputs ------------------------------------------------------------------------


def test_zero_bytes(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(EmptyImageError, match=r"empty\.jpg: the file is empty"):
        decode(path, max_pixels=LIMIT)
    with pytest.raises(EmptyImageError, match=r"<bytes>: no data"):
        load(b"")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_file(fmt: str, tmp_path: Path) -> None:
    data = factory.save(noise((200, 150)), fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TruncatedImageError) as caught:
        decode(path, max_pixels=LIMIT)
    assert str(caught.value).startswith(f"{path}: truncated or corrupt image data")
    assert isinstance(caught.value.__cause__, OSError)


def test_text_file_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("shopping list: eggs, milk\n")
    with pytest.raises(NotAnImageError, match=r"notes\.jpg: not an image"):
        decode(path, max_pixels=LIMIT)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"is a directory"):
        decode(tmp_path, max_pixels=LIMIT)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "gone.png"
    with pytest.raises(ImageError, match=r"gone\.png: no such file") as caught:
        decode(str(path), max_pixels=LIMIT)
    assert isinstance(caught.value.__cause__, FileNotFoundError)


def test_source_names_the_input(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(factory.save(noise(), "PNG"))
    assert decode(path, max_pixels=LIMIT).source == str(path)
    assert decode(str(path), max_pixels=LIMIT).source == str(path)
    assert load(path.read_bytes()).source == "<bytes>"
    assert decode(noise(), max_pixels=LIMIT).source == "<image>"
    assert decode(path.read_bytes(), max_pixels=LIMIT, source="upload 7").source == "upload 7"


# --- numpy --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("array", "mode", "first"),
    [
        (np.full((2, 3), 7, np.uint8), "RGB", [7, 7, 7]),
        (np.full((2, 3, 3), (1, 2, 3), np.uint8), "RGB", [1, 2, 3]),
        (np.full((2, 3, 4), (1, 2, 3, 4), np.uint8), "RGBA", [1, 2, 3, 4]),
        (np.full((2, 3, 4), (1, 2, 3, 255), np.uint8), "RGB", [1, 2, 3]),
        (np.full((2, 3), 32768, np.uint16), "RGB", [128, 128, 128]),
        (np.full((2, 3, 3), (0.0, 0.5, 1.0)), "RGB", [0, 128, 255]),
        (np.full((2, 3), 2.0, np.float32), "RGB", [255, 255, 255]),
        (np.full((2, 3, 1), 9, np.uint8), "RGB", [9, 9, 9]),
    ],
    ids=["grey", "rgb", "rgba", "opaque-rgba", "uint16", "float", "float-clipped", "hxwx1"],
)
def test_numpy_input(array: np.ndarray[Any, Any], mode: str, first: list[int]) -> None:
    decoded = decode(array, max_pixels=LIMIT)
    assert decoded.source == "<array>"
    assert decoded.image.mode == mode
    assert decoded.image.size == (3, 2)
    assert values(decoded.image)[0][0] == first


@pytest.mark.parametrize(
    ("array", "error"),
    [
        (np.zeros((2, 3, 5), np.uint8), UnsupportedImageError),
        (np.zeros(6, np.uint8), UnsupportedImageError),
        (np.zeros((1, 2, 3, 3), np.uint8), UnsupportedImageError),
        (np.zeros((2, 3), np.int64), UnsupportedImageError),
        (np.zeros((0, 3, 3), np.uint8), EmptyImageError),
    ],
    ids=["5-channels", "1-d", "4-d", "int64", "no-pixels"],
)
def test_numpy_input_refused(array: np.ndarray[Any, Any], error: type[ImageError]) -> None:
    with pytest.raises(error, match=r"<array>: array"):
        decode(array, max_pixels=LIMIT)


# --- encode -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_png_round_trip_is_exact(mode: str) -> None:
    stored = noise(mode=mode)
    data = encode(stored, "png")
    assert data.startswith(b"\x89PNG")
    assert values(Image.open(io.BytesIO(data))) == values(stored)


def test_webp_with_alpha_is_lossless_even_under_transparency() -> None:
    stored = noise(mode="RGBA")
    stored.putpixel((0, 0), (200, 100, 50, 0))  # colour a lossy encoder would drop
    data = encode(stored, "webp")
    back = Image.open(io.BytesIO(data))
    assert back.format == "WEBP"
    assert values(back.convert("RGBA")) == values(stored)


def test_webp_without_alpha_is_lossy_and_close() -> None:
    stored = Image.new("RGB", (64, 48), (30, 120, 200))
    low = encode(noise(), "webp", EncodeOptions(webp_quality=10))
    high = encode(noise(), "webp", EncodeOptions(webp_quality=95))
    assert len(low) < len(high)
    back = Image.open(io.BytesIO(encode(stored, "webp")))
    assert back.mode == "RGB"
    assert near(back.getpixel((10, 10)), (30, 120, 200), 4)


def test_jpeg_of_transparent_image_is_refused() -> None:
    stored = noise(mode="RGBA")
    with pytest.raises(OutputFormatError) as caught:
        encode(stored, "jpg", source="cat.png")
    message = str(caught.value)
    assert message.startswith("cat.png: JPEG cannot store transparency")
    assert "png or webp" in message
    assert "--bg" in message


def test_jpeg_of_opaque_rgba_is_written_as_rgb() -> None:
    stored = Image.new("RGBA", (16, 16), (10, 200, 30, 255))
    back = Image.open(io.BytesIO(encode(stored, "jpeg")))
    assert back.format == "JPEG"
    assert back.mode == "RGB"
    assert near(back.getpixel((8, 8)), (10, 200, 30), 4)


@pytest.mark.parametrize("fmt", ["png", "webp", "jpg"])
def test_greyscale_mask_encodes_in_every_format(fmt: str) -> None:
    mask = Image.new("L", (16, 16), 0)
    mask.paste(255, (4, 4, 12, 12))
    back = Image.open(io.BytesIO(encode(mask, fmt))).convert("L")
    assert near(back.getpixel((8, 8)), 255, 6)
    assert near(back.getpixel((1, 1)), 0, 6)


def test_png_compress_level_is_honoured() -> None:
    stored = Image.new("RGB", (256, 256), (40, 80, 120))
    stored.paste((200, 10, 10), (64, 64, 192, 192))
    fast = encode(stored, "png", EncodeOptions(png_compress_level=0))
    small = encode(stored, "png", EncodeOptions(png_compress_level=9))
    assert len(fast) > 10 * len(small)


def test_encode_refuses_unknown_format_and_oversized_webp() -> None:
    with pytest.raises(OutputFormatError, match="unknown output format"):
        encode(noise(), "bmp")
    with pytest.raises(OutputFormatError, match=r"out\.webp: 16384x1 is too large for WebP"):
        encode(Image.new("RGB", (16384, 1)), "webp", source="out.webp")


@pytest.mark.parametrize(
    "options",
    [{"png_compress_level": 13}, {"webp_quality": -1}, {"jpeg_quality": 101}],
)
def test_encode_options_are_validated(options: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        EncodeOptions(**options)


# --- write_atomic -------------------------------------------------------------------------


def test_write_atomic_replaces_and_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_write_atomic_hides_the_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    seen: list[tuple[bytes, list[str]]] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        seen.append((target.read_bytes(), [p.name for p in tmp_path.iterdir()]))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    write_atomic(target, b"new")

    ((content_meanwhile, names_meanwhile),) = seen
    assert content_meanwhile == b"old"  # readers never see a half-written file
    (temporary,) = [name for name in names_meanwhile if name != "out.png"]
    assert temporary.startswith(".")
    assert temporary.endswith(".tmp")


def test_write_atomic_failure_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"old")

    def broken_replace(src: str, dst: str, **dir_fds: int | None) -> NoReturn:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_write_atomic_honours_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        write_atomic(tmp_path / "out.png", b"data")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "out.png").stat().st_mode) == 0o644


def test_an_open_file_is_decoded_from_where_it_stands(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(path)
    with open(path, "rb") as stream:
        decoded = decode(stream, max_pixels=10**6)
        assert not stream.closed  # the caller's to close
    assert decoded.source == str(path) and decoded.image.size == (40, 30)
    (tmp_path / "empty.png").touch()
    with (
        open(tmp_path / "empty.png", "rb") as stream,
        pytest.raises(EmptyImageError, match=r"empty\.png: the file is empty"),
    ):
        decode(stream, max_pixels=10**6)


# --- phones' formats: HEIC/HEIF (pillow-heif) and AVIF, made here by pillow-heif and Pillow ---


def _phone_photo(fmt: str, **params: Any) -> bytes:
    """A small white photo with a red corner, in `fmt` (lossless: exact colours to test)."""
    register_plugins()  # the encoders: the test makes its files, the decoder registers itself
    stored = Image.new("RGB", (40, 20), WHITE)
    stored.paste(RED, (0, 0, 10, 10))
    lossless = {"HEIF": {"quality": -1, "chroma": 444}, "AVIF": {"quality": 100}}[fmt]
    return factory.save(stored, fmt, **lossless, **params)


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_phone_formats_decode_upright_with_their_exif_orientation(fmt: str) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side, to be turned clockwise
    image = load(_phone_photo(fmt, exif=exif.tobytes())).image
    assert image.size == (20, 40)
    assert red_corner(image) == "top-right"


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_phone_formats_have_their_icc_profile_converted(fmt: str) -> None:
    swapped = factory.rgb_profile(
        red=factory.SRGB_BLUE, blue=factory.SRGB_RED, description="Swapped"
    )
    decoded = load(_phone_photo(fmt, icc_profile=swapped))
    assert near(decoded.image.getpixel((2, 2)), BLUE, 40)
    assert near(decoded.model_input.getpixel((2, 2)), RED, 40)


def test_a_file_is_judged_by_its_content_not_its_name(tmp_path: Path) -> None:
    heic_named_jpg = tmp_path / "photo.jpg"
    heic_named_jpg.write_bytes(_phone_photo("HEIF"))
    jpeg_named_png = tmp_path / "photo.png"
    jpeg_named_png.write_bytes(factory.save(noise(), "JPEG"))
    assert decode(heic_named_jpg, max_pixels=LIMIT).image.size == (40, 20)
    assert decode(jpeg_named_png, max_pixels=LIMIT).image.size == (64, 48)
