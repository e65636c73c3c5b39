"""Shared fixtures: the real u2netp model, rembg as the oracle, the shipped test photos."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cutout import store
from cutout.errors import ModelError
from cutout.models import get_model
from cutout.session import Session, open_session
from tests import processes

TEST_MODEL = "u2netp"
MODEL_HOME = Path(
    os.environ.get("CUTOUT_MODEL_HOME") or os.environ.get("U2NET_HOME") or "~/.u2net"
).expanduser()
ROOT = Path(__file__).resolve().parents[1]  # the repository
DATA = ROOT / "tests" / "data"
PHOTOS = DATA / "photos"  # small photos with reference masks: tests/data/README.md
MASKS = DATA / "masks"
CAT = PHOTOS / "chelsea.jpg"  # the main subject: one animal, its head filling the frame


def photo_pairs() -> list[tuple[Path, Path]]:
    """(photo, reference mask) for every shipped photo, by name."""
    images = sorted(PHOTOS.glob("*.jpg"))
    if not images:
        raise RuntimeError(f"no test photos under {PHOTOS}")
    return [(image, MASKS / f"{image.stem}.png") for image in images]


def laid_out(root: Path, count: int | None = None) -> Path:
    """The shipped pairs (the first `count`) linked into the images/ + masks/ layout that
    `cutout report` and bench/quality.py read."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for image, mask in photo_pairs()[:count]:
        (root / "images" / image.name).symlink_to(image)
        (root / "masks" / mask.name).symlink_to(mask)
    return root


@pytest.fixture(scope="session")
def model_path() -> Path:
    """The real u2netp file; missing is a failure (run `make models`), never a skip."""
    try:
        return store.ensure(get_model(TEST_MODEL), MODEL_HOME, auto_pull=False)
    except ModelError as exc:
        pytest.fail(f"{exc} (run `make models`)")


@pytest.fixture(scope="session")
def session(model_path: Path) -> Session:
    return open_session(get_model(TEST_MODEL), model_path)


@pytest.fixture
def model_env(monkeypatch: pytest.MonkeyPatch, model_path: Path) -> None:
    """Environment for CLI runs: the test model from the test cache, nothing fetched."""
    monkeypatch.setenv("CUTOUT_MODEL", TEST_MODEL)
    monkeypatch.setenv("CUTOUT_MODEL_HOME", str(model_path.parent))
    monkeypatch.setenv("CUTOUT_MODEL_AUTO_PULL", "false")


@pytest.fixture(scope="session")
def rembg_session(model_path: Path) -> Iterator[Any]:
    """rembg itself, pointed at the same file so that it never downloads."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("U2NET_HOME", str(model_path.parent))
        from rembg import new_session

        yield new_session(TEST_MODEL)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis of this test run's own (never skipped, never the machine's)."""
    from tests.redis_server import test_redis

    with test_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test() -> Iterator[None]:
    """Processes a test (or its function-scoped fixtures) spawned end with it, even when
    it fails; those of wider fixtures end with the run (pytest_sessionfinish)."""
    position = processes.mark()
    yield
    processes.end_since(position)


def pytest_sessionfinish() -> None:
    processes.end_since(0)
