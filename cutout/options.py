"""THE declaration of the removal options: what a user may ask of one image.

Every surface takes its fields from here: the settings (`CUTOUT_<SETTING>`), the command
line of `cutout i`, `p`, `submit` and `report`, the `cutout.remove` task payload and
`remove()`'s keywords; `tests/unit/cli/test_option_surfaces.py` fails when one of them
lacks a field declared here or disagrees on its default or bounds.

An option has one flat name (`matting_fg_threshold`), used by every surface; the engine
takes them grouped in `RemovalOptions` (`matting.foreground_threshold`), whose defaults
are the options' defaults. Kept free of numpy and ONNX Runtime so that the settings, the
watcher and the payload validation use it without loading the engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from PIL import ImageColor

from cutout.errors import BackgroundSpecError, ConfigError, OutputFormatError
from cutout.models import MODELS

# --- the option strings: backgrounds, output formats, refine modes -----------------------

BackgroundKind = Literal["transparent", "color", "image", "blur"]
BACKGROUND_HELP = (
    "transparent, blur, a colour (#RRGGBB, #RRGGBBAA or a CSS name such as white) "
    "or the path of an image file"
)
FORMATS = ("png", "webp", "jpg")
_FORMAT_ALIASES = {"png": "png", "webp": "webp", "jpg": "jpg", "jpeg": "jpg"}
RefineMode = Literal["none", "guided", "matting"]
REFINE_MODES: tuple[RefineMode, ...] = ("none", "guided", "matting")
REFINE_HELP = (
    "none (exactly rembg's mask), guided (edges snapped to the photo's and crisper, "
    "a few ms) or matting (rembg's alpha matting, slow; needs cutout-queue[matting])"
)
PNG_MAX_LEVEL = 12  # libdeflate's levels (cutout.png)
Precision = Literal["fp32", "bf16", "int8"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16", "int8")
PRECISION_HELP = (
    "fp32 (the model as published: exactly rembg's mask), bf16 or int8 (faster, built from "
    "the fp32 file on first use, refused where the mask moves beyond its tolerance; "
    'need cutout-queue[fast]; README "Performance")'
)


@dataclass(frozen=True)
class Background:
    kind: BackgroundKind
    color: tuple[int, int, int, int] | None = None
    path: Path | None = None

    @property
    def is_opaque(self) -> bool:
        """Whether every output pixel is fully opaque whatever the mask is."""
        if self.kind == "color":
            return self.color is not None and self.color[3] == 255
        # An image background may itself carry alpha; compose reports that case.
        return self.kind in ("blur", "image")

    @property
    def spec(self) -> str:
        """The text that parses back to this background."""
        if self.kind == "color" and self.color is not None:
            return colour_spec(self.color)
        if self.kind == "image":
            return str(self.path)
        return self.kind


TRANSPARENT = Background("transparent")


def colour_spec(rgba: Sequence[int]) -> str:
    """`#rrggbbaa` for R, G, B[, A] from 0 to 255 (A, left out, is opaque): the form of a
    colour that rembg's RGBA tuples and `R,G,B,A` fields take on our side."""
    values = [int(v) for v in rgba]
    if len(values) == 3:
        values.append(255)
    return "#" + "".join(f"{v:02x}" for v in values)


def parse_background(spec: str | Background, *, local: bool = True) -> Background:
    """A background spec; `local`: an image path is the user's own (`~` expanded, the file
    must exist). A job's spec is not local: its path is only a name here, resolved and
    confined by the worker, so that parsing it touches no file."""
    if isinstance(spec, Background):
        return spec
    text = spec.strip()
    lowered = text.lower()
    if lowered in ("", "transparent", "none"):
        return TRANSPARENT
    if lowered == "blur":
        return Background("blur")
    try:
        rgba = ImageColor.getcolor(text, "RGBA")
    except ValueError:
        rgba = None
    if isinstance(rgba, tuple) and len(rgba) == 4:
        return Background("color", color=(rgba[0], rgba[1], rgba[2], rgba[3]))
    if text.startswith("#"):
        raise BackgroundSpecError(f"{text!r} is not a colour; accepted: {BACKGROUND_HELP}")
    if not local:
        return Background("image", path=Path(text))
    path = Path(text).expanduser()
    try:
        found = path.is_file()
    except OSError:  # a name too long, say: not a file either
        found = False
    if not found:
        raise BackgroundSpecError(
            f"{text!r} is neither a colour nor an existing image file; accepted: {BACKGROUND_HELP}"
        )
    return Background("image", path=path)


def parse_format(name: str) -> str:
    try:
        return _FORMAT_ALIASES[name.strip().lower().lstrip(".")]
    except KeyError:
        raise OutputFormatError(
            f"unknown output format {name!r}; accepted: {', '.join(FORMATS)}"
        ) from None


def format_for_path(path: str | Path) -> str | None:
    """The output format a file name asks for, or None when its extension names none."""
    suffix = Path(path).suffix.lower().lstrip(".")
    return _FORMAT_ALIASES.get(suffix)


# --- the engine's options, grouped ---------------------------------------------------------


@dataclass(frozen=True)
class MattingOptions:
    """rembg's `alpha_matting_*` arguments, with its defaults."""

    foreground_threshold: int = 240  # mask values above this are surely subject
    background_threshold: int = 10  # mask values below this are surely background
    erode_size: int = 10  # both sure regions shrink by this many px, widening the unknown

    def __post_init__(self) -> None:
        _check_group(self, "matting")


@dataclass(frozen=True)
class EncodeOptions:
    png_compress_level: int = 2  # libdeflate's; chosen with bench/ (README "Performance")
    webp_quality: int = 90
    jpeg_quality: int = 92

    def __post_init__(self) -> None:
        _check_group(self, "encode")


@dataclass(frozen=True)
class RemovalOptions:
    """What to make of one image; every field has the command line's default."""

    background: Background = TRANSPARENT
    only_mask: bool = False
    crop: bool = False
    crop_margin: int = 10
    refine: str = "none"  # REFINE_MODES
    matting: MattingOptions = field(default_factory=MattingOptions)
    post_process_mask: bool = False
    decontaminate: bool = False  # cutout.decontaminate
    exact_colours: bool = False  # compose.transparent
    blur_radius: float = 20.0
    max_pixels: int = 80_000_000
    encode: EncodeOptions = field(default_factory=EncodeOptions)

    def __post_init__(self) -> None:
        _check_group(self, "")


# --- the flat vocabulary every surface shares --------------------------------------------


@dataclass(frozen=True)
class Option:
    """One option as every surface names it.

    `place`: where it lands in RemovalOptions ("matting.foreground_threshold"); empty for
    those that are not the image's treatment but the job's (the model, its precision, the
    format).
    """

    name: str  # remove()'s keyword, the payload's key, the CLI's --name
    type: type
    help: str
    place: str = ""
    flags: tuple[str, ...] = ()  # the CLI's spelling, where it is not --name
    ge: float | None = None
    le: float | None = None
    gt: float | None = None
    choices: tuple[str, ...] = ()
    setting: str = ""  # CUTOUT_<SETTING>, where it is not the name
    per_job: bool = True  # a job's payload may set it
    default_: Any = None  # only for those without a place

    @property
    def setting_name(self) -> str:
        return self.setting or self.name

    @property
    def cli_flags(self) -> tuple[str, ...]:
        return self.flags or ("--" + self.name.replace("_", "-"),)

    @property
    def default(self) -> Any:
        return _flat_value(RemovalOptions(), self) if self.place else self.default_

    @property
    def bounds(self) -> dict[str, Any]:
        """The limits as pydantic's Field takes them."""
        given = {"ge": self.ge, "le": self.le, "gt": self.gt}
        return {k: v for k, v in given.items() if v is not None}

    def check(self, value: Any) -> None:
        """Raise ConfigError, naming the option, unless `value` is within its limits."""
        if self.choices and value not in self.choices:
            raise ConfigError(f"{self.name}: {value!r}; accepted: {', '.join(self.choices)}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            return
        low = self.ge if self.ge is not None else self.gt
        if (
            (self.ge is not None and value < self.ge)
            or (self.gt is not None and value <= self.gt)
            or (self.le is not None and value > self.le)
        ):
            above = f"above {self.gt:g}" if self.gt is not None else f"from {low:g}"
            upto = f" to {self.le:g}" if self.le is not None else ""
            raise ConfigError(f"{self.name}: {value!r} is out of range; accepted: {above}{upto}")


MAX_CROP_MARGIN = 10_000
MAX_BLUR_RADIUS = 1_000.0  # px: past this a blur is a flat colour, and Pillow's cost grows

OPTIONS: tuple[Option, ...] = (
    Option(
        "model",
        str,
        f"Model: {', '.join(MODELS)}.",
        flags=("-m", "--model"),
        choices=tuple(MODELS),
        default_="u2net",
    ),
    # Like the model, a choice of session, not of the image's treatment: no place.
    Option(
        "precision",
        str,
        f"Model precision: {PRECISION_HELP}.",
        choices=PRECISIONS,
        default_="fp32",
    ),
    Option(
        "background",
        str,
        f"Background: {BACKGROUND_HELP}.",
        place="background",
        flags=("--bg",),
    ),
    Option(
        "format",
        str,
        f"Output format: {', '.join(FORMATS)} (jpeg is jpg).",
        flags=("-f", "--format"),
        choices=(*FORMATS, "jpeg"),
        setting="output_format",
        default_="png",
    ),
    Option("only_mask", bool, "Output the mask (greyscale) instead of the cut-out.", "only_mask"),
    Option("crop", bool, "Crop the output to the subject's bounding box.", "crop"),
    Option(
        "crop_margin",
        int,
        "Margin (px) kept around the subject on crop.",
        "crop_margin",
        ge=0,
        le=MAX_CROP_MARGIN,
    ),
    Option("refine", str, f"Edge refinement: {REFINE_HELP}.", "refine", choices=REFINE_MODES),
    Option(
        "matting_fg_threshold",
        int,
        "Matting: mask values above this are surely subject.",
        "matting.foreground_threshold",
        ge=0,
        le=255,
    ),
    Option(
        "matting_bg_threshold",
        int,
        "Matting: mask values below this are surely background.",
        "matting.background_threshold",
        ge=0,
        le=255,
    ),
    Option(
        "matting_erode_size",
        int,
        "Matting: px the sure regions shrink by (a wider unknown band).",
        "matting.erode_size",
        ge=0,
        le=1000,
    ),
    Option(
        "post_process_mask",
        bool,
        "rembg's mask post-processing (morphological opening + blur + threshold).",
        "post_process_mask",
        flags=("-ppm", "--post-process-mask"),
    ),
    Option(
        "decontaminate",
        bool,
        "Replace the background colour mixed into soft edges by the subject's own "
        "(rembg's -dc; not with --refine matting, which does it already).",
        "decontaminate",
        flags=("-dc", "--decontaminate"),
    ),
    Option(
        "exact_colours",
        bool,
        "Keep every colour bit under soft edges; by default they keep the bits that can show "
        "once composited (within one level; smaller files).",
        "exact_colours",
    ),
    Option(
        "blur_radius",
        float,
        "Gaussian radius (px) of the blur background.",
        "blur_radius",
        gt=0,
        le=MAX_BLUR_RADIUS,
    ),
    Option(
        "png_compress_level",
        int,
        "Deflate level of PNG outputs (libdeflate: 0 stored, 1 fastest ... 12 smallest).",
        "encode.png_compress_level",
        ge=0,
        le=PNG_MAX_LEVEL,
    ),
    Option(
        "webp_quality",
        int,
        "Quality of opaque WebP outputs; with alpha WebP is lossless.",
        "encode.webp_quality",
        ge=1,
        le=100,
    ),
    Option("jpeg_quality", int, "Quality of JPEG outputs.", "encode.jpeg_quality", ge=1, le=100),
    # The operator's guard against decompression bombs: a job may not raise it.
    Option(
        "max_pixels",
        int,
        "Largest input (width x height) decoded; checked before decoding.",
        "max_pixels",
        gt=0,
        per_job=False,
    ),
)
BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}
JOB_OPTIONS: tuple[Option, ...] = tuple(o for o in OPTIONS if o.per_job)


def option(name: str) -> Option:
    return BY_NAME[name]


def _flat_value(options: RemovalOptions, opt: Option) -> Any:
    value: Any = options
    for part in opt.place.split("."):
        value = getattr(value, part)
    return value.spec if isinstance(value, Background) else value


def flat(options: RemovalOptions) -> dict[str, Any]:
    """The options by their flat names (a background as its spec text)."""
    return {o.name: _flat_value(options, o) for o in OPTIONS if o.place}


def merged(
    given: Mapping[str, Any], base: RemovalOptions | None = None, *, local: bool = True
) -> RemovalOptions:
    """`base` with the flat values given (None: not given) put in their places.

    `local`: a background image path is the caller's own file (see parse_background).
    Names without a place (model, precision, format) are the caller's to use, and ignored here.
    """
    options = base or RemovalOptions()
    groups: dict[str, dict[str, Any]] = {}
    for name, value in given.items():
        opt = BY_NAME.get(name)
        if opt is None:
            raise ConfigError(f"unknown option {name!r}; known: {', '.join(BY_NAME)}")
        if value is None or not opt.place:
            continue
        group, _, leaf = opt.place.rpartition(".")
        groups.setdefault(group, {})[leaf] = (
            parse_background(value, local=local) if name == "background" else value
        )
    top = groups.pop("", {})
    for group, values in groups.items():
        top[group] = replace(getattr(options, group), **values)
    return replace(options, **top)


def _check_group(group: object, prefix: str) -> None:
    """Each field of a group within its option's limits: one check for every surface
    (the settings and the payload check first, for a message in their own words)."""
    by_place = {o.place: o for o in OPTIONS if o.place}
    for f in fields(group):  # type: ignore[arg-type]
        opt = by_place.get(f"{prefix}.{f.name}" if prefix else f.name)
        if opt is not None:
            opt.check(getattr(group, f.name))
