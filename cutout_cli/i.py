"""`cutout i INPUT OUTPUT`: one image, in-process."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from cutout.images import write_atomic
from cutout.pipeline import output_format
from cutout_cli.common import get_settings, reporting
from cutout_cli.options import (
    build_remover,
    collect,
    model_file_flags,
    removal_options,
    with_model_file,
)

STDIO = "-"


@click.command("i")
@click.argument("input", metavar="INPUT")
@click.argument("output", metavar="OUTPUT")
@removal_options
@model_file_flags
@click.pass_context
def i_command(ctx: click.Context, /, input: str, output: str, **params: Any) -> None:
    """Remove the background of one image. INPUT or OUTPUT may be - for stdin/stdout."""
    settings = with_model_file(get_settings(ctx), params)
    given = collect(params)
    with reporting(ctx):
        fmt = output_format(output, given.get("format"), settings.output_format)
        remover = build_remover(settings, given)
        if input == STDIO:
            result = remover.process(sys.stdin.buffer.read(), fmt, source="<stdin>")
        else:
            result = remover.process(Path(input), fmt, source=input)
        if output == STDIO:
            sys.stdout.buffer.write(result)
            sys.stdout.buffer.flush()
        else:
            target = Path(output)
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target, result, like=None if input == STDIO else Path(input))
