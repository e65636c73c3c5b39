"""Models are rows of data; the code is written once per family and chosen by the row's
family, so a row naming a family without code fails clearly, never as a wrong mask.

IS-Net and BiRefNet are tested on tiny models shaped like their real files
(tests/tinymodels.py): our mask must be rembg 2.0.86's mask on the same file, for a
registry row and for a user's own file of the family alike."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from cutout import api, mask, models
from cutout.errors import ModelError
from cutout.models import MODELS, get_model
from cutout.session import Session, open_session
from tests import tinymodels
from tests.conftest import CAT

# Each family's rows as rembg names them, and rembg's session for a user's own file.
ROWS = {
    "isnet": ("isnet-general-use", "isnet-anime"),
    "birefnet": ("birefnet-general", "birefnet-portrait"),
}
REMBG_CUSTOM = {"u2net": "u2net_custom", "isnet": "dis_custom"}


def test_every_family_has_code_and_every_row_a_family() -> None:
    assert set(mask.FAMILIES) == set(models.FAMILIES)
    assert {spec.family for spec in MODELS.values()} == set(models.FAMILIES)


def test_a_model_of_a_family_without_code_is_refused_by_name(session: Session) -> None:
    spec = dataclasses.replace(get_model("u2netp"), name="sam-x", family="sam")
    with pytest.raises(ModelError, match="sam-x: no code for model family 'sam'; known: u2net"):
        mask.predict(session.inference, spec, Image.new("RGB", (8, 8)))


def test_the_family_code_gives_a_full_size_mask(session: Session) -> None:
    image = Image.new("RGB", (40, 30), "white")
    result = mask.predict(session.inference, session.spec, image)
    assert (result.mode, result.size) == ("L", (40, 30))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder holding a tiny model under each row's file name, as rembg keeps them."""
    folder = tmp_path_factory.mktemp("home")
    for family, names in ROWS.items():
        for name in names:
            tinymodels.build(folder / get_model(name).file_name, family)
    tinymodels.build(folder / "own-u2net.onnx", "u2net")
    return folder


@pytest.fixture(scope="module")
def rembg_sessions(home: Path) -> Iterator[Any]:
    """rembg's new_session, reading from `home` (its U2NET_HOME: never a download)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("U2NET_HOME", str(home))
        from rembg import new_session

        yield new_session


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    with Image.open(CAT) as image:
        return image.convert("RGB")


def assert_same_mask(ours: Image.Image, theirs: Image.Image) -> None:
    assert ours.size == theirs.size
    difference = np.abs(np.asarray(ours, int) - np.asarray(theirs, int))
    assert difference.max() <= 1  # float rounding; a wrong mean or size moves it by far more
    assert np.asarray(ours).std() > 20  # and the mask is not flat: there was something to match


@pytest.mark.parametrize("name", [n for names in ROWS.values() for n in names])
def test_each_row_gives_rembgs_mask_on_the_same_file(
    name: str, home: Path, rembg_sessions: Any, photo: Image.Image
) -> None:
    spec = get_model(name)
    ours = mask.predict(open_session(spec, home / spec.file_name).inference, spec, photo)
    assert_same_mask(ours, rembg_sessions(name).predict(photo)[0])


@pytest.mark.parametrize("family", ["u2net", "isnet"])
def test_a_users_own_file_of_a_family_gives_rembgs_custom_mask(
    family: str, home: Path, rembg_sessions: Any, photo: Image.Image
) -> None:
    """`new_session(model_path=..., family=...)` is fed as rembg's u2net_custom / dis_custom."""
    own = home / ("own-u2net.onnx" if family == "u2net" else "isnet-general-use.onnx")
    ours = api.new_session(model_path=own, family=family)
    assert ours.spec.family == family and ours.path == own
    theirs = rembg_sessions(REMBG_CUSTOM[family], model_path=str(own)).predict(photo)[0]
    assert_same_mask(mask.predict(ours.inference, ours.spec, photo), theirs)


def test_a_users_own_birefnet_file_is_fed_as_birefnet_general(
    home: Path, photo: Image.Image
) -> None:
    """rembg has no custom BiRefNet session: ours feeds the file as birefnet-general."""
    own = home / "birefnet-general.onnx"
    row = open_session(get_model("birefnet-general"), own)
    custom = api.new_session(model_path=own, family="birefnet")
    assert_same_mask(
        mask.predict(custom.inference, custom.spec, photo),
        mask.predict(row.inference, row.spec, photo),
    )
