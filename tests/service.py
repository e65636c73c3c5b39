"""A real Celery worker process on a real Redis, for the queue tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from settings import Settings
from tests.processes import spawn
from tests.redis_server import free_port


@dataclass
class Worker:
    """A `cutout worker` process and the settings it was started with."""

    settings: Settings
    env: dict[str, str]
    log: Path
    hostname: str
    process: subprocess.Popen[bytes] | None = None
    folders: dict[str, Path] = field(default_factory=dict)

    def start(self, concurrency: int = 2, timeout: float = 60) -> None:
        with self.log.open("ab") as log:
            self.process = spawn(
                [
                    sys.executable,
                    "-m",
                    "cutout_cli",
                    "worker",
                    "-c",
                    str(concurrency),
                    "-n",
                    self.hostname,
                    "-l",
                    "INFO",
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while " ready." not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def children(self) -> list[int]:
        """PIDs of the pool processes."""
        assert self.process is not None
        pid = self.process.pid
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(p) for p in text.split()]

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # warm shutdown: finish, then exit
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def make_worker(root: Path, redis_url: str, model_home: Path, **overrides: str) -> Worker:
    folders = {name: root / name for name in ("inbox", "outbox", "failed", "done")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    values = {
        "CUTOUT_BROKER_URL": redis_url,
        "CUTOUT_RESULT_BACKEND": redis_url,
        "CUTOUT_INBOX": str(folders["inbox"]),
        "CUTOUT_OUTBOX": str(folders["outbox"]),
        "CUTOUT_FAILED_DIR": str(folders["failed"]),
        "CUTOUT_DONE_DIR": str(folders["done"]),
        "CUTOUT_MODEL": "u2netp",
        "CUTOUT_MODEL_HOME": str(model_home),
        "CUTOUT_MODEL_AUTO_PULL": "false",
        "CUTOUT_RETRY_BACKOFF": "0.2",
        "CUTOUT_WORKER_METRICS_PORT": str(free_port()),
        # A queue of its own: test sessions running side by side share one Redis.
        "CUTOUT_QUEUE": f"test-{uuid.uuid4().hex[:8]}",
        **overrides,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUTOUT_")} | values
    settings = Settings(**{k.removeprefix("CUTOUT_").lower(): v for k, v in values.items()})
    hostname = f"test-{uuid.uuid4().hex[:8]}@%h"
    return Worker(settings, env, root / "worker.log", hostname, folders=folders)


@contextmanager
def running_worker(
    root: Path, redis_url: str, model_home: Path, concurrency: int
) -> Iterator[Worker]:
    """A started `cutout worker` on folders under root, stopped on the way out."""
    worker = make_worker(root, redis_url, model_home)
    worker.start(concurrency=concurrency)
    try:
        yield worker
    finally:
        worker.stop()


@dataclass
class WatchFolders:
    """One watch folder set: inbox, outbox, failed, done; each test gets its own."""

    root: Path

    def __post_init__(self) -> None:
        for folder in (self.inbox, self.outbox, self.failed, self.done):
            folder.mkdir(parents=True, exist_ok=True)

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def failed(self) -> Path:
        return self.root / "failed"

    @property
    def done(self) -> Path:
        return self.root / "done"

    def env(self) -> dict[str, str]:
        return {
            "CUTOUT_INBOX": str(self.inbox),
            "CUTOUT_OUTBOX": str(self.outbox),
            "CUTOUT_FAILED_DIR": str(self.failed),
            "CUTOUT_DONE_DIR": str(self.done),
        }


@dataclass
class WatcherProcess:
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def start_watcher(worker: Worker, folders: WatchFolders, **overrides: str) -> WatcherProcess:
    env = (
        worker.env
        | folders.env()
        | {
            "CUTOUT_SETTLE_SECONDS": "0.4",
            "CUTOUT_RESCAN_SECONDS": "2",
            "CUTOUT_WATCHER_METRICS_PORT": "0",
            **overrides,
        }
    )
    log = folders.root / f"watcher-{uuid.uuid4().hex[:6]}.log"
    with log.open("wb") as out:
        process = spawn(
            [sys.executable, "-m", "cutout_cli", "watch"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    watcher = WatcherProcess(process, log)
    deadline = time.monotonic() + 30
    while "watching " not in watcher.text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"watcher did not start:\n{watcher.text()[-3000:]}")
        time.sleep(0.05)
    return watcher
