"""A rembg user swaps the import: rembg 2.0.86's README examples run unchanged but for it,
and rembg's keywords of remove() and new_session() mean here what they mean there."""

from __future__ import annotations

import io
import re
import sys
import types
from importlib.metadata import distribution
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import cutout
from cutout import api
from cutout.errors import ConfigError
from cutout.session import Session
from tests.conftest import CAT, MODEL_HOME, TEST_MODEL


def rembg_readme_examples() -> list[str]:
    """The Python blocks of rembg's "Usage as a Library", from the README it ships (its
    package metadata), but those of paid cloud services (an API key, the network)."""
    readme = distribution("rembg").read_text("METADATA") or ""
    section = readme.split("## Usage as a Library", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    return [block for block in blocks if "api_key" not in block]


def _stand_in_cv2() -> types.ModuleType:
    """OpenCV's imread/imwrite (BGR arrays), which the numpy example uses; OpenCV itself is
    not a dependency here, and the point is remove()'s array in, array out."""
    cv2 = types.ModuleType("cv2")

    def imread(path: str) -> np.ndarray:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))[..., ::-1].copy()

    def imwrite(path: str, array: np.ndarray) -> bool:
        channels = array[..., [2, 1, 0, 3]] if array.shape[2] == 4 else array[..., ::-1]
        Image.fromarray(np.ascontiguousarray(channels)).save(path)
        return True

    cv2.imread, cv2.imwrite = imread, imwrite  # type: ignore[attr-defined]
    return cv2


def test_rembgs_readme_examples_run_with_only_the_import_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, session: Session
) -> None:
    """The default model (u2net, 176 MB) is not on the test machines: `new_session()`
    without a name gives the test model in its place; nothing else is changed."""
    examples = rembg_readme_examples()
    assert len(examples) >= 5  # bytes, PIL, numpy, force_return_bytes, batch with a session
    default = api.new_session
    monkeypatch.setattr(api, "new_session", lambda *a, **k: default(*(a or (TEST_MODEL,)), **k))
    monkeypatch.setenv("U2NET_HOME", str(MODEL_HOME))
    monkeypatch.setitem(sys.modules, "cv2", _stand_in_cv2())
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "path" / "to" / "folder"
    folder.mkdir(parents=True)
    with Image.open(CAT) as cat:
        cat.save("input.png")
        cat.save(folder / "cat.png")
        size = cat.size
    for example in examples:
        Path("output.png").unlink(missing_ok=True)
        code = example.replace("from rembg import", "from cutout import")
        exec(compile(code, "rembg README", "exec"), {})
        with Image.open("output.png" if "glob" not in code else folder / "cat.out.png") as out:
            assert (out.mode, out.size) == ("RGBA", size), example


def test_rembgs_keywords_mean_ours(session: Session) -> None:
    data = CAT.read_bytes()

    def mask(**keywords: Any) -> np.ndarray:
        out = cutout.remove(data, session=session, **keywords)
        assert isinstance(out, bytes)
        with Image.open(io.BytesIO(out)) as image:
            return np.asarray(image)

    assert np.array_equal(
        mask(bgcolor=(255, 255, 255, 255), only_mask=False),
        mask(background="#ffffffff"),
    )
    rembg_matting = mask(
        alpha_matting=True,
        alpha_matting_foreground_threshold=230,
        alpha_matting_background_threshold=20,
        alpha_matting_erode_size=5,
        only_mask=True,
    )
    ours = mask(
        refine="matting",
        matting_fg_threshold=230,
        matting_bg_threshold=20,
        matting_erode_size=5,
        only_mask=True,
    )
    assert np.array_equal(rembg_matting, ours)


def test_force_return_bytes_and_contradictions(session: Session) -> None:
    with Image.open(CAT) as cat:
        out = cutout.remove(cat, session=session, force_return_bytes=True)
    assert isinstance(out, bytes) and out.startswith(b"\x89PNG")
    with pytest.raises(ConfigError, match="alpha_matting=True contradicts refine='guided'"):
        cutout.remove(CAT.read_bytes(), session=session, alpha_matting=True, refine="guided")


def test_new_session_takes_rembgs_names(tmp_path: Path) -> None:
    by_keyword = cutout.new_session(model_name=TEST_MODEL, model_home=MODEL_HOME)
    assert by_keyword.spec.name == TEST_MODEL
    own = tmp_path / "mine.onnx"
    own.write_bytes((MODEL_HOME / f"{TEST_MODEL}.onnx").read_bytes())
    custom = cutout.new_session("u2net_custom", model_path=str(own))
    assert (custom.spec.family, custom.path) == ("u2net", own)
    with pytest.raises(ConfigError, match="dis_custom needs model_path"):
        cutout.new_session("dis_custom")
