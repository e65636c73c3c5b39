"""cutout: background removal with U^2-Net on ONNX Runtime.

    from cutout import new_session, remove
    session = new_session("u2net")
    png_bytes = remove(open("photo.jpg", "rb").read(), session=session)

Names are imported lazily so that light modules (`cutout.models`, `cutout.options`) can be
used without loading numpy and ONNX Runtime.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cutout.api import new_session, remove
    from cutout.errors import CutoutError, ImageError, ModelError
    from cutout.models import MODELS, get_model
    from cutout.options import Background, RemovalOptions, parse_background
    from cutout.pipeline import Remover
    from cutout.session import Session

_EXPORTS = {
    "new_session": "cutout.api",
    "remove": "cutout.api",
    "CutoutError": "cutout.errors",
    "ImageError": "cutout.errors",
    "ModelError": "cutout.errors",
    "MODELS": "cutout.models",
    "get_model": "cutout.models",
    "RemovalOptions": "cutout.options",
    "Remover": "cutout.pipeline",
    "Session": "cutout.session",
    "Background": "cutout.options",
    "parse_background": "cutout.options",
}

__all__ = [
    "MODELS",
    "Background",
    "CutoutError",
    "ImageError",
    "ModelError",
    "RemovalOptions",
    "Remover",
    "Session",
    "get_model",
    "new_session",
    "parse_background",
    "remove",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cutout' has no attribute {name!r}")
    return getattr(import_module(module), name)
