"""The public Python API, shaped like rembg's: `new_session()` and `remove()`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cutout import store
from cutout.images import ImageInput
from cutout.models import default_home, get_model
from cutout.options import Background, merged, option, parse_format
from cutout.pipeline import Remover
from cutout.session import Session, open_session


def new_session(
    model: str = "u2net",
    *,
    model_home: str | os.PathLike[str] | None = None,
    model_path: str | os.PathLike[str] | None = None,
    providers: Sequence[str] | None = None,
    threads: int = 0,
    auto_pull: bool = True,
    mirror: str | None = None,
    precision: str = "fp32",
) -> Session:
    """A loaded model, cached per process: call it once and pass it to every `remove()`.

    `model_home` defaults to `$U2NET_HOME`, else `~/.u2net`, as rembg's cache does.
    `precision`: fp32 (the model as published), bf16 or int8 (cutout.options.PRECISION_HELP;
    built from the fp32 file on first use, refused where the mask moves too much).
    """
    option("precision").check(precision)
    spec = get_model(model)
    home = Path(model_home).expanduser() if model_home is not None else default_home()
    path = store.ensure(
        spec,
        home,
        model_path=Path(model_path) if model_path is not None else None,
        auto_pull=auto_pull,
        mirror=mirror,
    )
    return open_session(spec, path, providers=providers, threads=threads, precision=precision)


def remove(
    data: ImageInput,
    *,
    session: Session | None = None,
    background: str | Background = "transparent",
    only_mask: bool = False,
    crop: bool = False,
    crop_margin: int = 10,
    refine: str = "none",
    matting_fg_threshold: int = 240,
    matting_bg_threshold: int = 10,
    matting_erode_size: int = 10,
    post_process_mask: bool = False,
    exact_colours: bool = False,
    blur_radius: float = 20.0,
    format: str = "png",
    png_compress_level: int = 2,
    webp_quality: int = 90,
    jpeg_quality: int = 92,
    max_pixels: int = 80_000_000,
) -> bytes | Image.Image | np.ndarray[Any, Any]:
    """Remove the background of one image; the keywords are cutout.options' (the same
    defaults, checked by the test of every surface).

    The result has the input's kind: bytes in (or a file path, or a binary file open for
    reading) -> encoded bytes out (`format`: png, webp or jpg); a PIL image in -> a PIL
    image out; a numpy array in -> a numpy array out.
    """
    given = dict(locals())
    for name in ("data", "session", "format"):
        del given[name]
    remover = Remover(session or new_session(), merged(given))
    if isinstance(data, bytes | str | os.PathLike) or hasattr(data, "read"):
        return remover.process(data, parse_format(format))
    result = remover.cut_out(remover.decode(data))
    if isinstance(data, np.ndarray):
        return np.asarray(result)
    return result
