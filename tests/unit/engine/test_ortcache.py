"""The saved optimised graph: made once, reused, same outputs; never in the way."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from cutout import ortcache

CPU = ["CPUExecutionProvider"]


def options() -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    return opts


def outputs(session: ort.InferenceSession) -> np.ndarray:
    feed = np.random.default_rng(0).standard_normal((1, 3, 320, 320)).astype(np.float32)
    return np.asarray(session.run(None, {session.get_inputs()[0].name: feed})[0])


@pytest.fixture
def model(tmp_path: Path, model_path: Path) -> Path:
    copy = tmp_path / "home" / model_path.name
    copy.parent.mkdir()
    shutil.copy(model_path, copy)
    return copy


def test_first_session_saves_the_graph_the_next_reuses_it(model: Path) -> None:
    first = ortcache.create(model, options(), CPU)
    cached = ortcache.cache_path(model)
    assert cached.is_file()
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]  # no temp file left
    second = ortcache.create(model, options(), CPU)
    assert np.array_equal(outputs(first), outputs(second))


def test_a_changed_model_file_gets_a_new_graph_and_the_old_one_goes(model: Path) -> None:
    ortcache.create(model, options(), CPU)
    old = ortcache.cache_path(model)
    model.touch()  # another mtime: another key
    ortcache.create(model, options(), CPU)
    assert ortcache.cache_path(model) != old
    assert not old.exists() and ortcache.cache_path(model).exists()


def test_a_damaged_graph_is_rebuilt(model: Path, caplog: pytest.LogCaptureFixture) -> None:
    expected = outputs(ortcache.create(model, options(), CPU))
    ortcache.cache_path(model).write_bytes(b"not a model")
    with caplog.at_level(logging.WARNING, logger="cutout.ortcache"):
        session = ortcache.create(model, options(), CPU)
    assert "unusable" in caplog.text
    assert np.array_equal(outputs(session), expected)
    assert ortcache.cache_path(model).stat().st_size > 1000


def test_no_room_for_the_cache_just_means_no_cache(model: Path) -> None:
    # As a read-only model folder would (the tests may run as root, who writes anywhere).
    blocker = model.parent / ortcache.CACHE_DIR
    blocker.write_text("a file where the cache folder would be")
    session = ortcache.create(model, options(), CPU)
    assert outputs(session).shape[0] == 1
    assert blocker.read_text().startswith("a file")
