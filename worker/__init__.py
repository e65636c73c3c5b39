"""The Celery side of cutout: `celery -A worker worker` (or `-A worker.app`) finds the app.

Celery looks for `worker.app`, then `worker.celery`; the first is the submodule, so the
second hands over the app, loaded only when asked: importing `worker` (the watcher, the
CLI) reads no settings and builds no app.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "celery":
        from worker.app import app

        return app
    raise AttributeError(f"module 'worker' has no attribute {name!r}")
