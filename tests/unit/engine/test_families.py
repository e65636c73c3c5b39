"""Models are rows of data; the code is written once per family and chosen by the row's
family, so a row naming a family without code fails clearly, never as a wrong mask."""

from __future__ import annotations

import dataclasses

import pytest
from PIL import Image

from cutout import mask
from cutout.errors import ModelError
from cutout.models import MODELS, get_model
from cutout.session import Session


def test_every_registered_model_has_its_familys_code() -> None:
    assert {spec.family for spec in MODELS.values()} <= set(mask.FAMILIES)


def test_a_model_of_a_family_without_code_is_refused_by_name(session: Session) -> None:
    spec = dataclasses.replace(get_model("u2netp"), name="isnet-x", family="isnet")
    with pytest.raises(ModelError, match="isnet-x: no code for model family 'isnet'; known: u2net"):
        mask.predict(session.inference, spec, Image.new("RGB", (8, 8)))


def test_the_family_code_gives_a_full_size_mask(session: Session) -> None:
    image = Image.new("RGB", (40, 30), "white")
    result = mask.predict(session.inference, session.spec, image)
    assert (result.mode, result.size) == ("L", (40, 30))
