"""Serving the gateway with uvicorn: one process, asynchronous (a waiting request costs a
future, not a thread); run more `cutout http` behind a proxy to spread the load."""

from __future__ import annotations

import socket

import uvicorn
from fastapi import FastAPI

from cutout_http.common import Gateway
from cutout_http.config import GatewayConfig

# Seconds a stop waits for answers in flight (an upload still arriving, a result going out).
GRACEFUL_SECONDS = 3


class GatewayServer(uvicorn.Server):
    """uvicorn's server, which ends the event streams and the waits when it stops: left
    open, each would hold the stop for the whole grace period."""

    def __init__(self, config: uvicorn.Config, gateway: Gateway) -> None:
        super().__init__(config)
        self.gateway = gateway

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.gateway.hub.close()
        await super().shutdown(sockets)


def server(app: FastAPI, config: GatewayConfig, *, log_level: str = "info") -> GatewayServer:
    """The app (from create_app) served as `config` says."""
    settings = uvicorn.Config(
        app,
        host=config.address,
        port=config.port,
        log_level=log_level,
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        server_header=False,
    )
    return GatewayServer(settings, app.state.gateway)
