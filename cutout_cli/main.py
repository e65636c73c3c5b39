"""Entry point of the `cutout` console script."""

from __future__ import annotations

import logging
from importlib import import_module

import click

from cutout_cli.common import CliState
from worker.logs import guard

# Subcommands load on use: `cutout status` need not import ONNX Runtime, nor `cutout i` Celery.
COMMANDS = {
    "i": "cutout_cli.i:i_command",
    "p": "cutout_cli.p:p_command",
    "up": "cutout_cli.up:up_command",
    "worker": "cutout_cli.worker:worker_command",
    "watch": "cutout_cli.watch:watch_command",
    "submit": "cutout_cli.submit:submit_command",
    "status": "cutout_cli.status:status",
    "flower": "cutout_cli.flower:flower_command",
    "health": "cutout_cli.health:health_command",
    "http": "cutout_cli.http:http_command",
    "models": "cutout_cli.models:models",
    "report": "cutout_cli.report:report_command",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, name = target.split(":")
        command: click.Command = getattr(import_module(module), name)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    guard(logging.getLogger().handlers)


def main() -> None:
    cli(prog_name="cutout")
