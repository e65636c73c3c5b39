"""`bench/quality.py` end to end on two shipped photos: rows for rembg and ours, JSON, table,
report; the same on alpha-matte truth, scored as the matting benchmarks score it; and the one
line it stops with where the set is missing."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image, ImageFilter

from tests.conftest import ROOT, TEST_MODEL, laid_out, photo_pairs

HARNESS = ROOT / "bench" / "quality.py"


def load_harness(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """bench/ is scripts, not a package: load the file as a module."""
    spec = importlib.util.spec_from_file_location("bench_quality", HARNESS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_quality", module)  # dataclasses look it up
    spec.loader.exec_module(module)
    return module


@pytest.mark.usefixtures("model_env")
def test_harness_compares_our_modes_with_rembg(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    model_path: Path,
) -> None:
    monkeypatch.setenv("U2NET_HOME", str(model_path.parent))  # the harness sets it for rembg
    harness = load_harness(monkeypatch)
    args = ["--model", TEST_MODEL, "--limit", "2", "--modes", "none,guided", "--no-hd-cost"]
    evalset = laid_out(tmp_path / "set", 2)
    results = harness.main([str(evalset), *args, "--out", str(tmp_path / "out")])
    assert results["images"] == 2
    mean = results["mean"]
    assert list(mean) == ["rembg", "rembg -ppm", "ours none", "ours guided"]
    # `none` is rembg's mask: the same scores within rounding of the resampling.
    assert abs(mean["ours none"]["iou"] - mean["rembg"]["iou"]) < 0.005
    assert abs(mean["ours none"]["boundary_mae"] - mean["rembg"]["boundary_mae"]) < 0.005
    out = tmp_path / "out"
    saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert saved["mean"] == mean and len(saved["per_image"]) == 2
    assert "matting_mean" not in saved and "matting" not in saved["per_image"][0]  # binary set
    table = (out / "table.md").read_text(encoding="utf-8")
    assert "| ours guided |" in table
    # Colours under soft edges, on blends made from each photo and its mask.
    assert "| ours --decontaminate |" in table and "| rembg -dc (pymatting) |" in table
    assert [set(image) for image in results["colours"]] == [{"green", "another photo"}] * 2
    assert (out / "report.html").read_text(encoding="utf-8").count("<tr>") == 2
    assert "| rembg -ppm |" in capsys.readouterr().out


def soft_set(root: Path, count: int) -> Path:
    """Shipped photos with alpha mattes made by blurring their masks (a soft band ~10 px)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for image, mask in photo_pairs()[:count]:
        (root / "images" / image.name).symlink_to(image)
        with Image.open(mask) as opened:
            matte = opened.convert("L").filter(ImageFilter.GaussianBlur(3))
        matte.save(root / "masks" / mask.name)
    return root


@pytest.mark.usefixtures("model_env")
def test_harness_scores_alpha_mattes_as_the_matting_benchmarks_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = load_harness(monkeypatch)
    evalset = soft_set(tmp_path / "set", 2)
    args = ["--model", TEST_MODEL, "--modes", "none,guided", "--no-rembg", "--no-hd-cost"]
    results = harness.main([str(evalset), *args, "--out", str(tmp_path / "out")])
    assert results["truth"]["kind"] == "soft" and results["truth"]["partial_share"] > 0.05
    matting = results["matting_mean"]
    assert list(matting) == ["ours none", "ours guided"]
    for row in matting.values():
        assert set(row) == {"sad", "mse", "grad", "conn"}
        assert all(value > 0 for value in row.values())  # a model never hits a matte exactly
    assert set(results["per_image"][0]["matting"]) == {"ours none", "ours guided"}
    # The binary scores stay, against the mattes binarised at half: the model finds the cat.
    assert results["mean"]["ours none"]["iou"] > 0.8
    out = tmp_path / "out"
    assert json.loads((out / "results.json").read_text(encoding="utf-8")) == results
    table = (out / "table.md").read_text(encoding="utf-8")
    assert "| method | SAD (/1000) | MSE (x1000) | Grad (/1000) | Conn (/1000) |" in table
    assert "| ours guided |" in table and "binarised at half" in table
    report = (out / "report.html").read_text(encoding="utf-8")
    assert report.count("<tr>") == 2 and "ours guided: SAD " in report and "alpha matte" in report


def test_auto_truth_tells_mattes_from_binary_and_grabcut_masks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = load_harness(monkeypatch)
    binary = [mask for _, mask in photo_pairs()]
    soft = [mask for _, mask in harness.pairs_of(soft_set(tmp_path / "soft", 2), 0)]
    grabcut = tmp_path / "grabcut.png"  # 0 / 255 with a wide "not scored" band of 128
    levels = np.zeros((100, 100), dtype=np.uint8)
    levels[20:80, 20:80], levels[30:70, 30:70] = 128, 255
    Image.fromarray(levels).save(grabcut)
    assert harness.soft_share(binary) == 0.0 and harness.soft_share([grabcut]) == 0.0
    assert harness.truth_kind("auto", harness.soft_share(soft)) == "soft"
    assert harness.truth_kind("auto", harness.soft_share(binary)) == "binary"
    assert harness.truth_kind("binary", harness.soft_share(soft)) == "binary"  # as asked


def test_a_missing_set_stops_with_what_is_wanted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = load_harness(monkeypatch)
    missing = tmp_path / "no-such-set"
    monkeypatch.setattr(harness, "DEFAULT_SET", missing)
    with pytest.raises(SystemExit) as stopped:
        harness.main(["--out", str(tmp_path / "out")])
    message = str(stopped.value.code)
    assert "\n" not in message and message.startswith(f"{missing}: ")
    assert "images/*.jpg + masks/*.png" in message and "QUALITY_SET=" in message
    assert not (tmp_path / "out").exists()
