"""The public Python API, shaped like rembg's: `new_session()` and `remove()`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from cutout import store
from cutout.images import ImageInput
from cutout.models import get_model
from cutout.pipeline import DEFAULT_MAX_PIXELS, RemovalOptions, Remover
from cutout.session import Session, open_session
from cutout.specs import Background, parse_background, parse_format


def new_session(
    model: str = "u2net",
    *,
    model_home: str | os.PathLike[str] | None = None,
    model_path: str | os.PathLike[str] | None = None,
    providers: Sequence[str] | None = None,
    threads: int = 0,
    auto_pull: bool = True,
    mirror: str | None = None,
) -> Session:
    """A loaded model, cached per process: call it once and pass it to every `remove()`.

    `model_home` defaults to `$U2NET_HOME`, else `~/.u2net`, as rembg's cache does.
    """
    from settings.config import default_model_home  # the one module that reads env vars

    spec = get_model(model)
    home = Path(model_home).expanduser() if model_home is not None else default_model_home()
    path = store.ensure(
        spec,
        home,
        model_path=Path(model_path) if model_path is not None else None,
        auto_pull=auto_pull,
        mirror=mirror,
    )
    return open_session(spec, path, providers=providers, threads=threads)


def remove(
    data: ImageInput,
    *,
    session: Session | None = None,
    background: str | Background = "transparent",
    only_mask: bool = False,
    crop: bool = False,
    crop_margin: int = 10,
    post_process_mask: bool = False,
    exact_colours: bool = False,
    refine: str = "none",
    blur_radius: float = 20.0,
    format: str = "png",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> bytes | Image.Image | np.ndarray:
    """Remove the background of one image.

    The result has the input's kind: bytes in (or a file path, or a binary file open for
    reading) -> encoded bytes out (`format`: png, webp or jpg); a PIL image in -> a PIL
    image out; a numpy array in -> a numpy array out.
    """
    options = RemovalOptions(
        background=parse_background(background),
        only_mask=only_mask,
        crop=crop,
        crop_margin=crop_margin,
        post_process_mask=post_process_mask,
        exact_colours=exact_colours,
        refine=refine,
        blur_radius=blur_radius,
        max_pixels=max_pixels,
    )
    remover = Remover(session or new_session(), options)
    if isinstance(data, bytes | str | os.PathLike) or hasattr(data, "read"):
        return remover.process(data, parse_format(format))
    result = remover.cut_out(remover.decode(data))
    if isinstance(data, np.ndarray):
        return np.asarray(result)
    return result
