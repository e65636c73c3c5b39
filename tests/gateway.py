"""The real gateway (cutout_http) served by uvicorn in a thread of the test process, on a
free loopback port, for the gateway's tests and the tiny bench run."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from cutout_http.app import create_app
from cutout_http.config import GatewayConfig
from cutout_http.server import GatewayServer, server
from settings import Settings
from tests.redis_server import free_port

START_TIMEOUT = 30.0


@dataclass
class RunningGateway:
    url: str  # ends with /
    token: str | None
    server: GatewayServer
    thread: threading.Thread

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


@contextmanager
def running_gateway(
    settings: Settings, *, token: str | None = None, **overrides: Any
) -> Iterator[RunningGateway]:
    """A gateway on `settings` (a worker's, say) with these fields changed; stopped (and
    waited for) on the way out."""
    update = {"http_port": free_port(), "http_token": SecretStr(token) if token else None}
    settings = settings.model_copy(update=update | overrides)
    config = GatewayConfig.from_settings(settings)
    served = server(create_app(settings, config=config), config, log_level="warning")
    thread = threading.Thread(target=served.run, name="test-gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not served.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the gateway did not start on {config.url}")
        time.sleep(0.02)
    try:
        yield RunningGateway(config.url, token, served, thread)
    finally:
        served.should_exit = True
        thread.join(timeout=30)
