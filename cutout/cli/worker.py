"""`cutout worker`: a Celery worker on the cutout queue (`celery -A worker worker` works too)."""

from __future__ import annotations

import ssl

import click
import redis

from cutout.cli.common import get_settings, mask_url, reporting
from cutout.errors import ConfigError
from cutout.session import usable_cores
from settings import Settings


class RedisTlsError(ConfigError):
    """A rediss:// Redis failed the TLS handshake: an untrusted certificate, or no TLS there."""


def default_concurrency(configured: int) -> int:
    """One process per two cores, each running ONNX Runtime on two threads; but at least two
    processes from two cores on: one image's decoding and encoding then run while the other's
    inference does (on 2 cores, 2 x 1 thread: ~1.9x the throughput of 1 x 2; bench/)."""
    cores = usable_cores()
    return configured or min(cores, max(2, cores // 2))


def check_tls(settings: Settings) -> None:
    """Fail now when a rediss:// Redis fails the TLS handshake: that is a setting to fix,
    not an outage to wait out (Celery would retry 100 times over several minutes)."""
    for url in dict.fromkeys((settings.broker_url, settings.status_url)):
        if not url.startswith("rediss://"):
            continue
        try:
            with redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5) as client:
                client.ping()
        except redis.ConnectionError as exc:
            cause = exc.__context__
            if isinstance(cause, ssl.SSLError):
                raise RedisTlsError(
                    f"{mask_url(url)}: TLS handshake failed: {cause}; is the server's CA in "
                    "CUTOUT_REDIS_CA_FILE (or the URL's ssl_ca_certs), and does its "
                    "certificate name this host?"
                ) from exc
            # Unreachable for now: Celery's own retries on start-up take it from here.


@click.command("worker")
@click.option(
    "-c", "--concurrency", type=click.IntRange(min=1), help="Processes [CUTOUT_CONCURRENCY]."
)
@click.option(
    "--pool",
    type=click.Choice(["prefork", "solo", "threads"]),
    default="prefork",
    show_default=True,
    help="prefork for CPU workers; solo for one GPU session.",
)
@click.option("-n", "--hostname", help="Worker name, e.g. gpu1@%h (default: celery@HOST).")
@click.option("-l", "--loglevel", default="INFO", show_default=True)
@click.pass_context
def worker_command(
    ctx: click.Context,
    /,
    *,
    concurrency: int | None,
    pool: str,
    hostname: str | None,
    loglevel: str,
) -> None:
    """Run a worker that takes cutout.remove jobs from the queue."""
    settings = get_settings(ctx)
    with reporting(ctx):
        check_tls(settings)
    from worker.app import app

    argv = [
        "worker",
        f"--concurrency={concurrency or default_concurrency(settings.concurrency)}",
        f"--pool={pool}",
        f"--queues={settings.queue}",
        f"--loglevel={loglevel}",
    ]
    if hostname:
        argv.append(f"--hostname={hostname}")
    app.worker_main(argv)
