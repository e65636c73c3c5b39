"""Prometheus metrics of the workers: images done and failed (by reason), seconds per image
by size class, model load time, and the queue length Flower does not show (flower 1173).

Prefork workers are several processes: prometheus_client's multiprocess mode keeps each
process's values in files under PROMETHEUS_MULTIPROC_DIR, which the Celery app module sets
before this module is imported, and the main process serves their sum.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator

import redis

from worker import redisio

# prometheus_client chooses its multiprocess mode when first imported: set the folder
# before. One per worker instance (the main process's pid), inherited by its pool.
MULTIPROC_DIR = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", os.path.join(tempfile.gettempdir(), f"cutout-metrics-{os.getpid()}")
)
os.makedirs(MULTIPROC_DIR, exist_ok=True)

from prometheus_client import (  # noqa: E402
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)
from prometheus_client import values as _values  # noqa: E402
from prometheus_client.core import GaugeMetricFamily  # noqa: E402
from prometheus_client.registry import Collector  # noqa: E402

# Flower, loaded by Celery's command-line plugins, may have imported prometheus_client before
# the folder was set: choose the value class again, before our metrics are created.
_values.ValueClass = _values.get_value_class()  # type: ignore[no-untyped-call]

log = logging.getLogger(__name__)

IMAGES = Counter(
    "cutout_images_total", "Images finished, by outcome and reason", ["outcome", "reason"]
)
IMAGE_SECONDS = Histogram(
    "cutout_image_seconds",
    "Seconds to process one image, by size class",
    ["size"],
    buckets=(0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60),
)
MODEL_LOAD_SECONDS = Gauge(
    "cutout_model_load_seconds", "Seconds the model took to load", multiprocess_mode="max"
)


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


def remove_multiprocess_dir() -> None:
    """At worker shutdown: the folder is this instance's alone."""
    shutil.rmtree(MULTIPROC_DIR, ignore_errors=True)


def serve(address: str, port: int, broker_url: str, queue: str) -> None:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(QueueLength(broker_url, queue))
    try:
        start_http_server(port, addr=address, registry=registry)
    except OSError as exc:  # another worker on this host has the port: run without
        log.warning("worker metrics not served on %s:%d: %s", address, port, exc)
        return
    log.info("worker metrics on http://%s:%d/metrics", address, port)


def process_exited(pid: int) -> None:
    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
