"""`cutout worker`: a Celery worker on the cutout queue (`celery -A worker worker` works too)."""

from __future__ import annotations

import click

from cutout.cli.common import get_settings
from cutout.session import usable_cores


def default_concurrency(configured: int) -> int:
    """One process per two cores: each process then runs ONNX Runtime on two threads."""
    return configured or max(1, usable_cores() // 2)


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
