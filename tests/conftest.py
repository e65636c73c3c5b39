"""Shared fixtures: the real u2netp model, rembg as the oracle, the evaluation set."""

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

TEST_MODEL = "u2netp"
MODEL_HOME = Path(
    os.environ.get("CUTOUT_MODEL_HOME") or os.environ.get("U2NET_HOME") or "~/.u2net"
).expanduser()
EVALSET = Path(__file__).resolve().parents[2] / "shared" / "evalsets" / "pascal_s"


def evalset_pairs() -> list[tuple[Path, Path]]:
    images = sorted((EVALSET / "images").glob("*.jpg"), key=lambda p: int(p.stem))
    if not images:
        raise RuntimeError(f"no evaluation images under {EVALSET}")
    return [(image, EVALSET / "masks" / f"{image.stem}.png") for image in images]


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
    """A real Redis database for this test session (never skipped: started if none runs)."""
    from tests.redis_server import test_redis

    with test_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url
