"""The removal options shared by `cutout i` and `cutout p`, merged over the settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from cutout import store
from cutout.images import EncodeOptions
from cutout.models import MODELS, get_model
from cutout.pipeline import RemovalOptions, Remover
from cutout.session import open_session
from cutout.specs import BACKGROUND_HELP, FORMATS, parse_background
from settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class CliOptions:
    model: str | None
    bg: str | None
    only_mask: bool | None
    crop: bool | None
    crop_margin: int | None
    refine: str | None
    post_process_mask: bool | None
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
            type=click.Choice(["none"]),
            help="Edge refinement; none gives exactly rembg's mask.",
        ),
        click.option(
            "-ppm",
            "--post-process-mask",
            is_flag=True,
            default=None,
            help="rembg's mask post-processing (smoother, binary edges).",
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


def _pick(value: Any, fallback: Any) -> Any:
    return fallback if value is None else value


def build_remover(settings: Settings, cli: CliOptions) -> Remover:
    """Load the model and bind the options: CLI values over settings over defaults."""
    spec = get_model(_pick(cli.model, settings.model))
    path = store.ensure(
        spec,
        settings.model_home,
        model_path=settings.model_path,
        auto_pull=settings.model_auto_pull,
        mirror=settings.model_mirror,
    )
    session = open_session(spec, path, providers=settings.provider_list, threads=settings.threads)
    options = RemovalOptions(
        background=parse_background(_pick(cli.bg, settings.background)),
        only_mask=_pick(cli.only_mask, settings.only_mask),
        crop=_pick(cli.crop, settings.crop),
        crop_margin=_pick(cli.crop_margin, settings.crop_margin),
        refine=_pick(cli.refine, settings.refine),
        post_process_mask=_pick(cli.post_process_mask, settings.post_process_mask),
        blur_radius=settings.blur_radius,
        max_pixels=settings.max_pixels,
        encode=EncodeOptions(
            png_compress_level=settings.png_compress_level,
            webp_quality=settings.webp_quality,
            jpeg_quality=settings.jpeg_quality,
        ),
    )
    return Remover(session, options)
