"""Parsing of the user-facing option strings: background specs and output formats.

Kept free of numpy and ONNX Runtime so that settings validation (and the watcher) can use
it without loading the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import ImageColor

from cutout.errors import BackgroundSpecError, OutputFormatError

BackgroundKind = Literal["transparent", "color", "image", "blur"]
BACKGROUND_HELP = (
    "transparent, blur, a colour (#RRGGBB, #RRGGBBAA or a CSS name such as white) "
    "or the path of an image file"
)
FORMATS = ("png", "webp", "jpg")
_FORMAT_ALIASES = {"png": "png", "webp": "webp", "jpg": "jpg", "jpeg": "jpg"}


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


TRANSPARENT = Background("transparent")


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


RefineMode = Literal["none", "guided", "matting"]
REFINE_MODES: tuple[RefineMode, ...] = ("none", "guided", "matting")
REFINE_HELP = (
    "none (exactly rembg's mask), guided (edges snapped to the photo's and crisper, "
    "a few ms) or matting (rembg's alpha matting, slow; needs cutout-queue[matting])"
)
