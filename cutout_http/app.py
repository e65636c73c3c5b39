"""The gateway's app factory: settings in (its edge), an ASGI app out.

    uvicorn --factory cutout_http.app:create_app      (settings from CUTOUT_* and .env)

`cutout http` builds it the same way and serves it (cutout_http.server).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from importlib.metadata import version
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cutout.options import JOB_OPTIONS
from cutout_http import events, page
from cutout_http.common import ApiError, Gateway
from cutout_http.config import GatewayConfig
from cutout_http.hub import EventHub
from cutout_http.metrics import GatewayMetrics, MetricsMiddleware
from cutout_http.routes import operations, router
from settings import Settings, load_settings
from worker.client import Client
from worker.presence import Presence, keep_beating

log = logging.getLogger(__name__)

FORM_OVERHEAD = 1 << 20  # bytes a multipart body may carry besides its image (fields, headers)
DESCRIPTION = """\
Background removal through the cutout queue: the gateway enqueues `cutout.remove` jobs and
never loads the model, so it scales with the workers.

`POST /api/remove` is rembg's (`rembg s`): a rembg client changes only the host and port.
Every `/api` route asks for `Authorization: Bearer <token>` when tokens are configured.
"""


def create_app(
    settings: Settings | None = None,
    *,
    config: GatewayConfig | None = None,
    client: Client | None = None,
) -> FastAPI:
    """The gateway. Settings are read here when not given (the edge); `config` and `client`
    default to what they say. The app owns the client: it closes it when it stops."""
    settings = settings or load_settings()
    config = config or GatewayConfig.from_settings(settings)
    client = client or Client.from_settings(settings)
    hub = EventHub(client.status)
    gw = Gateway(
        config=config,
        client=client,
        hub=hub,
        metrics=GatewayMetrics(lambda: hub.streams, lambda: hub.waiting),
        option_defaults={o.name: getattr(settings, o.setting_name) for o in JOB_OPTIONS},
    )
    app = FastAPI(
        title="cutout gateway",
        description=DESCRIPTION,
        version=version("cutout-queue"),
        lifespan=_lifespan,
    )
    app.state.gateway = gw
    app.include_router(router)
    app.include_router(events.router)
    app.include_router(operations)
    app.include_router(page.router)
    _handle_errors(app)
    app.add_middleware(BodyLimit, limit=config.max_upload_bytes + FORM_OVERHEAD)
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
            expose_headers=["Content-Disposition", "Cutout-Job-Id", "Cutout-Skipped", "Location"],
        )
    app.add_middleware(MetricsMiddleware, metrics=gw.metrics)  # outermost: sees every answer
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    gw: Gateway = app.state.gateway
    gw.hub.start()
    presence = Presence(gw.status.client, prefix=gw.config.key_prefix)
    name = f"{socket.gethostname()}:{os.getpid()}:{gw.config.port}"
    stop = threading.Event()
    info = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "url": gw.config.url,
        "auth": bool(gw.config.tokens),
    }
    keep_beating(presence, "gateway", name, lambda: info, stop)
    log.info("gateway on %s", gw.config.url)
    try:
        yield
    finally:
        stop.set()
        await gw.hub.stop()
        with suppress(redis.RedisError):
            presence.forget("gateway", name)
        gw.client.close()


def _handle_errors(app: FastAPI) -> None:
    """Every error as JSON with an `error` line, whoever raised it."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = jsonable_encoder(exc.errors())
        where = [".".join(str(p) for p in e["loc"][1:]) or e["loc"][0] for e in problems]
        error = "; ".join(f"{w}: {e['msg']}" for w, e in zip(where, problems, strict=True))
        body: Any = exc.body
        upload = body.get("file") if hasattr(body, "get") else None
        name = getattr(upload, "filename", None)
        return JSONResponse({"error": error, "file": name, "detail": problems}, 422)


class BodyLimit:
    """Refuse a request body past `limit` bytes as it arrives (413): by its Content-Length
    before reading a byte, or once it has sent that many without one. The upload's own
    limit is checked exactly later; this stops a huge body from filling the disk first."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.limit:
            await _too_large(self.limit).response()(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise _too_large(self.limit)
            return message

        await self.app(scope, counted, send)


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413, f"request body larger than {limit} bytes (an image may be CUTOUT_INLINE_MAX_BYTES)"
    )
