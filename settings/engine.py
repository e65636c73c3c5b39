"""Settings turned into engine arguments, for the edges that run the engine (CLI, worker).

Kept apart from `settings.config` so that the watcher, which never runs the engine, does
not import numpy and ONNX Runtime.
"""

from __future__ import annotations

from cutout import store
from cutout.models import get_model
from cutout.options import OPTIONS, RemovalOptions, merged
from cutout.session import Session, default_threads, open_session
from settings.config import Settings


def removal_options(settings: Settings) -> RemovalOptions:
    """The options every job starts from; a job or the command line overrides some."""
    return merged({o.name: getattr(settings, o.setting_name) for o in OPTIONS})


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
    return open_session(
        spec,
        path,
        providers=settings.provider_list,
        threads=threads,
        precision=precision or settings.precision,
    )
