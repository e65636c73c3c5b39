"""A user's own model file of a known family, from the command line and from the settings
(the tiny models of tests/tinymodels.py stand for real IS-Net and BiRefNet files)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from PIL import Image

from cutout_cli.main import cli
from tests import tinymodels
from tests.conftest import CAT

pytestmark = pytest.mark.usefixtures("model_env")


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def own_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("own")
    return {f: tinymodels.build(folder / f"my-{f}.onnx", f) for f in ("isnet", "birefnet")}


@pytest.mark.parametrize("family", ["isnet", "birefnet"])
def test_i_runs_your_own_file_of_a_family(
    family: str, own_files: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out.png"
    path = str(own_files[family])
    result = run("i", str(CAT), str(out), "--model-path", path, "--model-family", family)
    assert result.exit_code == 0, result.stderr
    with Image.open(out) as image, Image.open(CAT) as photo:
        assert (image.mode, image.size) == ("RGBA", photo.size)


def test_p_takes_your_own_file_from_the_settings(
    own_files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUTOUT_MODEL_PATH", str(own_files["birefnet"]))
    monkeypatch.setenv("CUTOUT_MODEL_FAMILY", "birefnet")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "cat.jpg").write_bytes(CAT.read_bytes())
    result = run("p", str(tmp_path / "in"), str(tmp_path / "out"))
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "out" / "cat.png").is_file()


def test_a_file_fed_as_another_family_fails_by_name(
    own_files: dict[str, Path], tmp_path: Path
) -> None:
    path = str(own_files["isnet"])
    result = run("i", str(CAT), str(tmp_path / "o.png"), "--model-path", path)  # as u2netp
    assert result.exit_code == 3  # the model cannot be used: before any image
    assert "the model takes 1024x1024 inputs but the u2net family feeds 320x320" in result.stderr
    assert not (tmp_path / "o.png").exists()


def test_a_family_without_a_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = CliRunner().invoke(cli, ["i", str(CAT), "o.png", "--model-family", "isnet"])
    assert result.exit_code == 2 and "give --model-path" in result.stderr
    monkeypatch.setenv("CUTOUT_MODEL_FAMILY", "isnet")
    result = CliRunner().invoke(cli, ["i", str(CAT), str(tmp_path / "o.png")])
    assert result.exit_code == 3
    assert "CUTOUT_MODEL_FAMILY='isnet': " in result.stderr and "CUTOUT_MODEL_PATH" in result.stderr
