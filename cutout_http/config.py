"""What the gateway takes from the settings, and the rule that keeps it off the network
without a token: read once at its edge (`cutout http`, `create_app`), then passed down."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from cutout.errors import ConfigError
from settings import Settings


class OpenGatewayError(ConfigError):
    """The gateway would listen beyond loopback with no token asked of its callers."""


@dataclass(frozen=True)
class GatewayConfig:
    address: str
    port: int
    tokens: tuple[str, ...]  # empty: no token asked (loopback only)
    wait_seconds: float  # POST /api/remove, before its 504
    max_upload_bytes: int  # one image; the queue takes no bigger inline
    cors_origins: tuple[str, ...]
    key_prefix: str  # the heartbeat's (`cutout health`)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, address: str | None = None, port: int | None = None
    ) -> GatewayConfig:
        """`address`/`port`: the command line's, over the settings'. Refuses an open
        gateway (OpenGatewayError) before anything listens."""
        origins = (o.strip() for o in settings.http_cors_origins.split(","))
        config = cls(
            address=address or settings.http_address,
            port=port or settings.http_port,
            tokens=tuple(settings.http_token_list),
            wait_seconds=settings.http_wait_seconds,
            max_upload_bytes=settings.inline_max_bytes,
            cors_origins=tuple(o for o in origins if o),
            key_prefix=settings.key_prefix,
        )
        config.check()
        return config

    def check(self) -> None:
        if not self.tokens and not is_loopback(self.address):
            raise OpenGatewayError(
                f"the gateway would listen on {self.address}, beyond this machine, with no "
                "token: set CUTOUT_HTTP_TOKEN (or CUTOUT_HTTP_TOKENS), or listen on 127.0.0.1"
            )

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}/"


def is_loopback(address: str) -> bool:
    """Whether only this machine can reach `address`; a host name other than localhost may
    resolve anywhere, so it counts as open."""
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
