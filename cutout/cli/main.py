"""Entry point of the `cutout` console script."""

from __future__ import annotations

import logging

import click

from cutout.cli.common import CliState


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.version_option(package_name="cutout-queue")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """cutout: remove image backgrounds with U^2-Net on ONNX Runtime.

    Settings come from CUTOUT_* environment variables and a .env file; options given
    here override them. Exit codes: 0 ok, 1 an input failed, 2 bad usage,
    3 invalid settings or unusable model.
    """
    ctx.obj = CliState(debug=debug)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def _register() -> None:
    from cutout.cli.i import i_command
    from cutout.cli.models import models
    from cutout.cli.p import p_command

    cli.add_command(i_command)
    cli.add_command(p_command)
    cli.add_command(models)


_register()


def main() -> None:
    cli(prog_name="cutout")
