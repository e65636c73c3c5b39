"""`cutout up`: the whole service in one foreground command (see cutout_cli.supervisor)."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

import click

from cutout_cli import supervisor
from cutout_cli.common import check_tls, get_settings, reporting, state
from settings import Settings

FOLDER = click.Path(file_okay=False, path_type=Path)
FOLDER_FIELDS = {"inbox": "inbox", "outbox": "outbox", "failed": "failed_dir", "done": "done_dir"}


def with_folders(settings: Settings, folders: dict[str, Path | None]) -> Settings:
    """The settings with the folders given on the command line, resolved as Settings does."""
    update = {
        FOLDER_FIELDS[option]: path.expanduser().resolve()
        for option, path in folders.items()
        if path is not None
    }
    return settings.model_copy(update=update)


def flower_password(settings: Settings) -> str | None:
    """A password for this run when none is configured, shown once: Flower never runs open."""
    if settings.flower_password is not None:
        click.echo(f"Flower: {flower_url(settings)} (user {settings.flower_user})")
        return None
    password = secrets.token_urlsafe(12)
    click.echo(
        f"Flower: {flower_url(settings)} (user {settings.flower_user}, password {password}; "
        "set CUTOUT_FLOWER_PASSWORD to choose one)"
    )
    return password


def gateway_banner(settings: Settings) -> None:
    """Where the page is; an open gateway is refused here, before anything starts."""
    from cutout_http.config import GatewayConfig

    config = GatewayConfig.from_settings(settings)
    auth = "token asked" if config.tokens else "no token: loopback only"
    click.echo(f"Gateway and page: {config.url} ({auth})")


def flower_url(settings: Settings) -> str:
    return f"http://{settings.flower_address}:{settings.flower_port}/"


@click.command("up")
@click.option("--inbox", type=FOLDER, help="Folder watched for images [CUTOUT_INBOX].")
@click.option("--outbox", type=FOLDER, help="Folder of the results [CUTOUT_OUTBOX].")
@click.option("--failed", type=FOLDER, help="Failed inputs [CUTOUT_FAILED_DIR].")
@click.option("--done", type=FOLDER, help="Inputs once processed [CUTOUT_DONE_DIR].")
@click.option("--flower", "with_flower", is_flag=True, help="Run Flower too (basic auth).")
@click.option("--http", "with_http", is_flag=True, help="Run the HTTP gateway and its page too.")
@click.option(
    "-c", "--concurrency", type=click.IntRange(min=1), help="Worker processes [CUTOUT_CONCURRENCY]."
)
# Tests play "no Redis on the default port" by pointing this at a closed port: they cannot
# stop the machine's own Redis. Not for users, hence hidden.
@click.option("--probe-url", hidden=True, help="Where to look for an already running Redis.")
@click.pass_context
def up_command(
    ctx: click.Context,
    /,
    *,
    inbox: Path | None,
    outbox: Path | None,
    failed: Path | None,
    done: Path | None,
    with_flower: bool,
    with_http: bool,
    concurrency: int | None,
    probe_url: str | None,
) -> None:
    """Run the whole service in the foreground: Redis (a private one when none is configured
    or running), a worker, the watcher, with --http the HTTP gateway and its page, and with
    --flower Flower. Ctrl-C stops it all.

    Exit codes: 0 stopped on request; 1 a part of the service died; 3 Redis unusable.
    """
    settings = get_settings(ctx)
    settings = with_folders(
        settings, {"inbox": inbox, "outbox": outbox, "failed": failed, "done": done}
    )
    debug = state(ctx).debug
    if not debug:  # the CLI logs warnings only; our few lines say what runs where
        logging.getLogger(supervisor.__name__).setLevel(logging.INFO)
    password = flower_password(settings) if with_flower else None
    with reporting(ctx):
        if with_http:
            gateway_banner(settings)
        check_tls(settings)
        code = supervisor.serve(
            settings,
            # Unconfigured, the broker URL is the default address, where a Redis may run.
            probe_url=probe_url or settings.broker_url,
            concurrency=concurrency,
            with_flower=with_flower,
            flower_password=password,
            with_http=with_http,
            debug=debug,
        )
    ctx.exit(code)
