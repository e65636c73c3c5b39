"""`celery -A worker worker` (ARCHITECTURE.md) finds the app, and importing `worker` alone
(as the watcher and the CLI do) builds none."""

from __future__ import annotations

import subprocess
import sys

from celery.app.utils import find_app


def test_celery_finds_the_app_by_the_package_name() -> None:
    from worker.app import app

    assert find_app("worker") is app
    assert find_app("worker.app") is app


def test_importing_the_package_builds_no_app() -> None:
    code = "import sys, worker, worker.client; print('worker.app' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
