"""Mask quality against human ground truth: IoU, MAE, max-F and boundary MAE; and against
alpha mattes, the matting benchmarks' SAD, MSE, gradient and connectivity errors.

Masks are uint8 (0..255). In a binary truth, 128 means "unknown, not scored" (the GrabCut
data set's convention); any other value above 128 is foreground. Every metric is computed
over the scored pixels only, and per image: means over a set are taken by the caller.
In an alpha matte every value is an alpha (128 is 0.502): see `matting_score`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

IGNORE = 128
BETA2 = 0.3  # weights precision over recall, as the salient-object literature does
BAND_PX = 15  # half-width of the boundary band, in pixels of the truth
# The matting benchmarks' constants (Rhemann et al., CVPR 2009; DIM's evaluation code).
GRAD_SIGMA = 1.4  # of the Gaussian whose derivatives give the gradient
GRAD_EPSILON = 1e-2  # the kernel is cut where the Gaussian falls below this (gaussgradient.m)
CONN_STEP = 0.1  # alpha thresholds 0.1, 0.2, .. 1 of the connectivity error
CONN_MIN = 0.15  # a pixel counts as disconnected from this far above its level
PER_THOUSAND = 1000  # SAD, Grad and Conn are sums over the image, printed in thousands


@dataclass(frozen=True)
class Scores:
    iou: float
    mae: float
    max_f: float
    boundary_mae: float  # NaN when the truth has no edge (all foreground or all background)

    def as_dict(self) -> dict[str, float | None]:
        """JSON-ready: NaN (no edge) becomes None."""
        return {k: (None if np.isnan(v) else v) for k, v in asdict(self).items()}


def truth_parts(truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(foreground, scored) boolean maps of a truth mask."""
    scored = truth != IGNORE
    return (truth > IGNORE) & scored, scored


def iou(pred: np.ndarray, fg: np.ndarray, scored: np.ndarray) -> float:
    """Intersection over union of the mask thresholded at half, scored pixels only."""
    ours = (pred > 127) & scored
    union = np.count_nonzero(ours | fg)
    return float(np.count_nonzero(ours & fg) / union) if union else 1.0


def mae(pred: np.ndarray, fg: np.ndarray, where: np.ndarray) -> float:
    """Mean absolute difference on a 0..1 scale over `where` (NaN when empty)."""
    count = np.count_nonzero(where)
    if not count:
        return float("nan")
    error = np.abs(pred[where].astype(np.float32) / 255 - fg[where])
    return float(error.sum(dtype=np.float64) / count)


def max_f(pred: np.ndarray, fg: np.ndarray, scored: np.ndarray) -> float:
    """The best F-measure over the 255 thresholds 1..255 (mask >= t is foreground)."""
    values = pred[scored]
    positives = np.count_nonzero(fg[scored])
    hist_fg = np.bincount(values[fg[scored]], minlength=256)
    hist_all = np.bincount(values, minlength=256)
    # Pixels at or above each threshold, from the top: one pass for every threshold.
    tp = np.cumsum(hist_fg[::-1])[::-1][1:].astype(np.float64)
    predicted = np.cumsum(hist_all[::-1])[::-1][1:].astype(np.float64)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = tp / positives if positives else np.zeros_like(tp)
    denom = BETA2 * precision + recall
    f = np.divide((1 + BETA2) * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(f.max())


def boundary_band(fg: np.ndarray, scored: np.ndarray, width: int = BAND_PX) -> np.ndarray:
    """Scored pixels within `width` px (chessboard distance) of the true edge.

    The edge is the foreground's own outline, not the image frame. Chessboard distance,
    a (2 * width + 1)-px square around each edge pixel, is the usual dilation band.
    """
    if not fg.any() or not (scored & ~fg).any():
        return np.zeros_like(fg)
    edge = fg & ~ndimage.binary_erosion(fg, border_value=1)
    distance = ndimage.distance_transform_cdt(~edge, metric="chessboard")
    band: np.ndarray = (distance <= width) & scored
    return band


def score(pred: np.ndarray, truth: np.ndarray) -> Scores:
    """Every metric of one predicted mask against its truth (same shape, uint8)."""
    if pred.shape != truth.shape:
        raise ValueError(f"mask is {pred.shape} but the truth is {truth.shape}")
    pred = np.asarray(pred, dtype=np.uint8)
    fg, scored = truth_parts(np.asarray(truth, dtype=np.uint8))
    return Scores(
        iou=iou(pred, fg, scored),
        mae=mae(pred, fg, scored),
        max_f=max_f(pred, fg, scored),
        boundary_mae=mae(pred, fg, boundary_band(fg, scored)),
    )


def mean_scores(rows: list[Scores]) -> Scores:
    """Mean per image; boundary MAE over the images that have an edge."""
    if not rows:
        raise ValueError("no scores to average")
    table = np.array([[r.iou, r.mae, r.max_f, r.boundary_mae] for r in rows], dtype=np.float64)
    bmae = table[:, 3][~np.isnan(table[:, 3])]
    return Scores(
        iou=float(table[:, 0].mean()),
        mae=float(table[:, 1].mean()),
        max_f=float(table[:, 2].mean()),
        boundary_mae=float(bmae.mean()) if bmae.size else float("nan"),
    )


def binarise(matte: np.ndarray) -> np.ndarray:
    """An alpha matte as a binary truth (alpha >= 0.5 is subject), for IoU, max-F and the MAEs.

    Nothing is left unscored: in a matte, 128 is an alpha, not GrabCut's "unknown".
    """
    return np.where(np.asarray(matte) >= 128, 255, 0).astype(np.uint8)


@dataclass(frozen=True)
class MattingScores:
    """The four errors of the matting benchmarks, in the units their tables print.

    sad, grad and conn are sums over the region divided by 1000; mse is a mean on the 0..1
    scale (tables print it times 1000). All are 0 for a perfect matte, lower is better.
    """

    sad: float
    mse: float  # NaN when the region is empty
    grad: float
    conn: float

    def as_dict(self) -> dict[str, float | None]:
        return {k: (None if np.isnan(v) else v) for k, v in asdict(self).items()}


def _alpha(mask: np.ndarray) -> np.ndarray:
    return np.asarray(mask, dtype=np.float64) / 255


def _within(error: np.ndarray, region: np.ndarray | None) -> np.ndarray:
    return error if region is None else error[region]


def sad(pred: np.ndarray, truth: np.ndarray, region: np.ndarray | None = None) -> float:
    """Sum of absolute alpha differences (alpha on 0..1), over `region`, / 1000."""
    error = np.abs(_alpha(pred) - _alpha(truth))
    return float(_within(error, region).sum() / PER_THOUSAND)


def mse(pred: np.ndarray, truth: np.ndarray, region: np.ndarray | None = None) -> float:
    """Mean squared alpha difference (alpha on 0..1) over `region` (NaN when it is empty)."""
    error = _within((_alpha(pred) - _alpha(truth)) ** 2, region)
    return float(error.mean()) if error.size else float("nan")


def _gauss_kernels(sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """gaussgradient.m's kernel as its two 1-D factors: a Gaussian across, its derivative along.

    The 2-D kernel there is their outer product, normalised to unit L2 norm; the norm of an
    outer product is the product of the norms, so each factor is normalised on its own.
    """
    half = math.ceil(
        sigma * math.sqrt(-2 * math.log(math.sqrt(2 * math.pi) * sigma * GRAD_EPSILON))
    )
    u = np.arange(-half, half + 1, dtype=np.float64)
    gauss = np.exp(-(u**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
    dgauss = -u * gauss / sigma**2
    return gauss / np.linalg.norm(gauss), dgauss / np.linalg.norm(dgauss)


def gradient_magnitude(alpha: np.ndarray, sigma: float = GRAD_SIGMA) -> np.ndarray:
    """|grad alpha| by derivative-of-Gaussian filters, replicated borders, as gaussgradient.m.

    Separable, so two 1-D passes per direction give exactly its 2-D convolution.
    """
    gauss, dgauss = _gauss_kernels(sigma)
    across = ndimage.convolve1d(alpha, gauss, axis=0, mode="nearest")
    gx = ndimage.convolve1d(across, dgauss, axis=1, mode="nearest")
    down = ndimage.convolve1d(alpha, gauss, axis=1, mode="nearest")
    gy = ndimage.convolve1d(down, dgauss, axis=0, mode="nearest")
    magnitude: np.ndarray = np.hypot(gx, gy)
    return magnitude


def gradient_error(pred: np.ndarray, truth: np.ndarray, region: np.ndarray | None = None) -> float:
    """Sum of squared differences of the gradient magnitudes (sigma 1.4), over `region`, / 1000.

    Alpha is level / 255. DIM's MATLAB stretches each matte to its own min..max first
    (mat2gray): the same wherever a matte holds both 0 and 255, as real ones do; the Python
    ports divide by 255, as here. The filters see the whole image, the sum only `region`.
    """
    error = (gradient_magnitude(_alpha(pred)) - gradient_magnitude(_alpha(truth))) ** 2
    return float(_within(error, region).sum() / PER_THOUSAND)


def _largest_component(binary: np.ndarray) -> np.ndarray:
    """The largest 4-connected component (bwconncomp(.., 4)); all False when there is none."""
    labels, count = ndimage.label(binary)  # the default structure is 4-connectivity
    if not count:
        return np.zeros_like(binary)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0  # the background
    largest: np.ndarray = labels == sizes.argmax()
    return largest


def connectivity_error(
    pred: np.ndarray, truth: np.ndarray, region: np.ndarray | None = None, step: float = CONN_STEP
) -> float:
    """Rhemann et al.'s connectivity error, as DIM's compute_connectivity_error.m, / 1000.

    For each threshold t (0.1 .. 1), the largest 4-connected part of where both mattes reach
    t; a pixel's level l is the last t before it fell out of that part (1 if it never did).
    Each matte's pixel then scores phi = 1 - d where d = alpha - l >= 0.15, else 1, and the
    error is the sum of |phi_pred - phi_truth|: it counts alpha that is cut off from the
    subject (blobs floating in the background), which SAD cannot tell from a soft edge.
    """
    ours, theirs = _alpha(pred), _alpha(truth)
    steps = np.arange(round(1 / step) + 1) * step
    level = np.full(ours.shape, -1.0)
    for previous, threshold in itertools.pairwise(steps):
        # A hair below the threshold so that exact ties (153 / 255 against 0.6) count.
        reached = (ours >= threshold - 1e-9) & (theirs >= threshold - 1e-9)
        level[(level == -1) & ~_largest_component(reached)] = previous
    level[level == -1] = 1

    def phi(alpha: np.ndarray) -> np.ndarray:
        d = alpha - level
        kept: np.ndarray = 1 - d * (d >= CONN_MIN)
        return kept

    error = np.abs(phi(ours) - phi(theirs))
    return float(_within(error, region).sum() / PER_THOUSAND)


def matting_score(
    pred: np.ndarray, truth: np.ndarray, region: np.ndarray | None = None
) -> MattingScores:
    """The four matting errors of one mask against an alpha matte (same shape, uint8).

    The benchmarks (alphamatting.com, Composition-1k) score only a trimap's unknown region
    (trimap == 128); pass that as `region`. Without one (our sets have no trimaps) the whole
    image is scored: SAD, Grad and Conn then count every pixel, and MSE is diluted by the
    easy ones, so the figures are not comparable with the published tables' numbers.
    """
    if pred.shape != truth.shape:
        raise ValueError(f"mask is {pred.shape} but the truth is {truth.shape}")
    if region is not None and region.shape != truth.shape:
        raise ValueError(f"region is {region.shape} but the truth is {truth.shape}")
    return MattingScores(
        sad=sad(pred, truth, region),
        mse=mse(pred, truth, region),
        grad=gradient_error(pred, truth, region),
        conn=connectivity_error(pred, truth, region),
    )


def mean_matting(rows: list[MattingScores]) -> MattingScores:
    """Mean per image, as the benchmarks average; MSE over the images whose region is not empty."""
    if not rows:
        raise ValueError("no scores to average")
    table = np.array([[r.sad, r.mse, r.grad, r.conn] for r in rows], dtype=np.float64)
    mses = table[:, 1][~np.isnan(table[:, 1])]
    return MattingScores(
        sad=float(table[:, 0].mean()),
        mse=float(mses.mean()) if mses.size else float("nan"),
        grad=float(table[:, 2].mean()),
        conn=float(table[:, 3].mean()),
    )
