"""Prometheus metrics of the watcher: files seen, claimed, pending, in flight, settle time."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)


class WatcherMetrics:
    """A registry of its own, so tests can build several watchers in one process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.seen = Counter(
            "cutout_watcher_files_seen_total",
            "Files offered to the settler",
            registry=self.registry,
        )
        self.claimed = Counter(
            "cutout_watcher_files_claimed_total", "Files claimed and sent", registry=self.registry
        )
        self.finished = Counter(
            "cutout_watcher_files_finished_total",
            "Claimed files settled, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.pending = Gauge(
            "cutout_watcher_files_pending", "Files waiting to settle", registry=self.registry
        )
        self.in_flight = Gauge(
            "cutout_watcher_jobs_in_flight",
            "Claimed files whose job is not done",
            registry=self.registry,
        )
        self.settle_seconds = Histogram(
            "cutout_watcher_settle_seconds",
            "Seconds from a file being seen to its claim",
            buckets=(0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 300),
            registry=self.registry,
        )

    def serve(self, address: str, port: int) -> None:
        try:
            start_http_server(port, addr=address, registry=self.registry)
        except OSError as exc:
            log.warning("watcher metrics not served on %s:%d: %s", address, port, exc)
            return
        log.info("watcher metrics on http://%s:%d/metrics", address, port)
