"""Settings turned into engine arguments, for the edges that run the engine (CLI, worker).

Kept apart from `settings.config` so that the watcher, which never runs the engine, does
not import numpy and ONNX Runtime.
"""

from __future__ import annotations

from pathlib import Path

from cutout import store
from cutout.models import ModelSpec, get_model, own_model
from cutout.options import OPTIONS, RemovalOptions, merged
from cutout.session import Session, default_threads, open_session
from settings.config import Settings


def removal_options(settings: Settings) -> RemovalOptions:
    """The options every job starts from; a job or the command line overrides some."""
    return merged({o.name: getattr(settings, o.setting_name) for o in OPTIONS})


def model_file(
    settings: Settings, model: str | None = None, *, progress: bool = True
) -> tuple[ModelSpec, Path]:
    """The row and the usable file of `model` (default: CUTOUT_MODEL), fetched when allowed.

    CUTOUT_MODEL's name stands for CUTOUT_MODEL_PATH's file when one is set; any other name
    is its registry row, from the model folder, checked by its md5.
    """
    name = model or settings.model
    if settings.model_path is not None and name == settings.model:
        own = settings.model_path
        spec = own_model(own.name, settings.model_family, like=settings.model)
        return spec, store.ensure(spec, settings.model_home, model_path=own)
    spec = get_model(name)
    path = store.ensure(
        spec,
        settings.model_home,
        auto_pull=settings.model_auto_pull,
        mirror=settings.model_mirror,
        progress=progress,
    )
    return spec, path


def model_session(
    settings: Settings,
    model: str | None = None,
    *,
    precision: str | None = None,
    processes: int = 1,
    progress: bool = True,
) -> Session:
    """Ensure the model file (fetching it when allowed) and open its session; `model` and
    `precision`, where given, over the settings'."""
    spec, path = model_file(settings, model, progress=progress)
    threads = settings.threads or default_threads(processes)
    return open_session(
        spec,
        path,
        providers=settings.provider_list,
        threads=threads,
        precision=precision or settings.precision,
    )
