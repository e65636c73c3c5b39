"""Settings turned into engine arguments, for the edges that run the engine (CLI, worker).

Kept apart from `settings.config` so that the watcher, which never runs the engine, does
not import numpy and ONNX Runtime.
"""

from __future__ import annotations

from cutout import store
from cutout.images import EncodeOptions
from cutout.matting import MattingOptions
from cutout.models import get_model
from cutout.pipeline import RemovalOptions
from cutout.session import Session, default_threads, open_session
from cutout.specs import parse_background
from settings.config import Settings


def removal_options(settings: Settings) -> RemovalOptions:
    """The options every job starts from; a job or the command line overrides some."""
    return RemovalOptions(
        background=parse_background(settings.background),
        only_mask=settings.only_mask,
        crop=settings.crop,
        crop_margin=settings.crop_margin,
        refine=settings.refine,
        matting=MattingOptions(
            foreground_threshold=settings.matting_fg_threshold,
            background_threshold=settings.matting_bg_threshold,
            erode_size=settings.matting_erode_size,
        ),
        post_process_mask=settings.post_process_mask,
        exact_colours=settings.exact_colours,
        blur_radius=settings.blur_radius,
        max_pixels=settings.max_pixels,
        encode=EncodeOptions(
            png_compress_level=settings.png_compress_level,
            webp_quality=settings.webp_quality,
            jpeg_quality=settings.jpeg_quality,
        ),
    )


def model_session(
    settings: Settings, model: str | None = None, *, processes: int = 1, progress: bool = True
) -> Session:
    """Ensure the model file (fetching it when allowed) and open its session."""
    spec = get_model(model or settings.model)
    path = store.ensure(
        spec,
        settings.model_home,
        model_path=settings.model_path,
        auto_pull=settings.model_auto_pull,
        mirror=settings.model_mirror,
        progress=progress,
    )
    threads = settings.threads or default_threads(processes)
    return open_session(spec, path, providers=settings.provider_list, threads=threads)
