"""The fast path (`--precision bf16|int8`, cutout.precision): built from the real u2netp file
in a model folder of the test's own, run on OpenVINO, checked against fp32, cached, refused
beyond its tolerance."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import openvino
import pytest
from click.testing import CliRunner
from PIL import Image

from cutout import new_session, precision, remove
from cutout.errors import MissingExtraError, ProviderError
from cutout.models import get_model
from cutout.session import open_session
from cutout_cli.main import cli
from tests.conftest import CAT, TEST_MODEL


@pytest.fixture
def home(tmp_path: Path, model_path: Path) -> Path:
    """A model folder of the test's own, holding a copy of the real u2netp file."""
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(model_path, folder / model_path.name)
    return folder


def builds(home: Path) -> list[str]:
    return sorted(p.name for p in (home / precision.CACHE_DIR).iterdir() if p.is_dir())


def test_int8_u2netp_is_refused_with_its_measured_mask_change(home: Path, tmp_path: Path) -> None:
    """The int8 recipe breaks u2netp (its masks move far from fp32's): the command says so
    with the figures and exits 3 rather than cutting out with it."""
    result = CliRunner().invoke(
        cli,
        ["i", str(CAT), str(tmp_path / "out.png"), "-m", TEST_MODEL, "--precision", "int8"],
        env={"CUTOUT_MODEL_HOME": str(home)},
    )
    assert result.exit_code == 3, result.output
    assert "u2netp at int8 is refused: mask IoU vs fp32" in result.output
    assert "int8's tolerance" in result.output and "use precision fp32" in result.output
    assert not (tmp_path / "out.png").exists()
    # The verdict is kept with the build: asking again refuses at once, the same way.
    (folder,) = builds(home)
    assert folder.startswith("u2netp-int8-qdq-minmax-perchannel-openvino-r1-")
    record = json.loads((home / precision.CACHE_DIR / folder / "check.json").read_text())
    assert record["check"]["mean_iou"] < precision.RECIPES["int8"].min_iou


def test_bf16_runs_on_openvino_close_to_fp32_and_is_cached(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """u2netp misses bf16's tolerance (measured: README "Performance"); the tolerance is
    loosened here because the point is the runtime, the cache and the mask, not the verdict."""
    loose = dataclasses.replace(precision.RECIPES["bf16"], min_iou=0.5, max_diff=20.0)
    monkeypatch.setitem(precision.RECIPES, "bf16", loose)
    if "BF16" not in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        # A CPU without bf16 instructions: refused by name, never a quiet fp32 run.
        with pytest.raises(ProviderError, match="not bf16, on this CPU"):
            new_session(TEST_MODEL, model_home=home, precision="bf16", threads=1)
        return
    fast = new_session(TEST_MODEL, model_home=home, precision="bf16", threads=1)
    assert fast.precision == "bf16" and fast.providers == ("OpenVINO:CPU",)
    assert "conv bf16" in fast.runs_at  # what OpenVINO compiled, read back
    exact = new_session(TEST_MODEL, model_home=home, threads=1)
    with Image.open(CAT) as photo:
        ours = np.asarray(remove(photo, session=fast, only_mask=True)) > 127
        theirs = np.asarray(remove(photo, session=exact, only_mask=True)) > 127
    assert (ours & theirs).sum() / (ours | theirs).sum() > 0.9
    (folder,) = builds(home)
    assert folder.startswith("u2netp-bf16-openvino-bf16-r1-")
    check = home / precision.CACHE_DIR / folder / "check.json"
    built = check.stat().st_mtime_ns
    spec, path = get_model(TEST_MODEL), home / "u2netp.onnx"
    again = open_session(spec, path, threads=2, precision="bf16")  # a new session, same build
    assert again is not fast and check.stat().st_mtime_ns == built
    # A new recipe (or runtime) is a new build; the old one goes.
    monkeypatch.setitem(precision.RECIPES, "bf16", dataclasses.replace(loose, name="bf16-r2"))
    open_session(spec, path, threads=3, precision="bf16")
    (rebuilt,) = builds(home)
    assert rebuilt.startswith("u2netp-bf16-bf16-r2-")


def test_the_fast_path_never_quietly_leaves_the_gpu_or_misses_openvino(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = get_model(TEST_MODEL)
    with pytest.raises(ProviderError, match="precision bf16 runs on the CPU"):
        open_session(spec, model_path, providers=["CUDAExecutionProvider"], precision="bf16")
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if not installed
    with pytest.raises(MissingExtraError, match=r"cutout-queue\[fast\]"):
        open_session(spec, model_path, threads=5, precision="int8")
