"""`cutout worker`: a Celery worker on the cutout queue (or `celery -A worker worker`)."""

from __future__ import annotations

import click

from cutout.session import usable_cores
from cutout_cli.common import check_tls, get_settings, reporting


def default_concurrency(configured: int) -> int:
    """One process per two cores, each running ONNX Runtime on two threads; but at least two
    processes from two cores on: one image's decoding and encoding then run while the other's
    inference does (on 2 cores, 2 x 1 thread: ~1.9x the throughput of 1 x 2; bench/)."""
    cores = usable_cores()
    return configured or min(cores, max(2, cores // 2))


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
