"""Prometheus metrics of the workers: images done and failed (by reason), seconds per image
by size class, model load time, and the queue length Flower does not show (flower 1173).

Prefork workers are several processes: prometheus_client's multiprocess mode keeps each
process's values in files under PROMETHEUS_MULTIPROC_DIR, and the main process serves their
sum. Nothing happens at import: `start`, called in the worker's main process before the pool
forks (worker_init), sets the folder up and makes the metric objects; the pool inherits them.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import redis
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)
from prometheus_client import values as _values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from worker import redisio

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SECONDS_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60)


def size_class(pixels: int) -> str:
    if pixels <= 1_200_000:
        return "small"
    if pixels <= 3_000_000:
        return "hd"
    return "large"


class QueueLength(Collector):
    """Read at scrape time: the number of jobs waiting in the broker's queue list."""

    def __init__(self, broker_url: str, queue: str) -> None:
        self.broker_url = broker_url
        self.queue = queue

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "cutout_queue_length", "Jobs waiting in the queue", labels=["queue"]
        )
        try:
            with redisio.client(self.broker_url, redisio.CHECK) as client:
                gauge.add_metric([self.queue], float(client.llen(self.queue)))
        except redis.RedisError as exc:
            log.warning("queue length unavailable: %s", exc)
        yield gauge


class Metrics(Protocol):
    """What a worker counts; `NoMetrics` where metrics are off (and in unit tests)."""

    def succeeded(self, pixels: int, seconds: float) -> None: ...

    def failed(self, reason: str) -> None: ...

    def model_loaded(self, seconds: float) -> None: ...

    def process_exited(self, pid: int) -> None: ...

    def close(self) -> None: ...


class NoMetrics:
    """Counts nothing."""

    def succeeded(self, pixels: int, seconds: float) -> None:
        pass

    def failed(self, reason: str) -> None:
        pass

    def model_loaded(self, seconds: float) -> None:
        pass

    def process_exited(self, pid: int) -> None:
        pass

    def close(self) -> None:
        pass


class WorkerMetrics:
    """One worker instance's metrics, their values kept per process under `folder`.

    Made only once the multiprocess value class is chosen (`start`); registered in no
    registry of their own: what is served is read back from the folder (`serve`).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.images = Counter(
            "cutout_images_total",
            "Images finished, by outcome and reason",
            ["outcome", "reason"],
            registry=None,
        )
        self.image_seconds = Histogram(
            "cutout_image_seconds",
            "Seconds to process one image, by size class",
            ["size"],
            buckets=SECONDS_BUCKETS,
            registry=None,
        )
        self.model_load_seconds = Gauge(
            "cutout_model_load_seconds",
            "Seconds the model took to load",
            multiprocess_mode="max",
            registry=None,
        )

    def succeeded(self, pixels: int, seconds: float) -> None:
        self.images.labels("succeeded", "").inc()
        self.image_seconds.labels(size_class(pixels)).observe(seconds)

    def failed(self, reason: str) -> None:
        """`reason`: one of a small, fixed set of labels (README "Metrics"), never a message."""
        self.images.labels("failed", reason).inc()

    def model_loaded(self, seconds: float) -> None:
        self.model_load_seconds.set(seconds)

    def serve(self, address: str, port: int, broker_url: str, queue: str) -> None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
            registry, path=str(self.folder)
        )
        registry.register(QueueLength(broker_url, queue))
        try:
            start_http_server(port, addr=address, registry=registry)
        except OSError as exc:  # another worker on this host has the port: run without
            log.warning("worker metrics not served on %s:%d: %s", address, port, exc)
            return
        log.info("worker metrics on http://%s:%d/metrics", address, port)

    def process_exited(self, pid: int) -> None:
        multiprocess.mark_process_dead(pid, str(self.folder))  # type: ignore[no-untyped-call]

    def close(self) -> None:
        """At worker shutdown: the folder is this instance's alone."""
        shutil.rmtree(self.folder, ignore_errors=True)


def start(address: str, port: int, broker_url: str, queue: str) -> Metrics:
    """In the worker's main process, before the pool forks: the metrics, served on `port`;
    none at all where the port is 0."""
    if not port:
        return NoMetrics()
    # One folder per worker instance (the main process's pid), inherited by its pool
    # through the environment, where prometheus_client looks for it.
    folder = os.environ.setdefault(
        MULTIPROC_ENV, os.path.join(tempfile.gettempdir(), f"cutout-metrics-{os.getpid()}")
    )
    os.makedirs(folder, exist_ok=True)
    # prometheus_client chooses its value class when first imported, and Flower, loaded by
    # Celery's command-line plugins, imports it before any folder is set: choose again, now
    # that it is, before the metrics are made.
    _values.ValueClass = _values.get_value_class()  # type: ignore[no-untyped-call]
    metrics = WorkerMetrics(Path(folder))
    metrics.serve(address, port, broker_url, queue)
    return metrics
