"""`cutout i` and `cutout p` as a user runs them: files, stdin/stdout, exit codes, messages."""

from __future__ import annotations

import io
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from cutout.images import register_plugins
from cutout_cli.main import cli
from tests.conftest import CAT, MASKS, PHOTOS

pytestmark = pytest.mark.usefixtures("model_env")

# Reference masks made by u2net (tests/data/README.md): they show whether the pipeline finds
# the subject, not how good a model is.
CAT_MASK = MASKS / "chelsea.png"
COFFEE = PHOTOS / "coffee.jpg"  # a subject well inside the frame, for the crop
COFFEE_MASK = MASKS / "coffee.png"


def load(path: Path) -> Image.Image:
    """Open, decode and close (an unclosed file is a ResourceWarning, hence an error)."""
    with Image.open(path) as image:
        image.load()
        return image


CAT_SIZE = load(CAT).size


def run(*args: str, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)


def reference_iou(alpha: np.ndarray) -> float:
    truth = np.asarray(load(CAT_MASK)) > 127
    ours = alpha > 127
    return float((truth & ours).sum() / (truth | ours).sum())


def test_i_writes_a_transparent_png(tmp_path: Path) -> None:
    out = tmp_path / "cat.png"
    result = run("i", str(CAT), str(out))
    assert result.exit_code == 0, result.output
    image = load(out)
    assert image.format == "PNG" and image.mode == "RGBA"
    assert image.size == CAT_SIZE
    # u2netp: 0.85. All opaque gives 0.61, swapped channels 0.04, no normalisation 0.68.
    assert reference_iou(np.asarray(image)[..., 3]) > 0.8
    assert [p.name for p in tmp_path.iterdir()] == ["cat.png"]  # no temp file left


def test_i_stdin_to_stdout_in_the_format_asked(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["i", "-", "-", "--format", "webp"], input=CAT.read_bytes())
    assert result.exit_code == 0
    image = Image.open(io.BytesIO(result.stdout_bytes))
    assert image.format == "WEBP" and image.mode == "RGBA"


@pytest.mark.parametrize(
    ("args", "name", "mode", "fmt"),
    [
        (["--bg", "white"], "out.jpg", "RGB", "JPEG"),
        (["--bg", "#00ff0080"], "out.webp", "RGBA", "WEBP"),
        (["--bg", "blur"], "out.png", "RGB", "PNG"),
        (["--only-mask"], "mask.png", "L", "PNG"),
    ],
)
def test_i_backgrounds_and_formats(
    tmp_path: Path, args: list[str], name: str, mode: str, fmt: str
) -> None:
    out = tmp_path / name
    result = run("i", str(CAT), str(out), *args)
    assert result.exit_code == 0, result.output
    image = load(out)
    assert (image.format, image.mode, image.size) == (fmt, mode, CAT_SIZE)


def test_i_image_background(tmp_path: Path) -> None:
    backdrop = tmp_path / "beach.png"
    Image.new("RGB", (50, 50), (0, 0, 255)).save(backdrop)
    out = tmp_path / "out.png"
    assert run("i", str(CAT), str(out), "--bg", str(backdrop)).exit_code == 0
    px = np.asarray(load(out).convert("RGB"))
    assert tuple(px[0, -1]) == (0, 0, 255)  # the top right corner is background


def test_i_crop_to_subject(tmp_path: Path) -> None:
    out = tmp_path / "crop.png"
    assert run("i", str(COFFEE), str(out), "--crop", "--crop-margin", "0").exit_code == 0
    cropped = load(out)
    box = load(COFFEE_MASK).getbbox()
    assert box is not None
    # The cup and saucer: 403x374 of 600x400 in the reference mask, 408x375 with u2netp.
    assert abs(cropped.width - (box[2] - box[0])) <= 15
    assert abs(cropped.height - (box[3] - box[1])) <= 15


def test_i_transparent_jpeg_is_a_clear_error(tmp_path: Path) -> None:
    out = tmp_path / "out.jpg"
    result = run("i", str(CAT), str(out))
    assert result.exit_code == 1
    assert "JPEG" in result.stderr and "transparen" in result.stderr
    assert not out.exists()


def test_i_broken_file_one_line_error_naming_it(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(CAT.read_bytes()[:3000])
    result = run("i", str(broken), str(tmp_path / "out.png"))
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and str(broken) in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.png").exists()


def test_i_missing_model_says_how_to_fetch_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUTOUT_MODEL_HOME", str(tmp_path / "empty"))
    result = run("i", str(CAT), str(tmp_path / "out.png"))
    assert result.exit_code == 3
    assert "cutout models pull u2netp" in result.stderr
    assert str(tmp_path / "empty" / "u2netp.onnx") in result.stderr


def test_bad_setting_fails_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUTOUT_BACKGROUND", "#GGG")
    result = run("i", str(CAT), str(tmp_path / "out.png"))
    assert result.exit_code == 3
    assert "CUTOUT_BACKGROUND='#GGG'" in result.stderr


def test_unknown_model_option_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["i", str(CAT), str(tmp_path / "o.png"), "-m", "nope"])
    assert result.exit_code == 2
    assert "u2netp" in result.stderr


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    (src / "shop" / "shoes").mkdir(parents=True)
    shutil.copy(CAT, src / "cat.jpg")
    shutil.copy(CAT, src / "shop" / "shoes" / "a.jpg")
    load(CAT).save(src / "shop" / "shoes" / "a.png")  # same stem as a.jpg
    (src / "shop" / "broken.jpg").write_bytes(b"")
    (src / "notes.txt").write_text("not an image, not touched")
    shutil.copy(CAT, src / ".hidden.jpg")
    return src


def test_p_mirrors_tree_reports_failures_and_exits_1(tree: Path, tmp_path: Path) -> None:
    """a.jpg and a.png in one folder: a.png and a (2).png, the same names when run again
    (a second run replaces its own outputs); the text file is counted, not processed."""
    out = tmp_path / "out"
    for _ in range(2):
        result = run("p", str(tree), str(out))
        assert result.exit_code == 1
        produced = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
        assert produced == ["cat.png", "shop/shoes/a (2).png", "shop/shoes/a.png"]
        assert "broken.jpg" in result.stderr and "empty" in result.stderr
        assert "3 done, 1 failed, of 4 images" in result.stderr
        assert "1 file skipped: not an image by name" in result.stderr


def test_p_all_good_exits_0_with_format(tree: Path, tmp_path: Path) -> None:
    (tree / "shop" / "broken.jpg").unlink()
    out = tmp_path / "out"
    result = run("p", str(tree), str(out), "--format", "webp", "--bg", "white")
    assert result.exit_code == 0, result.stderr
    assert load(out / "cat.webp").mode == "RGB"


def test_help_documents_every_option() -> None:
    text = run("i", "--help").output
    for option in ("--model", "--bg", "--only-mask", "--crop", "--refine", "--format", "-ppm"):
        assert option in text


def test_p_skip_existing_does_only_the_rest(tree: Path, tmp_path: Path) -> None:
    """A run interrupted (one output missing) and an input changed since its output was
    made: with --skip-existing the rerun does exactly those two, and the summary counts
    the rest; the outputs keep the names of a full run."""
    out = tmp_path / "out"
    (tree / "shop" / "broken.jpg").unlink()
    assert run("p", str(tree), str(out)).exit_code == 0
    (out / "shop" / "shoes" / "a (2).png").unlink()  # as if interrupted before this one
    kept = out / "cat.png"
    before = kept.stat().st_mtime_ns
    stale = out / "shop" / "shoes" / "a.png"
    earlier = (tree / "shop" / "shoes" / "a.jpg").stat().st_mtime_ns - 10**9
    os.utime(stale, ns=(earlier, earlier))  # as if a.jpg had changed since

    result = run("p", str(tree), str(out), "--skip-existing")

    assert result.exit_code == 0, result.stderr
    assert "2 done, 0 failed, 1 up to date, of 3 images" in result.stderr
    assert kept.stat().st_mtime_ns == before  # not rewritten
    produced = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert produced == ["cat.png", "shop/shoes/a (2).png", "shop/shoes/a.png"]
    assert stale.stat().st_mtime_ns > earlier


def test_p_takes_phone_formats(tmp_path: Path) -> None:
    """HEIC and AVIF files (made here by pillow-heif and Pillow) are images to `cutout p`,
    decoded whatever their names say."""
    register_plugins()  # the encoders
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    cat = load(CAT)
    cat.save(src / "iphone.HEIC", "HEIF")
    cat.save(src / "web.avif", "AVIF")
    cat.save(src / "lying.heif", "AVIF")  # an AVIF named as a HEIF
    result = run("p", str(src), str(out))
    assert result.exit_code == 0, result.stderr
    assert "3 done, 0 failed, of 3 images" in result.stderr
    for name in ("iphone.png", "web.png", "lying.png"):
        assert reference_iou(np.asarray(load(out / name))[..., 3]) > 0.8


def test_p_runs_the_model_one_image_at_a_time_on_every_core(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two images in flight, but their model runs take turns (each run's activations are
    most of p's memory: README "Performance"), each on all the usable cores; every image
    still comes out."""
    from cutout import session as sessions

    src = tmp_path / "in"
    src.mkdir()
    for index in range(6):
        shutil.copy(CAT, src / f"cat{index}.jpg")
    running, most, threads = 0, 0, []
    lock = threading.Lock()
    real_init = sessions.TakingTurns.__init__

    class Counted:  # the real session, counting the runs in progress at once
        def __init__(self, inner: sessions.InferenceSession) -> None:
            self.inner = inner

        def run(self, names: Any, feed: Any) -> Any:
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            try:
                return self.inner.run(names, feed)
            finally:
                with lock:
                    running -= 1

        def get_inputs(self) -> Any:
            return self.inner.get_inputs()

    def init(self: sessions.TakingTurns, inference: sessions.InferenceSession) -> None:
        real_init(self, Counted(inference))

    def open_session(*args: Any, **kwargs: Any) -> sessions.Session:
        threads.append(kwargs["threads"])
        return sessions.open_session(*args, **kwargs)

    monkeypatch.setattr(sessions.TakingTurns, "__init__", init)
    monkeypatch.setattr("settings.engine.open_session", open_session)
    monkeypatch.setattr("cutout_cli.p.usable_cores", lambda: 4)
    monkeypatch.setattr(sessions, "usable_cores", lambda: 4)
    result = run("p", str(src), str(tmp_path / "out"))
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        f"cat{index}.png" for index in range(6)
    ]
    assert most == 1
    assert threads == [4]  # not shared out between the two images in flight
