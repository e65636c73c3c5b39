"""--refine and the matting options from every edge: CLI, settings, the task payload."""

from __future__ import annotations

import base64
import importlib.util
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from cutout_cli.main import cli
from cutout_cli.options import build_remover
from settings import SettingsError, engine, load_settings
from tests.conftest import CAT
from worker.jobs import JobError, parse_job


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def alpha_of(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.getchannel("A"))


@pytest.mark.usefixtures("model_env")
def test_cli_refine_guided_changes_only_the_edges(tmp_path: Path) -> None:
    plain, guided = tmp_path / "plain.png", tmp_path / "guided.png"
    assert run("i", str(CAT), str(plain)).exit_code == 0
    result = run("i", str(CAT), str(guided), "--refine", "guided")
    assert result.exit_code == 0, result.output
    a, b = alpha_of(plain.read_bytes()), alpha_of(guided.read_bytes())
    assert not np.array_equal(a, b)
    assert ((a > 127) ^ (b > 127)).sum() < 0.01 * a.size


@pytest.mark.usefixtures("model_env")
def test_cli_matting_to_stdout_is_a_clean_png() -> None:
    # pymatting print()s warnings; none may land in the image on stdout.
    args = ["i", str(CAT), "-", "--refine", "matting", "--matting-erode-size", "5"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0
    with Image.open(CAT) as cat:
        assert alpha_of(result.stdout_bytes).shape == (cat.height, cat.width)


@pytest.mark.usefixtures("model_env")
def test_cli_matting_without_pymatting_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "pymatting" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    result = run("i", str(CAT), str(tmp_path / "x.png"), "--refine", "matting")
    assert result.exit_code == 3
    assert "cutout-queue[matting]" in result.output


def test_cli_refuses_an_unknown_mode(tmp_path: Path) -> None:
    result = run("i", str(CAT), str(tmp_path / "x.png"), "--refine", "sharp")
    assert result.exit_code == 2
    assert "guided" in result.output


@pytest.mark.usefixtures("model_env")
def test_matting_options_cli_over_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUTOUT_MATTING_FG_THRESHOLD", "200")
    monkeypatch.setenv("CUTOUT_MATTING_ERODE_SIZE", "4")
    given = {"refine": "matting", "matting_erode_size": 7}
    remover = build_remover(load_settings(), given)
    assert remover.options.refine == "matting"
    matting = remover.options.matting
    assert (matting.foreground_threshold, matting.background_threshold) == (200, 10)
    assert matting.erode_size == 7


def test_settings_accept_the_modes_and_check_the_thresholds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CUTOUT_REFINE", "guided")
    assert engine.removal_options(load_settings()).refine == "guided"
    monkeypatch.setenv("CUTOUT_REFINE", "sharp")
    with pytest.raises(SettingsError, match="CUTOUT_REFINE"):
        load_settings()
    monkeypatch.setenv("CUTOUT_REFINE", "none")
    monkeypatch.setenv("CUTOUT_MATTING_BG_THRESHOLD", "300")
    with pytest.raises(SettingsError, match="CUTOUT_MATTING_BG_THRESHOLD"):
        load_settings()


def test_task_payload_takes_a_refine_mode() -> None:
    job = parse_job({"input_path": "a.jpg", "refine": "guided"}, inline_max_bytes=10)
    assert job.refine == "guided"
    with pytest.raises(JobError, match="refine"):
        parse_job({"input_path": "a.jpg", "refine": "sharp"}, inline_max_bytes=10)


@pytest.mark.usefixtures("model_env")
def test_a_job_asking_for_guided_gets_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.runner import JobRunner

    monkeypatch.chdir(tmp_path)  # the default folders, never created for inline jobs
    runner = JobRunner(load_settings())
    data = base64.b64encode(CAT.read_bytes()).decode("ascii")
    results = {
        mode: runner.run(parse_job({"input_data": data, "refine": mode}, inline_max_bytes=10**8))
        for mode in ("none", "guided")
    }
    plain, guided = (alpha_of(results[m].data or b"") for m in ("none", "guided"))
    assert plain.shape == guided.shape and not np.array_equal(plain, guided)
