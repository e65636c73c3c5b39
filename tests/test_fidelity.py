"""Our mask is rembg's mask with the same model, and as good on human ground truth."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from PIL import Image

from cutout.pipeline import RemovalOptions, Remover
from cutout.session import Session
from tests.conftest import evalset_pairs


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


@pytest.fixture(scope="module")
def masks(
    session: Session, rembg_session: Any
) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(name, ours, rembg's, ground truth) for every image of pascal_s."""
    from rembg import remove as rembg_remove

    remover = Remover(session, RemovalOptions(only_mask=True))
    rows = []
    for image_path, mask_path in evalset_pairs():
        ours = np.asarray(remover.cut_out(remover.decode(image_path)))
        theirs = np.asarray(
            rembg_remove(Image.open(image_path), session=rembg_session, only_mask=True)
        )
        truth = np.asarray(Image.open(mask_path).convert("L"))
        rows.append((image_path.name, ours, theirs, truth))
    return rows


def test_mask_equals_rembg_on_every_image(
    masks: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
) -> None:
    assert len(masks) == 80
    for name, ours, theirs, _ in masks:
        assert ours.shape == theirs.shape, name
        assert iou(ours > 127, theirs > 127) >= 0.99, name
        assert np.abs(ours.astype(int) - theirs.astype(int)).mean() <= 2, name


def test_ground_truth_iou_matches_rembg(
    masks: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
) -> None:
    ours = np.mean([iou(o > 127, t > 127) for _, o, _, t in masks])
    theirs = np.mean([iou(r > 127, t > 127) for _, _, r, t in masks])
    # U^2-Net is a good model: a broken pipeline (wrong normalisation, flipped channels,
    # misaligned resize) drops far below this.
    assert ours > 0.8
    assert abs(ours - theirs) <= 0.01


def test_post_processed_mask_equals_rembgs_ppm(session: Session, rembg_session: Any) -> None:
    from rembg import remove as rembg_remove

    remover = Remover(session, RemovalOptions(only_mask=True, post_process_mask=True))
    for image_path, _ in evalset_pairs()[::16]:
        ours = np.asarray(remover.cut_out(remover.decode(image_path)))
        with Image.open(image_path) as image:
            theirs = np.asarray(
                rembg_remove(image, session=rembg_session, only_mask=True, post_process_mask=True)
            )
        assert set(np.unique(ours)) <= {0, 255}, image_path.name
        assert (ours != theirs).mean() < 0.001, image_path.name
