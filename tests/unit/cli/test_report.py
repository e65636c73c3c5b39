"""`cutout report` and the HTML it writes: every picture embedded, worst boundary first."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from cutout import report
from cutout.scores import Scores
from cutout_cli.main import cli
from tests.conftest import laid_out, photo_pairs

pytestmark = pytest.mark.usefixtures("model_env")


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def boundary_scores(page: str) -> list[float]:
    return [float(v) for v in re.findall(r"boundary MAE (\d\.\d+)<br>", page)]


def test_report_with_truth_is_self_contained_and_worst_first(tmp_path: Path) -> None:
    out = tmp_path / "out" / "report.html"
    result = run("report", str(laid_out(tmp_path / "set", 3)), "-o", str(out))
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert page.count("<tr>") == 3
    assert page.count('src="data:image/') == 3 * 4  # input, mask, cut-out, truth
    assert "ground truth" in page and 'src="http' not in page
    scores = boundary_scores(page)
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)


def test_report_of_a_plain_folder_keeps_folder_order(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for image, _ in photo_pairs()[:2]:
        (folder / image.name).symlink_to(image)
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "report.html"
    result = run("report", str(folder), "-o", str(out), "--refine", "guided")
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert page.count("<tr>") == 2 and "<div>ground truth" not in page
    names = [p.name for p, _ in photo_pairs()[:2]]
    assert page.index(names[0]) < page.index(names[1])


def test_report_of_an_empty_folder_fails(tmp_path: Path) -> None:
    result = run("report", str(tmp_path), "-o", str(tmp_path / "r.html"))
    assert result.exit_code == 1
    assert "no images" in result.output


def test_a_truth_of_the_wrong_size_is_reported_and_skipped(tmp_path: Path) -> None:
    root = laid_out(tmp_path / "set", 2)
    first_mask = sorted((root / "masks").iterdir())[0]
    first_mask.unlink()
    Image.new("L", (7, 7)).save(first_mask)
    result = run("report", str(root), "-o", str(tmp_path / "r.html"))
    assert result.exit_code == 1
    assert "FAILED" in result.output and "7x7" in result.output
    assert (tmp_path / "r.html").read_text(encoding="utf-8").count("<tr>") == 1


def test_worst_first_puts_rows_without_truth_last() -> None:
    def row(name: str, bmae: float | None) -> report.Row:
        scores = None if bmae is None else Scores(0.9, 0.1, 0.9, bmae)
        return report.Row(name, (), scores)

    rows = [row("a", 0.1), row("b", None), row("c", 0.3), row("d", math.nan)]
    assert [r.name for r in report.worst_first(rows)] == ["c", "a", "b", "d"]


def test_checkerboard_shows_transparency() -> None:
    image = Image.new("RGB", (32, 32), (255, 0, 0))
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (0, 0, 16, 32))
    shown = np.asarray(report.over_checkerboard(image, mask))
    assert tuple(shown[0, 0]) == (255, 0, 0)
    assert {tuple(shown[0, 16]), tuple(shown[0, 24])} == {(204, 204, 204), (255, 255, 255)}
