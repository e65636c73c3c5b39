"""`cutout flower`: Flower on the cutout app, never without a password."""

from __future__ import annotations

import os

import click

from cutout_cli.common import EXIT_CONFIG, fail, get_settings


@click.command("flower")
@click.pass_context
def flower_command(ctx: click.Context, /) -> None:
    """Run Flower (the Celery monitor) with basic auth from the settings."""
    settings = get_settings(ctx)
    if settings.flower_password is None:
        fail("set CUTOUT_FLOWER_PASSWORD: Flower never runs without a password", EXIT_CONFIG)
    from worker.app import app

    guard_open_endpoints()
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


def guard_open_endpoints() -> None:
    """Flower serves /metrics (every task's name and count, the workers' names) and
    /healthcheck to anyone, whatever its auth says; here they ask for the same basic auth
    as every other page (Prometheus sends it: `basic_auth` in its scrape config)."""
    import tornado.web
    from flower.views import monitor

    for handler in (monitor.Metrics, monitor.Healthcheck):
        if not getattr(handler.get, "_cutout_guarded", False):
            guarded = tornado.web.authenticated(handler.get)
            guarded._cutout_guarded = True  # type: ignore[attr-defined]
            handler.get = guarded
