"""The benchmark's image set: deterministic, built offline, in three size classes.

- small: scikit-image's sample photos at their own size, plus camera JPEGs: photos of
  pascal_s (../shared/evalsets, read in place) where that folder is, else the JPEGs the
  repository ships for its tests (tests/data/photos: the same samples, so fewer subjects);
- hd (1920x1080) and 12mp (4000x3000): the same sample photos scaled to cover that size
  (LANCZOS), with seeded sensor-like noise, saved as JPEG quality 92 like a camera would.
  Without the noise an upscaled photo is unnaturally smooth and compresses (PNG) far better
  than a real one.

The same arguments give the same files, byte for byte, with the same Pillow and numpy.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

SIZE_CLASSES = ("small", "hd", "12mp")
SIZES = {"hd": (1920, 1080), "12mp": (4000, 3000)}
# Colour photos with a subject; "cat" is chelsea again, the others are not photos of one.
SAMPLE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
NOISE_SIGMA = 2.5  # in 8-bit levels: a good camera at base ISO
JPEG_QUALITY = 92
REPO = Path(__file__).resolve().parents[1]
EVALSET = REPO.parent / "shared" / "evalsets" / "pascal_s"
SHIPPED_JPEGS = REPO / "tests" / "data" / "photos"


@dataclass(frozen=True)
class ImageSet:
    """Folders of inputs, one per size class, and what is in them."""

    root: Path
    files: dict[str, list[Path]]
    jpegs_from: str | None = None  # the small class's JPEGs: "pascal_s" or "shipped"

    def folder(self, size_class: str) -> Path:
        return self.root / size_class

    @property
    def classes(self) -> list[str]:
        return [c for c in SIZE_CLASSES if self.files.get(c)]

    def count(self) -> int:
        return sum(len(files) for files in self.files.values())


def sample_photo(name: str) -> Image.Image:
    from skimage import data  # scikit-image (dev extra): its samples ship in the wheel

    return Image.fromarray(getattr(data, name)()).convert("RGB")


def scaled(photo: Image.Image, size: tuple[int, int], seed: int) -> Image.Image:
    """The photo covering `size`, with seeded Gaussian noise."""
    big = ImageOps.fit(photo, size, Image.Resampling.LANCZOS)
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, NOISE_SIGMA, (size[1], size[0], 1)).astype(np.float32)
    pixels = np.asarray(big, dtype=np.float32) + noise  # the same noise on R, G, B: luma
    return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))


def camera_jpegs(limit: int, evalset: Path = EVALSET) -> tuple[str, list[Path]]:
    """(origin, photos): every k-th photo of pascal_s, up to `limit`, in a fixed order; the
    shipped test photos where pascal_s is absent, so that the bench runs from a bare clone."""
    origin = evalset.name
    images = sorted((evalset / "images").glob("*.jpg"), key=lambda p: int(p.stem))
    if not images:
        origin, images = "shipped", sorted(SHIPPED_JPEGS.glob("*.jpg"))
    if limit <= 0 or not images:
        return origin, []
    step = max(1, len(images) // limit)
    return origin, images[::step][:limit]


def build(
    root: Path,
    *,
    photos: int = len(SAMPLE_PHOTOS),
    jpegs: int = 4,
    large: int | None = None,
    variants: int = 2,
    evalset: Path = EVALSET,
) -> ImageSet:
    """Write the set under root (replacing what is there).

    photos: sample photos used (each at its own size, HD and 12 MP); jpegs: camera JPEGs
    added to the small class, from `evalset`'s images/ (else tests/data/photos); large:
    sample photos used for HD and 12 MP (default: photos); variants: versions of each at HD
    and 12 MP (the second mirrored, other noise), so that a size class holds enough images
    for `cutout p`'s pipeline to fill and drain in a small part of its time, as it does on a
    real batch.
    """
    if root.exists():
        shutil.rmtree(root)
    names = SAMPLE_PHOTOS[:photos]
    large_names = names[: photos if large is None else large]
    files: dict[str, list[Path]] = {c: [] for c in SIZE_CLASSES}
    for c in SIZE_CLASSES:
        (root / c).mkdir(parents=True)
    for index, name in enumerate(names):
        photo = sample_photo(name)
        target = root / "small" / f"{name}.png"  # the sample as shipped, lossless
        photo.save(target)
        files["small"].append(target)
        if name not in large_names:
            continue
        for variant in range(variants):
            version = ImageOps.mirror(photo) if variant % 2 else photo
            suffix = f"-{variant}" if variant else ""
            for c, size in SIZES.items():
                target = root / c / f"{name}{suffix}.jpg"
                seed = index + variant * len(SAMPLE_PHOTOS)
                scaled(version, size, seed=seed).save(target, "JPEG", quality=JPEG_QUALITY)
                files[c].append(target)
    origin, sources = camera_jpegs(jpegs, evalset)
    for source in sources:
        target = root / "small" / f"{origin}-{source.name}"
        shutil.copyfile(source, target)
        files["small"].append(target)
    return ImageSet(root, {c: sorted(f) for c, f in files.items()}, origin if sources else None)
