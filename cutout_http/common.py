"""What every route shares: the gateway's state, its errors as JSON, and the token check."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from cutout_http.config import GatewayConfig
from cutout_http.hub import EventHub
from cutout_http.metrics import GatewayMetrics
from worker.client import Client
from worker.status import StatusStore


@dataclass
class Gateway:
    """What every request needs: built once by the app factory, kept in app.state."""

    config: GatewayConfig
    client: Client
    hub: EventHub
    metrics: GatewayMetrics
    option_defaults: dict[str, Any]  # the settings' values, shown by the page

    @property
    def status(self) -> StatusStore:
        return self.client.status


class ApiError(HTTPException):
    """An answer other than success: its status, its JSON body and headers. An
    HTTPException, so that FastAPI lets it through even from inside a body being read."""

    def __init__(
        self,
        status: int,
        error: str,
        *,
        headers: dict[str, str] | None = None,
        **fields: Any,
    ) -> None:
        super().__init__(status, error, headers)
        self.body = {"error": error, **fields}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, self.status_code, headers=self.headers)


def gateway(request: Request) -> Gateway:
    found: Gateway = request.app.state.gateway
    return found


GatewayDep = Annotated[Gateway, Depends(gateway)]
bearer = HTTPBearer(
    auto_error=False,
    description="One of CUTOUT_HTTP_TOKEN / CUTOUT_HTTP_TOKENS; none is asked when neither "
    "is set (the gateway then listens on loopback only).",
)


def authorized(
    gw: GatewayDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    tokens = gw.config.tokens
    if not tokens:
        return
    given = (credentials.credentials if credentials else "").encode()
    # Every token compared, in constant time: the answer's timing tells nothing.
    matches = [hmac.compare_digest(given, token.encode()) for token in tokens]
    if not any(matches):
        raise ApiError(
            401,
            "a valid token is required: Authorization: Bearer <token>",
            headers={"WWW-Authenticate": 'Bearer realm="cutout"'},
        )


# Every /api route asks for it, and /metrics (Prometheus: `authorization` in its scrape config).
AUTHORIZED = [Depends(authorized)]
