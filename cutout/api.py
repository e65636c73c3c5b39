"""The public Python API, shaped like rembg's: `new_session()` and `remove()`."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cutout import store
from cutout.errors import ConfigError
from cutout.images import ImageInput
from cutout.models import default_home, get_model, own_model
from cutout.options import Background, colour_spec, merged, option, parse_format
from cutout.pipeline import Remover
from cutout.session import Session, open_session

# rembg's names for a user's own file of a family (`new_session("dis_custom", model_path=...)`).
REMBG_CUSTOM = {"u2net_custom": "u2net", "dis_custom": "isnet"}


def new_session(
    model_name: str | None = None,
    *,
    model: str = "u2net",
    model_home: str | os.PathLike[str] | None = None,
    model_path: str | os.PathLike[str] | None = None,
    family: str | None = None,
    providers: Sequence[str] | None = None,
    threads: int = 0,
    auto_pull: bool = True,
    mirror: str | None = None,
    sess_opts: Any = None,
    precision: str = "fp32",
) -> Session:
    """A loaded model, cached per process: call it once and pass it to every `remove()`.

    `model_name` (rembg's positional name) or `model`: a registry name. `model_path`: your
    own ONNX file instead, used as given; `family` (u2net, isnet, birefnet) says how to feed
    it, else the named model's row does. rembg's `u2net_custom` and `dis_custom` name the
    family of a `model_path`. `model_home` defaults to `$U2NET_HOME`, else `~/.u2net`, as
    rembg's cache does. rembg's `sess_opts` lends its intra-op thread count, when it sets one.
    `precision`: fp32 (the model as published), bf16 or int8 (cutout.options.PRECISION_HELP;
    built from the fp32 file on first use, refused where the mask moves too much).
    """
    option("precision").check(precision)
    name = model_name or model
    if name in REMBG_CUSTOM:
        if model_path is None:
            raise ConfigError(f"{name} needs model_path, the ONNX file to use")
        family, name = family or REMBG_CUSTOM[name], "u2net"
    threads = threads or int(getattr(sess_opts, "intra_op_num_threads", 0) or 0)
    if model_path is not None:
        own = Path(model_path).expanduser()
        spec = own_model(own.name, family, like=name)
        path = store.ensure(spec, Path(), model_path=own)
        return open_session(spec, path, providers=providers, threads=threads, precision=precision)
    if family is not None:
        raise ConfigError("family names how to feed your own file: give model_path too")
    spec = get_model(name)
    home = Path(model_home).expanduser() if model_home is not None else default_home()
    path = store.ensure(spec, home, auto_pull=auto_pull, mirror=mirror)
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
    decontaminate: bool = False,
    exact_colours: bool = False,
    blur_radius: float = 20.0,
    format: str = "png",
    png_compress_level: int = 2,
    webp_quality: int = 90,
    jpeg_quality: int = 92,
    max_pixels: int = 80_000_000,
    alpha_matting: bool | None = None,
    alpha_matting_foreground_threshold: int | None = None,
    alpha_matting_background_threshold: int | None = None,
    alpha_matting_erode_size: int | None = None,
    bgcolor: tuple[int, int, int, int] | None = None,
    force_return_bytes: bool = False,
) -> bytes | Image.Image | np.ndarray[Any, Any]:
    """Remove the background of one image; the keywords are cutout.options' (the same
    defaults, checked by the test of every surface), and rembg's (`alpha_matting`,
    `alpha_matting_*_threshold`, `alpha_matting_erode_size`, `bgcolor`) mapped onto them.

    The result has the input's kind: bytes in (or a file path, or a binary file open for
    reading) -> encoded bytes out (`format`: png, webp or jpg); a PIL image in -> a PIL
    image out; a numpy array in -> a numpy array out; `force_return_bytes`: bytes always.
    """
    given = dict(locals())
    rembg_given = {name: given.pop(name) for name in REMBG_KEYWORDS}
    for name in ("data", "session", "format", "force_return_bytes"):
        del given[name]
    given.update(_from_rembg(rembg_given, given))
    remover = Remover(session or new_session(), merged(given))
    if force_return_bytes or isinstance(data, bytes | str | os.PathLike) or hasattr(data, "read"):
        return remover.process(data, parse_format(format))
    result = remover.cut_out(remover.decode(data))
    if isinstance(data, np.ndarray):
        return np.asarray(result)
    return result


# rembg's keywords of remove(), each a function of its value to (our keyword, our value);
# None: it asks for nothing (rembg's alpha_matting=False).
REMBG_KEYWORDS: dict[str, Callable[[Any], tuple[str, Any] | None]] = {
    "alpha_matting": lambda on: ("refine", "matting") if on else None,
    "alpha_matting_foreground_threshold": lambda v: ("matting_fg_threshold", v),
    "alpha_matting_background_threshold": lambda v: ("matting_bg_threshold", v),
    "alpha_matting_erode_size": lambda v: ("matting_erode_size", v),
    "bgcolor": lambda rgba: ("background", colour_spec(rgba)),
}


def _from_rembg(rembg_given: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    """Our keywords for the rembg keywords given; one that contradicts a keyword of ours
    given too is an error, never a silent choice."""
    mapped: dict[str, Any] = {}
    for alias, value in rembg_given.items():
        pair = REMBG_KEYWORDS[alias](value) if value is not None else None
        if pair is None:
            continue
        name, translated = pair
        if ours[name] not in (option(name).default, translated):
            raise ConfigError(f"{alias}={value!r} contradicts {name}={ours[name]!r}: give one")
        mapped[name] = translated
    return mapped
