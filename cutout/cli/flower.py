"""`cutout flower`: Flower on the cutout app, never without a password."""

from __future__ import annotations

import os

import click

from cutout.cli.common import EXIT_CONFIG, fail, get_settings


@click.command("flower")
@click.pass_context
def flower_command(ctx: click.Context, /) -> None:
    """Run Flower (the Celery monitor) with basic auth from the settings."""
    settings = get_settings(ctx)
    if settings.flower_password is None:
        fail("set CUTOUT_FLOWER_PASSWORD: Flower never runs without a password", EXIT_CONFIG)
    from worker.app import app

    # Through the environment, not argv, so the password does not show in `ps`.
    password = settings.flower_password.get_secret_value()
    os.environ["FLOWER_BASIC_AUTH"] = f"{settings.flower_user}:{password}"
    app.start(
        [
            "flower",
            f"--address={settings.flower_address}",
            f"--port={settings.flower_port}",
        ]
    )
