"""Soak: a burst and a trickle of files, some broken, some names dropped twice, while workers
are killed, the watcher is killed and restarted, and Redis is stopped and started again with
jobs from another app in flight. At the end every input has ended exactly once, with an
output of its own. `make soak` runs 500 files; CI runs SOAK_FILES (default 120)."""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from celery import Celery
from PIL import Image

from tests.conftest import CAT
from tests.imagefactory import png_claiming_size
from tests.redis_server import RedisProcess
from tests.service import WatcherProcess, WatchFolders, make_worker, start_watcher
from worker.jobs import TASK_NAME
from worker.status import StatusStore

pytestmark = [pytest.mark.soak, pytest.mark.timeout(1200)]

FILES = int(os.environ.get("SOAK_FILES", "120"))
PERSIST = os.environ.get("SOAK_REDIS_PERSISTENCE", "aof") == "aof"


QUEUE = "cutout"


def second(name: str, suffix: str) -> str:
    """The name the second drop of `name` ends under: `0/3.jpg` -> `0/3 (2).png`."""
    path = Path(name)
    return str(path.with_name(f"{path.stem} (2){suffix}"))


def broken(kind: str, good: bytes) -> bytes:
    return {
        "empty": b"",
        "truncated": good[: len(good) // 3],
        "text": b"this is not an image\n" * 20,
        "bomb": png_claiming_size(30_000, 30_000),
    }[kind]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis", appendonly=PERSIST)
    server.start()
    yield server
    server.stop()


def count_ended(folders: WatchFolders) -> int:
    ended = 0
    for folder in (folders.done, folders.failed):
        for _, _, names in os.walk(folder):
            ended += sum(1 for n in names if not n.endswith(".error.json"))
    return ended


class Soak:
    """The service under test and the files thrown at it."""

    def __init__(self, root: Path, redis_server: RedisProcess, model_home: Path) -> None:
        self.redis = redis_server
        self.worker = make_worker(
            root / "worker",
            f"{redis_server.url}/0",
            model_home,
            CUTOUT_ALLOWED_ROOTS=str(root),
            CUTOUT_TASK_SOFT_TIME_LIMIT="10",
            CUTOUT_TASK_TIME_LIMIT="15",  # a job stuck by a fault is sent again after 75 s
            CUTOUT_QUEUE=QUEUE,
        )
        self.folders = WatchFolders(root / "watch")
        with Image.open(CAT) as image:
            buffer = io.BytesIO()
            image.resize((120, 84)).save(buffer, "JPEG")
        self.good_bytes = buffer.getvalue()
        self.names = [f"{i // 100}/{i}.jpg" for i in range(FILES)]
        self.bad = set(self.names[7::20])  # 5%
        kinds = ["empty", "truncated", "text", "bomb"]
        self.inputs = {
            n: broken(kinds[i % 4], self.good_bytes) if n in self.bad else self.good_bytes
            for i, n in enumerate(self.names)
        }
        self.good = sorted(n for n in self.names if n not in self.bad)
        # Dropped again once their first drop has ended: cameras repeat names.
        self.repeats = self.good[: max(2, FILES // 40)]
        self.watcher: WatcherProcess | None = None
        # Jobs sent by another app with plain Celery, just before Redis goes away.
        self.direct_source = root / "direct" / "source.jpg"
        self.direct_source.parent.mkdir(parents=True)
        self.direct_source.write_bytes(self.good_bytes)
        self.direct: dict[str, Path] = {}

    def start(self) -> None:
        self.worker.start(concurrency=2)
        self.watcher = start_watcher(self.worker, self.folders, CUTOUT_RESCAN_SECONDS="3")

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        self.worker.stop()

    def drop(self, name: str) -> None:
        target = self.folders.inbox / name
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.part")  # renamed into place, as a copy tool
        partial.write_bytes(self.inputs[name])
        os.replace(partial, target)

    def drop_all(self) -> threading.Thread:
        """80% as one burst, the rest as a trickle during the faults."""
        burst = int(FILES * 0.8)
        for name in self.names[:burst]:
            self.drop(name)

        def trickle() -> None:
            for name in self.names[burst:]:
                self.drop(name)
                time.sleep(0.05)
            deadline = time.monotonic() + 600
            for name in self.repeats:
                while not (self.folders.done / name).exists() and time.monotonic() < deadline:
                    time.sleep(0.1)
                self.drop(name)

        thread = threading.Thread(target=trickle)
        thread.start()
        return thread

    def kill_workers(self) -> None:
        for pid in self.worker.children():
            os.kill(pid, signal.SIGKILL)

    def restart_watcher(self) -> None:
        assert self.watcher is not None
        self.watcher.stop(signal.SIGKILL)
        self.watcher = start_watcher(self.worker, self.folders, CUTOUT_RESCAN_SECONDS="3")

    def bounce_redis(self) -> None:
        app = Celery(broker=f"{self.redis.url}/0")
        app.conf.update(task_serializer="json", accept_content=["json"])
        for i in range(4):
            out = self.direct_source.parent / "out" / f"{i}.png"
            kwargs = {"input_path": str(self.direct_source), "output_path": str(out)}
            self.direct[app.send_task(TASK_NAME, kwargs=kwargs, queue=QUEUE).id] = out
        app.close()
        self.redis.stop()
        time.sleep(2)
        self.redis.start()

    def inject_faults(self, deadline: float) -> None:
        faults: list[tuple[float, Callable[[], None]]] = [
            (0.10, self.kill_workers),
            (0.25, self.restart_watcher),
            (0.40, self.kill_workers),
            (0.55, self.bounce_redis),
            (0.70, self.kill_workers),
        ]
        for share, fault in faults:
            while count_ended(self.folders) < share * FILES:
                assert time.monotonic() < deadline, f"stuck before the fault at {share:.0%}"
                time.sleep(0.05)
            fault()

    def outputs(self) -> list[str]:
        """The outputs under their final names. A worker killed while writing may leave its
        hidden `.<name>.<hex>.tmp` (README "Guarantees"): never under a final name."""
        outbox = self.folders.outbox
        files = [p.relative_to(outbox) for p in outbox.rglob("*") if p.is_file()]
        left = [f for f in files if f.name.startswith(".") and f.name.endswith(".tmp")]
        return sorted(f.as_posix() for f in files if f not in left)

    def expected_outputs(self) -> list[str]:
        again = [second(n, ".png") for n in self.repeats]
        return sorted([*(str(Path(n).with_suffix(".png")) for n in self.good), *again])

    def wait_for_the_end(self, deadline: float) -> None:
        total = FILES + len(self.repeats)
        expected = len(self.expected_outputs())
        while len(self.outputs()) < expected or count_ended(self.folders) < total:
            assert time.monotonic() < deadline, (
                f"not done: {len(self.outputs())}/{expected} outputs, "
                f"{count_ended(self.folders)}/{total} inputs ended"
            )
            time.sleep(0.5)

    def check_exactly_once(self) -> None:
        folders = self.folders
        # Every good input: exactly one output, of the right size, and the input in done.
        # A name dropped twice: two outputs, two archives, neither replaced.
        assert self.outputs() == self.expected_outputs()
        for output in self.expected_outputs():
            with Image.open(folders.outbox / output) as out:
                assert out.size == (120, 84), output
        for name in [*self.good, *(second(n, ".jpg") for n in self.repeats)]:
            assert (folders.done / name).read_bytes() == self.good_bytes, name
        # Every broken one: in failed, with its reason.
        for name in self.bad:
            assert (folders.failed / name).exists(), name
            assert "error" in (folders.failed / f"{name}.error.json").read_text()
        # No temp file, no claim, nothing left in the inbox, no job left in flight.
        assert not [p for p in folders.outbox.rglob(".*") if p.is_file()]
        assert not list((folders.inbox / ".cutout-claims").glob("*"))
        assert not [p for p in folders.inbox.rglob("*") if p.is_file() and p.name[0] != "."]
        with StatusStore.from_url(f"{self.redis.url}/0", prefix="cutout", ttl=3600) as store:
            stuck = [r for r in store.recent(limit=10 * FILES) if not r.done]
            direct = {job_id: store.get(job_id) for job_id in self.direct}
        assert not stuck, stuck[:3]
        if PERSIST:  # without persistence, jobs of other apps go with Redis's data (README)
            assert all(r is not None and r.state == "succeeded" for r in direct.values()), direct
            assert all(out.exists() for out in self.direct.values())


def test_nothing_is_lost_under_faults(
    tmp_path: Path, redis_server: RedisProcess, model_path: Path
) -> None:
    started = time.monotonic()
    deadline = started + 900
    soak = Soak(tmp_path, redis_server, model_path.parent)
    soak.start()
    try:
        trickle = soak.drop_all()
        soak.inject_faults(deadline)
        trickle.join()
        soak.wait_for_the_end(deadline)
    finally:
        soak.stop()
    soak.check_exactly_once()
    print(
        f"\nsoak: {FILES} files ({len(soak.good)} good, {len(soak.bad)} broken, "
        f"{len(soak.repeats)} names dropped twice), {len(soak.direct)} jobs from another app "
        f"across the Redis restart, 3 worker "
        f"kills, 1 watcher kill, 1 Redis restart "
        f"({'AOF' if PERSIST else 'no persistence'}): all ended exactly once in "
        f"{time.monotonic() - started:.0f} s"
    )
