"""Fuzzing the decoder: mutated JPEG, PNG, WebP, GIF and TIFF bytes must either decode or
raise our ImageError — never another exception, never a hang, never more memory than the
pixel limit allows. Inputs that once broke it are kept in fuzz_cases/ beside this file and
replayed."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cutout.errors import ImageError
from cutout.images import decode

CASES = Path(__file__).parent / "fuzz_cases"
LIMIT = 4_000_000  # pixels: a mutated header may claim anything, the limit bounds memory
SLOW = 5.0  # seconds: far above what a 64x48 image needs, far below a hang


def seeds() -> dict[str, bytes]:
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    out: dict[str, bytes] = {}
    for fmt, params in {
        "JPEG": {"quality": 80},
        "PNG": {},
        "WEBP": {"quality": 80},
        "GIF": {},
        "TIFF": {"compression": "tiff_deflate"},
    }.items():
        buffer = io.BytesIO()
        image.save(buffer, fmt, **params)
        out[fmt] = buffer.getvalue()
    return out


SEEDS = seeds()


def survive(data: bytes) -> None:
    started = time.monotonic()
    try:
        decoded = decode(data, max_pixels=LIMIT, source="fuzz")
    except ImageError:
        pass
    else:
        assert decoded.image.width * decoded.image.height <= LIMIT
        assert decoded.image.mode in ("RGB", "RGBA")
    assert time.monotonic() - started < SLOW


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 8))):
        action = draw(st.sampled_from(["flip", "cut", "insert", "header"]))
        at = draw(st.integers(0, len(data) - 1))
        if action == "flip":
            data[at] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:  # headers hold sizes and lengths: the most dangerous bytes
            data[min(at, 40)] = draw(st.integers(0, 255))
        if not data:
            break
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_images_decode_or_fail_cleanly(data: bytes) -> None:
    survive(data)


@pytest.mark.parametrize("case", sorted(CASES.glob("*.bin")), ids=lambda p: p.name)
def test_kept_regression_cases(case: Path) -> None:
    survive(case.read_bytes())
