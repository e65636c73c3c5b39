"""The subject mask: the code of each model family (the registry, cutout.models, holds the
data of each model), then rembg's optional post-processing.

Every family's input is made the same way from its row's data (size, mean, std); what
differs is how its output becomes a mask. Both reproduce rembg 2.0.86's exactly (including
its quirk of dividing by the image's own maximum rather than 255), so that with the same
model file our mask is rembg's mask:
- U^2-Net and IS-Net output a saliency map: the first output, min-max normalised;
- BiRefNet outputs logits: a sigmoid, then min-max normalised.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image
from scipy import ndimage, special

from cutout.errors import ModelError
from cutout.models import ModelSpec
from cutout.session import InferenceSession

# skimage's disk(1), which rembg's post-processing uses as the opening footprint.
_DISK1 = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)


def prepare(image: Image.Image, spec: ModelSpec) -> np.ndarray:
    """The model input: 1x3xSxS float32, scaled by the image maximum, ImageNet-normalised."""
    size = (spec.input_size, spec.input_size)
    rgb = image if image.mode == "RGB" else image.convert("RGB")  # no copy of a 12 MP image
    # The full-resolution LANCZOS is rembg's and stays: reducing first (reducing_gap, or
    # JPEG draft decoding) is 5x faster on 12 MP but moved the mask of noisy photos by up
    # to 9% IoU (bench/ images), beyond what the fidelity guard allows.
    small = np.asarray(rgb.resize(size, Image.Resampling.LANCZOS))
    scaled = small / max(float(small.max()), 1e-6)
    mean = np.asarray(spec.mean)
    std = np.asarray(spec.std)
    tensor = ((scaled - mean) / std).transpose((2, 0, 1))
    return np.asarray(tensor[np.newaxis], dtype=np.float32)


def predict(inference: InferenceSession, spec: ModelSpec, image: Image.Image) -> Image.Image:
    """The subject mask (mode L) at the image's own size, by the model's family."""
    try:
        family = FAMILIES[spec.family]
    except KeyError:
        raise ModelError(
            f"{spec.name}: no code for model family {spec.family!r}; known: {', '.join(FAMILIES)}"
        ) from None
    return family(inference, spec, image)


def _first_output(inference: InferenceSession, spec: ModelSpec, image: Image.Image) -> np.ndarray:
    """The model's first output, channel 0: the map at the model's input size (1xSxS)."""
    name = inference.get_inputs()[0].name
    return np.asarray(inference.run(None, {name: prepare(image, spec)})[0])[:, 0, :, :]


def _mask(pred: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """The map min-max normalised, truncated to 8 bits and resized to the image, as rembg."""
    low, high = float(pred.min()), float(pred.max())
    pred = (pred - low) / max(high - low, 1e-12)
    small = Image.fromarray((np.squeeze(pred).clip(0, 1) * 255).astype(np.uint8))
    return small.resize(size, Image.Resampling.LANCZOS)


def predict_saliency(
    inference: InferenceSession, spec: ModelSpec, image: Image.Image
) -> Image.Image:
    """U^2-Net's and IS-Net's first output (the fused saliency map)."""
    return _mask(_first_output(inference, spec, image), image.size)


def predict_logits(inference: InferenceSession, spec: ModelSpec, image: Image.Image) -> Image.Image:
    """BiRefNet's first output, logits: through a sigmoid first."""
    # expit: rembg's 1 / (1 + exp(-x)) without exp's overflow on strongly negative logits.
    return _mask(special.expit(_first_output(inference, spec, image)), image.size)


Predictor = Callable[[InferenceSession, ModelSpec, Image.Image], Image.Image]
# Keyed by cutout.models.FAMILIES' names; tests/unit/engine/test_families.py holds them equal.
FAMILIES: dict[str, Predictor] = {
    "u2net": predict_saliency,
    "isnet": predict_saliency,
    "birefnet": predict_logits,
}


def post_process(mask: Image.Image) -> Image.Image:
    """rembg's `post_process_mask`: opening, Gaussian blur (sigma 2), threshold at 127."""
    opened = ndimage.grey_opening(np.asarray(mask), footprint=_DISK1)
    smooth = ndimage.gaussian_filter(opened.astype(np.float64), sigma=2)
    return Image.fromarray(np.where(smooth < 127, 0, 255).astype(np.uint8))
