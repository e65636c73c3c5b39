"""The form fields of `POST /api/remove` and `POST /api/jobs`: every option a job may set,
made from its one declaration (cutout.options.JOB_OPTIONS) with its help and limits, and
rembg's names for those rembg has (`rembg s`), so that a rembg client changes only the host
and the port. /docs lists them all."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from fastapi import UploadFile
from pydantic import BaseModel, ConfigDict, Field, create_model

from cutout.errors import CutoutError
from cutout.options import JOB_OPTIONS, Option, colour_spec, option, parse_background

# rembg's form names that are one of our options each.
REMBG_ALIASES: dict[str, str] = {
    "om": "only_mask",
    "ppm": "post_process_mask",
    "af": "matting_fg_threshold",
    "ab": "matting_bg_threshold",
    "ae": "matting_erode_size",
    "dc": "decontaminate",
}
# And the two that are not: `a` turns matting on, `bgc` is a colour as R,G,B[,A].
REMBG_MATTING_HELP = "rembg's alpha matting: true is refine=matting."
REMBG_COLOUR_HELP = (
    "rembg's background colour, R,G,B,A from 0 to 255 (A may be left out); "
    "taken from the query string too, as rembg does."
)
FILE_HELP = "The image: JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC/HEIF or AVIF."


class FieldError(CutoutError, ValueError):
    """A form field the gateway cannot take; the message names it."""


def _annotation(opt: Option) -> Any:
    kind: Any = Literal[opt.choices] if opt.choices else opt.type
    return kind | None


def form_model() -> type[BaseModel]:
    """The form as a pydantic model: `file` and every option, None where not given; any
    other field is refused, so that a misspelt option is not silently ignored."""
    fields: dict[str, Any] = {"file": (UploadFile, Field(description=FILE_HELP))}
    for opt in JOB_OPTIONS:
        fields[opt.name] = (_annotation(opt), Field(None, description=opt.help, **opt.bounds))
    for alias, name in REMBG_ALIASES.items():
        opt = option(name)
        help_ = f"rembg's name for {name}: {opt.help}"
        fields[alias] = (_annotation(opt), Field(None, description=help_, **opt.bounds))
    fields["a"] = (bool | None, Field(None, description=REMBG_MATTING_HELP))
    fields["bgc"] = (str | None, Field(None, description=REMBG_COLOUR_HELP))
    model: type[BaseModel] = create_model(
        "RemoveForm",
        __config__=ConfigDict(extra="forbid"),
        **fields,
    )
    return model


def job_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """The job's options by their flat names, from the form's values (None: not given, the
    workers' setting applies). rembg's names land on ours; the two may not disagree."""
    given = {o.name: values[o.name] for o in JOB_OPTIONS if values.get(o.name) is not None}
    for alias, name in REMBG_ALIASES.items():
        _merge(given, name, values.get(alias), alias)
    if values.get("a"):  # a=false is rembg's default: no matting, nothing to say
        _merge(given, "refine", "matting", "a")
    if values.get("bgc") is not None:
        _merge(given, "background", rembg_colour(values["bgc"]), "bgc")
    background = given.get("background")
    if background is not None:
        _check_background(background)
    return given


def _merge(given: dict[str, Any], name: str, value: Any, alias: str) -> None:
    if value is None:
        return
    if given.get(name, value) != value:
        raise FieldError(f"{alias}={value!r} and {name}={given[name]!r} disagree")
    given[name] = value


def rembg_colour(text: str) -> str:
    """rembg's `bgc` (`255,255,255,255`) as our colour spec (`#ffffffff`)."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (3, 4) or not all(0 <= v <= 255 for v in values):
        raise FieldError(f"bgc: {text!r} is not R,G,B or R,G,B,A with values from 0 to 255")
    return colour_spec(values)


def _check_background(spec: str) -> None:
    """A colour, transparent or blur: an image path would name a file on the workers'
    side, and a caller of the gateway has no business reading their folders."""
    try:
        kind = parse_background(spec, local=False).kind
    except CutoutError as exc:
        raise FieldError(f"background: {exc}") from None
    if kind == "image":
        raise FieldError(
            f"background: {spec!r} is not a colour; over HTTP a background is transparent, "
            "blur or a colour (#RRGGBB, #RRGGBBAA or a CSS name such as white)"
        )
