"""`bench/quality.py` end to end on two shipped photos: rows for rembg and ours, JSON, table,
report; and the one line it stops with where the set is missing."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import ROOT, TEST_MODEL, laid_out

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
    table = (out / "table.md").read_text(encoding="utf-8")
    assert "| ours guided |" in table
    # Colours under soft edges, on blends made from each photo and its mask.
    assert "| ours --decontaminate |" in table and "| rembg -dc (pymatting) |" in table
    assert [set(image) for image in results["colours"]] == [{"green", "another photo"}] * 2
    assert (out / "report.html").read_text(encoding="utf-8").count("<tr>") == 2
    assert "| rembg -ppm |" in capsys.readouterr().out


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
