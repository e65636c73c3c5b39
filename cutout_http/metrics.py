"""Prometheus metrics of the gateway, served at its own `/metrics` (behind its token):
requests by route and status, their latency, and who is waiting right now.

Routes are labelled by their template (`/api/jobs/{job_id}`), never by the path a caller
sent, so that the number of series stays small whatever is requested.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
UNMATCHED = "other"  # a path no route has (a 404)


class GatewayMetrics:
    """One gateway's metrics, in a registry of its own (two apps in a process never clash)."""

    def __init__(self, streams: Callable[[], int], waiting: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "cutout_http_requests_total",
            "HTTP requests answered, by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "cutout_http_request_seconds",
            "Seconds from a request's arrival to the end of its answer, by route",
            ["route", "method"],
            buckets=SECONDS_BUCKETS,
            registry=self.registry,
        )
        streams_gauge = Gauge(
            "cutout_http_event_streams",
            "Clients following GET /api/events",
            registry=self.registry,
        )
        streams_gauge.set_function(lambda: float(streams()))
        waiting_gauge = Gauge(
            "cutout_http_waiting_requests",
            "POST /api/remove calls waiting for their job",
            registry=self.registry,
        )
        waiting_gauge.set_function(lambda: float(waiting()))

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.seconds.labels(route, method).observe(seconds)


class MetricsMiddleware:
    """Times every HTTP request to the end of its body (an event stream: while it lasts)."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app fails before it does

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            route = scope.get("route")
            label = route.path if isinstance(route, BaseRoute) and hasattr(route, "path") else None
            self.metrics.observe(
                label or UNMATCHED, scope["method"], status, time.perf_counter() - started
            )
