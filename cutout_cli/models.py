"""`cutout models`: list, fetch and locate the model files."""

from __future__ import annotations

import json
from typing import Any

import click

from cutout import store
from cutout.models import MODELS, get_model
from cutout_cli.common import echo_err, get_settings, reporting


@click.group(name="models")
def models() -> None:
    """List, fetch and locate model files (folder: CUTOUT_MODEL_HOME)."""


@models.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.pass_context
def list_models(ctx: click.Context, as_json: bool) -> None:
    """Show every known model and whether its file is present, absent or corrupt."""
    home = get_settings(ctx).model_home
    rows = [
        {
            "name": spec.name,
            "size_mb": round(spec.size / 1e6, 1) if spec.size is not None else None,
            "status": store.status(spec, home),
            "path": str(store.model_file(spec, home)),
            "description": spec.description,
        }
        for spec in MODELS.values()
    ]
    click.echo(json.dumps(rows, indent=2) if as_json else _table(rows))


def _table(rows: list[dict[str, Any]]) -> str:
    header = ("NAME", "SIZE", "STATUS", "PATH", "DESCRIPTION")
    cells = [header] + [
        (
            row["name"],
            "?" if row["size_mb"] is None else f"{row['size_mb']} MB",
            row["status"],
            row["path"],
            row["description"],
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells)
    return "\n".join(line.rstrip() for line in lines)


@models.command(name="pull")
@click.argument("names", nargs=-1)
@click.option("--force", is_flag=True, help="Fetch again even when the file is present and valid.")
@click.pass_context
def pull_models(ctx: click.Context, names: tuple[str, ...], force: bool) -> None:
    """Fetch the named models (default: CUTOUT_MODEL) into the model folder; print their paths."""
    settings = get_settings(ctx)
    home = settings.model_home
    with reporting(ctx):
        # Every name is checked before the first download, so a typo costs nothing.
        specs = [get_model(name) for name in names or (settings.model,)]
        for spec in specs:
            if not force and store.status(spec, home) == "present":
                echo_err(f"{spec.name}: already present and valid, not downloading")
                path = store.model_file(spec, home)
            else:
                path = store.pull(spec, home, mirror=settings.model_mirror, progress=True)
            click.echo(str(path))


@models.command(name="path")
@click.argument("name")
@click.pass_context
def model_path(ctx: click.Context, name: str) -> None:
    """Print where the model's file is, or would be once fetched."""
    home = get_settings(ctx).model_home
    with reporting(ctx):
        spec = get_model(name)
    click.echo(str(store.model_file(spec, home)))
