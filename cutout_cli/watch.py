"""`cutout watch`: the watch-folder daemon, in the foreground."""

from __future__ import annotations

import logging
import signal
from types import FrameType

import click

from cutout_cli.common import check_tls, get_settings, reporting
from settings import Settings
from watcher.daemon import WatchConfig, Watcher
from worker.client import Client
from worker.logs import guard


def watch_config(settings: Settings) -> WatchConfig:
    return WatchConfig(
        inbox=settings.inbox,
        outbox=settings.outbox,
        failed_dir=settings.failed_dir,
        done_dir=settings.done_dir,
        output_format=settings.output_format,
        mode=settings.watch_mode,
        poll_seconds=settings.poll_seconds,
        settle_seconds=settings.settle_seconds,
        rescan_seconds=settings.rescan_seconds,
        on_success=settings.on_success,
        max_pending=settings.max_pending,
        metrics_address=settings.metrics_address,
        metrics_port=settings.watcher_metrics_port,
        stale_after=settings.task_time_limit + 60,
        record_ttl=settings.status_ttl,
    )


@click.command("watch")
@click.pass_context
def watch_command(ctx: click.Context, /) -> None:
    """Watch the inbox: every file dropped there is cut out into the outbox, exactly once.

    Stops cleanly on Ctrl-C or SIGTERM; files being processed are picked up again on the
    next start.
    """
    settings = get_settings(ctx)

    _console_logging()
    with reporting(ctx), Client.from_settings(settings) as client:
        check_tls(settings)
        watcher = Watcher(watch_config(settings), client)

        def stop(signum: int, frame: FrameType | None) -> None:
            watcher.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        watcher.run()


def _console_logging() -> None:
    """One plain line per event on stderr: what `cutout up` shows on the console."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    guard([handler])
    for name in ("cutout", "watcher"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        logger.propagate = False
