"""The removal options shared by `cutout i` and `cutout p`, merged over the settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import click

from cutout.matting import MattingOptions
from cutout.models import MODELS
from cutout.pipeline import Remover
from cutout.specs import BACKGROUND_HELP, FORMATS, REFINE_HELP, REFINE_MODES, parse_background
from settings import Settings, engine

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class CliOptions:
    model: str | None
    bg: str | None
    only_mask: bool | None
    crop: bool | None
    crop_margin: int | None
    refine: str | None
    matting_fg_threshold: int | None
    matting_bg_threshold: int | None
    matting_erode_size: int | None
    post_process_mask: bool | None
    exact_colours: bool | None
    format: str | None


def removal_options(func: F) -> F:
    """Decorate a command with the options of the contract; None means "from settings"."""
    decorators = [
        click.option(
            "-m", "--model", type=click.Choice(list(MODELS)), help="Model [CUTOUT_MODEL]."
        ),
        click.option("--bg", help=f"Background: {BACKGROUND_HELP} [CUTOUT_BACKGROUND]."),
        click.option(
            "--only-mask/--no-only-mask", default=None, help="Output the mask (greyscale)."
        ),
        click.option("--crop/--no-crop", default=None, help="Crop to the subject."),
        click.option("--crop-margin", type=click.IntRange(min=0), help="Crop margin in px."),
        click.option(
            "--refine",
            type=click.Choice(REFINE_MODES),
            help=f"Edge refinement: {REFINE_HELP} [CUTOUT_REFINE].",
        ),
        click.option(
            "--matting-fg-threshold",
            type=click.IntRange(0, 255),
            help="Matting: mask above this is surely subject [CUTOUT_MATTING_FG_THRESHOLD].",
        ),
        click.option(
            "--matting-bg-threshold",
            type=click.IntRange(0, 255),
            help="Matting: mask below this is surely background [CUTOUT_MATTING_BG_THRESHOLD].",
        ),
        click.option(
            "--matting-erode-size",
            type=click.IntRange(0, 1000),
            help="Matting: px the sure regions shrink by [CUTOUT_MATTING_ERODE_SIZE].",
        ),
        click.option(
            "-ppm",
            "--post-process-mask",
            is_flag=True,
            default=None,
            help="rembg's mask post-processing (smoother, binary edges).",
        ),
        click.option(
            "--exact-colours/--no-exact-colours",
            default=None,
            help="Keep every colour bit under soft edges [CUTOUT_EXACT_COLOURS].",
        ),
        click.option(
            "-f",
            "--format",
            type=click.Choice([*FORMATS, "jpeg"], case_sensitive=False),
            help="Output format (default: from the output name, else CUTOUT_OUTPUT_FORMAT).",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def collect(params: dict[str, Any]) -> CliOptions:
    return CliOptions(**{name: params.pop(name) for name in CliOptions.__dataclass_fields__})


def _matting(defaults: MattingOptions, cli: CliOptions) -> MattingOptions:
    given = {
        "foreground_threshold": cli.matting_fg_threshold,
        "background_threshold": cli.matting_bg_threshold,
        "erode_size": cli.matting_erode_size,
    }
    return replace(defaults, **{k: v for k, v in given.items() if v is not None})


def build_remover(settings: Settings, cli: CliOptions) -> Remover:
    """Load the model and bind the options: CLI values over settings over defaults."""
    overrides: dict[str, Any] = {
        name: getattr(cli, name)
        for name in (
            "only_mask",
            "crop",
            "crop_margin",
            "refine",
            "post_process_mask",
            "exact_colours",
        )
        if getattr(cli, name) is not None
    }
    if cli.bg is not None:
        overrides["background"] = parse_background(cli.bg)
    options = replace(engine.removal_options(settings), **overrides)
    options = replace(options, matting=_matting(options.matting, cli))
    return Remover(engine.model_session(settings, cli.model), options)
