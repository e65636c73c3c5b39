"""The Python API as a rembg user calls it: the result has the input's kind."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cutout
from cutout.errors import ImageError, UnknownModelError
from cutout.session import Session
from tests.conftest import CAT, MODEL_HOME, TEST_MODEL


@pytest.fixture(scope="module")
def cat() -> Image.Image:
    with Image.open(CAT) as image:
        image.load()
        return image


def test_bytes_in_png_bytes_out(session: Session) -> None:
    out = cutout.remove(CAT.read_bytes(), session=session)
    assert isinstance(out, bytes)
    with Image.open(io.BytesIO(out)) as image:
        assert (image.format, image.mode) == ("PNG", "RGBA")


def test_path_in_encoded_bytes_out(session: Session) -> None:
    out = cutout.remove(str(CAT), session=session, format="webp", background="white")
    assert isinstance(out, bytes)
    with Image.open(io.BytesIO(out)) as image:
        assert (image.format, image.mode) == ("WEBP", "RGB")


def test_open_file_in_the_same_bytes_out_as_its_path(session: Session) -> None:
    with open(CAT, "rb") as stream:
        out = cutout.remove(stream, session=session)
    assert out == cutout.remove(CAT, session=session)


def test_pil_in_pil_out_and_input_untouched(session: Session, cat: Image.Image) -> None:
    before = np.asarray(cat).copy()
    out = cutout.remove(cat, session=session)
    assert isinstance(out, Image.Image) and out.mode == "RGBA" and out.size == cat.size
    assert (np.asarray(cat) == before).all()


def test_array_in_array_out(session: Session, cat: Image.Image) -> None:
    out = cutout.remove(np.asarray(cat), session=session, only_mask=True)
    assert isinstance(out, np.ndarray)
    assert out.shape == (cat.height, cat.width) and out.dtype == np.uint8
    assert out.min() == 0 and out.max() == 255


def test_new_session_is_cached_per_process() -> None:
    first = cutout.new_session(TEST_MODEL, model_home=MODEL_HOME, auto_pull=False)
    second = cutout.new_session(TEST_MODEL, model_home=MODEL_HOME, auto_pull=False)
    assert first is second
    assert "CPUExecutionProvider" in first.providers


def test_errors_are_ours(session: Session, tmp_path: Path) -> None:
    with pytest.raises(UnknownModelError, match="u2netp"):
        cutout.new_session("bria-rmbg")
    with pytest.raises(ImageError, match="<bytes>"):
        cutout.remove(b"definitely not an image", session=session)
