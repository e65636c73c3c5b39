"""A Redis restart loses no job: killed or stopped while jobs run, and started again with
its AOF, every job sent directly by another app and every watched file ends once, with its
output, without anyone sending it again; no record stays "started".

Real parts throughout: a private redis-server killed (SIGKILL) or stopped (SIGTERM), a
`cutout worker` process, a `cutout watch` process, jobs sent with plain Celery.
"""

from __future__ import annotations

import io
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
from celery import Celery
from PIL import Image

from tests.conftest import CAT
from tests.redis_server import RedisProcess
from tests.service import WatchFolders, Worker, make_worker, start_watcher
from worker.jobs import TASK_NAME
from worker.status import StatusStore

JOBS = 6
FILES = 6


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisProcess]:
    redis_server = RedisProcess(tmp_path / "redis")
    yield redis_server
    redis_server.stop()


def big_photo() -> bytes:
    """The cat at 2,400 px with noise on top: about a second of work per job here, so that
    Redis goes away while jobs run."""
    with Image.open(CAT) as cat:
        photo = np.asarray(cat.convert("RGB").resize((2400, 1596)), dtype=np.int16)
    noisy = photo + np.random.default_rng(1).integers(-12, 12, photo.shape)
    buffer = io.BytesIO()
    Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def states(store: StatusStore) -> dict[str, str]:
    return {record.id: record.state for record in store.recent(1000)}


def wait_for(what: str, check: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.parametrize("how", ["killed", "stopped"])
def test_a_redis_restart_loses_no_job(
    tmp_path: Path, server: RedisProcess, model_path: Path, how: str
) -> None:
    worker: Worker = make_worker(
        tmp_path / "service",
        f"{server.url}/0",
        model_path.parent,
        CUTOUT_QUEUE="cutout",
        CUTOUT_ALLOWED_ROOTS=str(tmp_path),
    )
    folders = WatchFolders(tmp_path / "watch")
    photo = big_photo()
    (worker.folders["inbox"] / "direct.jpg").write_bytes(photo)
    worker.start(concurrency=2)
    watcher = start_watcher(worker, folders)
    store = StatusStore.from_url(f"{server.url}/0", prefix="cutout", ttl=3600)
    try:
        # Another app, with plain Celery: no import of this project.
        app = Celery(broker=f"{server.url}/0")
        app.conf.update(task_serializer="json", accept_content=["json"])
        direct = [
            app.send_task(
                TASK_NAME,
                kwargs={"input_path": "direct.jpg", "output_path": f"direct/{i}.png"},
                queue="cutout",
            ).id
            for i in range(JOBS)
        ]
        for i in range(FILES):
            (folders.inbox / f"{i}.jpg").write_bytes(photo)
        wait_for("jobs running", lambda: "started" in states(store).values(), 120)

        if how == "killed":
            server.process.send_signal(signal.SIGKILL)
        server.stop()  # SIGTERM (AOF flushed); after a kill it only reaps the process
        server.start()  # the same port, the same AOF
        back = time.monotonic()

        def all_ended() -> bool:
            found = states(store)
            ended = len(list(folders.done.glob("*.jpg"))) + len(list(folders.failed.glob("*.jpg")))
            return ended == FILES and all(found.get(j) in ("succeeded", "failed") for j in direct)

        wait_for("every job to end", all_ended, 90)
        took = time.monotonic() - back
    finally:
        watcher.stop()
        worker.stop()
        store.close()
    found = states(
        store_again := StatusStore.from_url(f"{server.url}/0", prefix="cutout", ttl=3600)
    )
    store_again.close()
    assert [found[job_id] for job_id in direct] == ["succeeded"] * JOBS
    assert sorted(p.name for p in (worker.folders["outbox"] / "direct").iterdir()) == sorted(
        f"{i}.png" for i in range(JOBS)
    )
    assert sorted(p.name for p in folders.done.glob("*.jpg")) == sorted(
        f"{i}.jpg" for i in range(FILES)
    )
    assert sorted(p.name for p in folders.outbox.glob("*.png")) == sorted(
        f"{i}.png" for i in range(FILES)
    )
    assert "started" not in found.values() and "queued" not in found.values()
    assert took < 60, f"{took:.0f} s after Redis came back"
    with redis.Redis.from_url(f"{server.url}/0") as client:
        assert client.hlen("unacked") == 0 and client.llen("cutout") == 0
