"""Mask quality against human ground truth: IoU, MAE, max-F and boundary MAE.

Masks are uint8 (0..255). In the truth, 128 means "unknown, not scored" (the GrabCut data
set's convention); any other value above 128 is foreground. Every metric is computed over
the scored pixels only, and per image: means over a set are taken by the caller.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

IGNORE = 128
BETA2 = 0.3  # weights precision over recall, as the salient-object literature does
BAND_PX = 15  # half-width of the boundary band, in pixels of the truth


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
