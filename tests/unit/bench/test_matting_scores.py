"""The matting benchmarks' errors (cutout/scores.py) on tiny mattes whose answers are known
by hand: what `make quality` reports on a set with alpha-matte truth."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from cutout import scores


def soft_square(size: int = 48) -> np.ndarray:
    """A subject with a soft edge: a square blurred into a ramp, as a uint8 alpha matte."""
    hard = np.zeros((size, size), dtype=np.float64)
    hard[12:36, 12:36] = 255
    return np.rint(ndimage.gaussian_filter(hard, 2)).astype(np.uint8)


def test_a_perfect_matte_scores_zero_everywhere() -> None:
    truth = soft_square()
    assert scores.matting_score(truth, truth) == scores.MattingScores(0.0, 0.0, 0.0, 0.0)


def test_a_uniform_offset_gives_the_known_sad_and_mse_and_no_gradient_error() -> None:
    truth = np.full((10, 10), 100, dtype=np.uint8)
    pred = truth + 51  # 51 / 255 = 0.2 of alpha on each of 100 pixels
    s = scores.matting_score(pred, truth)
    assert s.sad == pytest.approx(100 * 0.2 / 1000)  # in thousands, as the benchmarks print
    assert s.mse == pytest.approx(0.2**2)
    assert s.grad == pytest.approx(0.0, abs=1e-12)  # an offset changes no gradient


def test_only_the_region_is_scored_as_a_trimap_unknown_region_would_be() -> None:
    truth = np.full((10, 10), 100, dtype=np.uint8)
    pred = truth + 51
    left = np.zeros(truth.shape, dtype=bool)
    left[:, :5] = True
    s = scores.matting_score(pred, truth, region=left)
    assert s.sad == pytest.approx(50 * 0.2 / 1000) and s.mse == pytest.approx(0.2**2)
    empty = scores.matting_score(pred, truth, region=np.zeros_like(left))
    assert empty.sad == 0.0 and math.isnan(empty.mse) and empty.as_dict()["mse"] is None


def test_gradient_error_grows_as_an_edge_is_blurred() -> None:
    truth = soft_square()
    blurred = [np.rint(ndimage.gaussian_filter(truth.astype(float), s)) for s in (1, 3)]
    errors = [scores.gradient_error(b.astype(np.uint8), truth) for b in blurred]
    assert 0 < errors[0] < errors[1]


def test_gradient_is_dim_s_gaussgradient_kernel() -> None:
    """Two 1-D passes give what gaussgradient.m's 2-D kernel (sigma 1.4, 9x9) gives."""
    sigma, half = 1.4, 4

    def gauss(x: float) -> float:
        return math.exp(-(x**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))

    u = range(-half, half + 1)
    hx = np.array([[gauss(i) * -j * gauss(j) / sigma**2 for j in u] for i in u])
    hx /= np.sqrt((hx**2).sum())
    alpha = np.random.default_rng(0).random((20, 30))
    gx = ndimage.convolve(alpha, hx, mode="nearest")
    gy = ndimage.convolve(alpha, hx.T, mode="nearest")
    assert np.allclose(scores.gradient_magnitude(alpha), np.hypot(gx, gy), atol=1e-12)


def test_connectivity_counts_a_detached_blob_not_a_faint_halo() -> None:
    truth = np.zeros((20, 20), dtype=np.uint8)
    truth[5:15, 5:15] = 255
    blob = truth.copy()
    blob[0:2, 0:2] = 255  # opaque, cut off from the subject: phi 0 against 1, 4 pixels
    assert scores.connectivity_error(blob, truth) == pytest.approx(4 / 1000)
    halo = truth.copy()
    halo[4, 5:15] = 26  # alpha 0.1 on the subject's edge: below 0.15, so still connected
    assert scores.connectivity_error(halo, truth) == 0.0
    assert scores.sad(halo, truth) == pytest.approx(10 * 26 / 255 / 1000)


def test_means_are_per_image_and_skip_an_empty_region() -> None:
    rows = [scores.MattingScores(1.0, 0.5, 2.0, 3.0), scores.MattingScores(3.0, math.nan, 4, 5)]
    assert scores.mean_matting(rows) == scores.MattingScores(2.0, 0.5, 3.0, 4.0)


def test_a_matte_binarises_at_half_with_nothing_unscored() -> None:
    matte = np.array([[0, 127, 128, 255]], dtype=np.uint8)
    assert scores.binarise(matte).tolist() == [[0, 0, 255, 255]]
