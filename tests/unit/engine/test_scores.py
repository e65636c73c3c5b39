"""The quality metrics on tiny cases whose answers are known by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cutout import scores
from cutout.scores import Scores, score


def square(size: int = 64, lo: int = 16, hi: int = 48) -> np.ndarray:
    truth = np.zeros((size, size), dtype=np.uint8)
    truth[lo:hi, lo:hi] = 255
    return truth


def test_a_perfect_mask_scores_perfectly() -> None:
    truth = square()
    s = score(truth, truth)
    assert (s.iou, s.mae, s.max_f, s.boundary_mae) == (1.0, 0.0, 1.0, 0.0)


def test_iou_of_half_overlapping_boxes() -> None:
    truth = np.zeros((10, 10), dtype=np.uint8)
    truth[:, :4] = 255
    pred = np.zeros_like(truth)
    pred[:, 2:6] = 255
    assert scores.iou(pred, truth > 128, np.ones_like(truth, bool)) == pytest.approx(20 / 60)


def test_iou_of_two_empty_masks_is_one() -> None:
    empty = np.zeros((4, 4), dtype=np.uint8)
    assert score(empty, empty).iou == 1.0


def test_mae_is_on_a_zero_to_one_scale() -> None:
    truth = square()
    assert score(np.full_like(truth, 255), truth).mae == pytest.approx(1 - 32 * 32 / 64**2)
    assert score(np.full_like(truth, 51), np.zeros_like(truth)).mae == pytest.approx(0.2)


def test_max_f_of_an_all_foreground_mask() -> None:
    truth = square()
    fraction = 32 * 32 / 64**2  # precision; recall is 1
    expected = 1.3 * fraction / (0.3 * fraction + 1)
    assert score(np.full_like(truth, 255), truth).max_f == pytest.approx(expected)


def test_max_f_picks_the_best_threshold_of_a_soft_mask() -> None:
    truth = square()
    soft = np.where(truth > 0, 90, 60).astype(np.uint8)  # low, but in the right order
    assert score(soft, truth).max_f == pytest.approx(1.0)


def test_value_128_in_the_truth_is_not_scored() -> None:
    truth = square()
    truth[:8] = 128  # unknown rows, far from the square
    pred = square()
    pred[:8] = 255  # wrong there, if it were scored
    assert score(pred, truth) == score(square(), square())


def test_boundary_band_is_15_px_around_the_edge() -> None:
    truth = square(size=100, lo=30, hi=70)
    band = scores.boundary_band(truth > 128, np.ones_like(truth, bool))
    assert band[50, 30] and band[50, 15] and band[50, 44]  # on, 15 px out, 14 px in
    assert not band[50, 14] and not band[50, 50] and not band[0, 0]


def test_errors_far_from_the_edge_leave_the_boundary_score_alone() -> None:
    truth = square(size=100, lo=30, hi=70)
    pred = truth.copy()
    pred[:5, :5] = 255  # a blob in a corner, > 15 px from the edge
    s = score(pred, truth)
    assert s.boundary_mae == 0.0 and s.mae > 0


def test_no_edge_gives_no_boundary_score() -> None:
    truth = np.zeros((8, 8), dtype=np.uint8)
    s = score(truth, truth)
    assert math.isnan(s.boundary_mae)
    assert s.as_dict()["boundary_mae"] is None
    mean = scores.mean_scores([s, Scores(1.0, 0.0, 1.0, 0.2)])
    assert mean.boundary_mae == pytest.approx(0.2)


def test_shapes_must_match() -> None:
    with pytest.raises(ValueError, match="truth"):
        score(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))
