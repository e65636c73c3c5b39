"""Prometheus is set up when a worker starts, not when its modules are imported: Flower, the
CLI and the tests import them too, and must keep prometheus_client as they found it.
(What a running worker serves is checked on a real one in tests/integration/test_worker.py.)
"""

from __future__ import annotations

import importlib
import os

import pytest
from prometheus_client import values

from worker import metrics


def test_importing_the_metrics_sets_nothing_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)
    value_class = values.ValueClass
    importlib.reload(metrics)
    assert metrics.MULTIPROC_ENV not in os.environ
    assert values.ValueClass is value_class


def test_a_worker_without_a_metrics_port_counts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)
    counted = metrics.start("127.0.0.1", 0, "redis://127.0.0.1:6379/0", "cutout")
    assert isinstance(counted, metrics.NoMetrics)
    assert metrics.MULTIPROC_ENV not in os.environ  # no folder of per-process files either


@pytest.mark.parametrize(
    ("pixels", "size"),
    [(640 * 480, "small"), (1_200_000, "small"), (1920 * 1080, "hd"), (4000 * 3000, "large")],
)
def test_size_classes_as_the_readme_names_them(pixels: int, size: str) -> None:
    assert metrics.size_class(pixels) == size
