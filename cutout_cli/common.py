"""What every subcommand shares: settings from the edge, exit codes, error reporting."""

from __future__ import annotations

import logging
import ssl
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn

import click
import redis

from cutout.errors import ConfigError, CutoutError, ImageError, ModelError, OutputFormatError
from settings import Settings, SettingsError, load_settings
from settings.config import mask_url
from worker import redisio

# Exit codes, documented in README.md ("Exit codes").
EXIT_OK = 0
EXIT_FAILED = 1  # an input could not be processed
EXIT_USAGE = 2  # bad command line (click's own code)
EXIT_CONFIG = 3  # invalid settings, unusable model or provider

log = logging.getLogger("cutout_cli")


class CliState:
    """Per-invocation state: settings are read once, on first use, at the edge."""

    def __init__(self, debug: bool) -> None:
        self.debug = debug
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings


def state(ctx: click.Context) -> CliState:
    obj = ctx.find_object(CliState)
    if obj is None:  # a subcommand invoked on its own, as tests may do
        obj = CliState(debug=False)
        ctx.obj = obj
    return obj


def get_settings(ctx: click.Context) -> Settings:
    with reporting(ctx):
        return state(ctx).settings


def exit_code_for(exc: CutoutError) -> int:
    if isinstance(exc, ImageError | OutputFormatError):
        return EXIT_FAILED
    if isinstance(exc, SettingsError | ModelError):
        return EXIT_CONFIG
    return EXIT_CONFIG if isinstance(exc, ValueError) else EXIT_FAILED


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"cutout: error: {message}", err=True)
    sys.exit(code)


@contextmanager
def reporting(ctx: click.Context) -> Iterator[None]:
    """Turn our errors into one line on stderr and an exit code; tracebacks only with --debug."""
    try:
        yield
    except CutoutError as exc:
        if state(ctx).debug:
            raise
        fail(str(exc), exit_code_for(exc))


@contextmanager
def redis_errors(ctx: click.Context, url: str, broker_url: str | None = None) -> Iterator[None]:
    """Redis (at url) or broker (at broker_url) problems as one line naming the server, never
    its password; exit 3."""
    import redis  # here: the in-process commands never touch Redis
    from kombu.exceptions import OperationalError

    try:
        yield
    except (redis.RedisError, OperationalError) as exc:
        if state(ctx).debug:
            raise
        unreachable = redis.ConnectionError | redis.TimeoutError | OperationalError
        what = "cannot reach" if isinstance(exc, unreachable) else "error from"
        where = broker_url if isinstance(exc, OperationalError) and broker_url else url
        fail(f"{what} Redis at {mask_url(where)}: {exc}", EXIT_CONFIG)


def echo_err(message: str) -> None:
    click.echo(message, err=True)


ProgressCallback = Callable[[int], None]


class RedisTlsError(ConfigError):
    """A rediss:// Redis failed the TLS handshake: an untrusted certificate, or no TLS there."""


def check_tls(settings: Settings) -> None:
    """Fail now when a rediss:// Redis fails the TLS handshake: that is a setting to fix,
    not an outage to wait out (Celery would retry 100 times over several minutes)."""
    for url in dict.fromkeys((settings.broker_url, settings.status_url)):
        if not url.startswith("rediss://"):
            continue
        try:
            with redisio.client(url, redisio.CHECK) as client:
                client.ping()
        except redis.ConnectionError as exc:
            cause = exc.__context__
            if isinstance(cause, ssl.SSLError):
                # A server that wants a client certificate (Redis's tls-auth-clients) and
                # gets none closes the connection: the client sees an EOF, not a reason.
                client_cert = (
                    ""
                    if "ssl_certfile=" in url
                    else (
                        "; or does the server want a client certificate (ssl_certfile and "
                        "ssl_keyfile in the URL)?"
                    )
                )
                raise RedisTlsError(
                    f"{mask_url(url)}: TLS handshake failed: {cause}; is the server's CA in "
                    "CUTOUT_REDIS_CA_FILE (or the URL's ssl_ca_certs), and does its "
                    f"certificate name this host?{client_cert}"
                ) from exc
            # Unreachable for now: the command's own retries on start-up take it from here.
