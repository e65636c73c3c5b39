"""Edge refinement: the guided filter keeps the shape and sharpens where the truth is known;
rembg's alpha matting runs and gives rembg's alpha."""

from __future__ import annotations

import importlib.util
import itertools
import logging
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage

from cutout import matting, refine, scores
from cutout.errors import ConfigError, MissingExtraError
from cutout.options import RemovalOptions
from cutout.pipeline import Remover
from cutout.session import Session
from tests.conftest import CAT, MASKS, photo_pairs

GRID = 320


def sharp_shape(seed: int, size: tuple[int, int] = (960, 640)) -> tuple[Image.Image, np.ndarray]:
    """A textured photo of a hard-edged polygon, and its exact mask."""
    rng = np.random.default_rng(seed)
    width, height = size
    truth = Image.new("L", size, 0)
    angles = np.linspace(0, 2 * np.pi, 9)[:-1]
    radii = rng.uniform(0.5, 1.0, 8)
    ImageDraw.Draw(truth).polygon(
        [
            (width / 2 + np.cos(a) * r * width / 3, height / 2 + np.sin(a) * r * height / 3)
            for a, r in zip(angles, radii, strict=True)
        ],
        fill=255,
    )
    inside = np.asarray(truth)[..., None] / 255
    texture = ndimage.gaussian_filter(rng.normal(0, 20, (height, width, 3)), (3, 3, 0))
    fg, bg = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    pixels = inside * fg + (1 - inside) * bg + texture + rng.normal(0, 4, (height, width, 3))
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8)), np.asarray(truth)


def as_the_model_sees_it(truth: np.ndarray) -> Image.Image:
    """The mask on the model's 320-px grid, a little unsure, up-sampled as rembg does."""
    height, width = truth.shape
    small = Image.fromarray(truth).resize(
        (GRID, round(GRID * height / width)), Image.Resampling.BOX
    )
    blurred = small.filter(ImageFilter.GaussianBlur(1.5))
    return blurred.resize((width, height), Image.Resampling.LANCZOS)


@pytest.mark.parametrize("seed", [0, 1])
def test_guided_filter_snaps_a_blurred_mask_to_the_photos_edges(seed: int) -> None:
    image, truth = sharp_shape(seed)
    coarse = as_the_model_sees_it(truth)
    before = scores.score(np.asarray(coarse), truth)
    after = scores.score(np.asarray(refine.guided(image, coarse, GRID)), truth)
    sharpened_only = scores.score(np.asarray(coarse.point(refine.SHARPEN_TABLE)), truth)
    assert after.boundary_mae < 0.5 * before.boundary_mae
    # The filter's own share, not only the sharpening: edges move onto the photo's.
    assert after.boundary_mae < 0.8 * sharpened_only.boundary_mae
    assert after.iou > before.iou


def test_guided_keeps_the_mask_shape_on_real_photos(session: Session) -> None:
    plain = Remover(session, RemovalOptions(only_mask=True))
    guided = Remover(session, RemovalOptions(only_mask=True, refine="guided"))
    both = union = 0
    for image_path, _ in photo_pairs():
        decoded = plain.decode(image_path)
        ours = np.asarray(plain.cut_out(decoded)) > 127
        refined = np.asarray(guided.cut_out(decoded)) > 127
        both += (ours & refined).sum()
        union += (ours | refined).sum()
    # Pooled: an image where the model finds next to nothing would make one ratio noise.
    assert both / union >= 0.98


def test_guided_sharpening_keeps_the_order_of_values() -> None:
    table = refine.SHARPEN_TABLE
    assert table[0] == 0 and table[255] == 255 and table[128] == 128
    assert all(a <= b for a, b in itertools.pairwise(table))


def test_guided_handles_small_and_rgba_images() -> None:
    image = Image.new("RGBA", (40, 30), (10, 200, 30, 255))
    image.paste((200, 20, 90, 255), (10, 10, 30, 20))
    mask = Image.new("L", (40, 30), 0)
    mask.paste(255, (10, 10, 30, 20))
    refined = refine.guided(image, mask, GRID)
    assert refined.size == (40, 30) and refined.mode == "L"
    assert np.array_equal(np.asarray(refined) > 127, np.asarray(mask) > 127)


def test_working_grid_is_about_the_models() -> None:
    assert refine.working_size((1920, 1080), GRID) == (320, 180)
    assert refine.working_size((200, 100), GRID) == (200, 100)


def test_none_leaves_the_mask_alone() -> None:
    image, mask = Image.new("RGB", (8, 8)), Image.new("L", (8, 8), 77)
    refined = refine.refine("none", image, mask, grid=GRID)
    assert refined.mask is mask and refined.colours is image


def test_unknown_mode_is_refused(session: Session) -> None:
    with pytest.raises(ConfigError, match="guided"):
        Remover(session, RemovalOptions(refine="crisp"))


# --- matting (rembg parity) ---


def small_photo() -> tuple[Image.Image, Image.Image]:
    with Image.open(CAT) as im, Image.open(MASKS / "chelsea.png") as truth:
        photo = im.convert("RGB").resize((200, 140))
        mask = truth.convert("L").resize((200, 140)).filter(ImageFilter.GaussianBlur(1))
    return photo, mask


def test_matting_gives_rembgs_alpha() -> None:
    from rembg.bg import alpha_matting_cutout

    photo, mask = small_photo()
    colours, alpha = matting.matte(photo, mask, matting.MattingOptions())
    theirs = np.asarray(alpha_matting_cutout(photo, mask, 240, 10, 10))
    assert np.array_equal(np.asarray(alpha), theirs[..., 3])
    seen = theirs[..., 3] > 0
    assert np.array_equal(np.asarray(colours)[seen], theirs[..., :3][seen])


def test_matting_trimap_follows_the_options() -> None:
    mask = np.zeros((40, 40), dtype=np.uint8)
    mask[10:30, 10:30] = 255
    wide = matting.trimap(mask, matting.MattingOptions(erode_size=6))
    narrow = matting.trimap(mask, matting.MattingOptions(erode_size=0))
    assert set(np.unique(wide)) == {0, 128, 255}
    assert (wide == 128).sum() > (narrow == 128).sum() > 0  # rembg erodes 1 px even at 0


def test_matting_without_background_falls_back_to_the_mask(
    caplog: pytest.LogCaptureFixture,
) -> None:
    photo = Image.new("RGB", (32, 32), (120, 60, 30))
    mask = Image.new("L", (32, 32), 255)
    with caplog.at_level(logging.WARNING):
        _, alpha = matting.matte(photo, mask, matting.MattingOptions())
    assert np.asarray(alpha).min() == 255
    assert "matting skipped" in caplog.text


def test_matting_through_the_pipeline(session: Session) -> None:
    photo, _ = small_photo()
    remover = Remover(session, RemovalOptions(refine="matting"))
    result = remover.cut_out(remover.decode(photo))
    assert result.mode == "RGBA" and result.size == photo.size


def test_missing_pymatting_names_the_extra(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "pymatting" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(MissingExtraError, match=r"cutout-queue\[matting\]"):
        Remover(session, RemovalOptions(refine="matting"))
