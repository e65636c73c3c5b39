"""`bench/quality.py` end to end on two images: rows for rembg and ours, JSON, table, report."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import EVALSET, TEST_MODEL

HARNESS = Path(__file__).resolve().parents[1] / "bench" / "quality.py"


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
    results = harness.main([str(EVALSET), *args, "--out", str(tmp_path)])
    assert results["images"] == 2
    mean = results["mean"]
    assert list(mean) == ["rembg", "rembg -ppm", "ours none", "ours guided"]
    # `none` is rembg's mask: the same scores within rounding of the resampling.
    assert abs(mean["ours none"]["iou"] - mean["rembg"]["iou"]) < 0.005
    assert abs(mean["ours none"]["boundary_mae"] - mean["rembg"]["boundary_mae"]) < 0.005
    saved = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert saved["mean"] == mean and len(saved["per_image"]) == 2
    assert "| ours guided |" in (tmp_path / "table.md").read_text(encoding="utf-8")
    assert (tmp_path / "report.html").read_text(encoding="utf-8").count("<tr>") == 2
    assert "| rembg -ppm |" in capsys.readouterr().out
