"""The watch folder takes as images exactly the files `cutout p` takes, and fails the others
itself, each with its reason, instead of leaving them in the inbox or sending them on."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from cutout_cli.p import find_files
from watcher.daemon import WatchConfig, Watcher
from watcher.detect import scan
from worker.client import Client
from worker.naming import IMAGE_SUFFIX_LIST
from worker.redisio import Keys

NAMES = [
    "a.JPG",
    "b.jpeg",
    "sub/c.tif",
    "sub/d.webp",
    "sub/e.HEIC",
    "f.avif",
    "notes.txt",
    "scan.pdf",
    "sub/README",
]


class StandIn:
    """The queue and Redis, stood in for: the point is which files the watcher sends and
    which it fails itself, not how a job travels (tests/integration/test_watcher.py)."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.status = SimpleNamespace(client=self, keys=Keys("cutout"))

    def set(self, *args: Any, **kwargs: Any) -> bool:
        return True  # an output name reserved

    def submit(self, path: Path, **kwargs: Any) -> str:
        self.sent.append(kwargs["input_name"])
        return str(kwargs["job_id"])


def test_the_watcher_sends_what_p_takes_and_fails_the_rest_saying_why(tmp_path: Path) -> None:
    folders = {name: tmp_path / name for name in ("inbox", "outbox", "failed", "done")}
    for folder in folders.values():
        folder.mkdir()
    for name in NAMES:
        (folders["inbox"] / name).parent.mkdir(parents=True, exist_ok=True)
        (folders["inbox"] / name).write_bytes(b"whatever")
    images, skipped = find_files(folders["inbox"], folders["outbox"])
    stand_in = StandIn()
    watcher = Watcher(
        WatchConfig(
            inbox=folders["inbox"],
            outbox=folders["outbox"],
            failed_dir=folders["failed"],
            done_dir=folders["done"],
        ),
        cast(Client, stand_in),
    )
    for path in list(scan(folders["inbox"])):
        watcher.take(path)

    p_took = sorted(p.relative_to(folders["inbox"]).as_posix() for p in images)
    expected = ["a.JPG", "b.jpeg", "f.avif", "sub/c.tif", "sub/d.webp", "sub/e.HEIC"]
    assert sorted(stand_in.sent) == p_took == expected
    failed = sorted(
        p.relative_to(folders["failed"]).as_posix() for p in folders["failed"].rglob("*")
    )
    others = ["notes.txt", "scan.pdf", "sub/README"]
    assert skipped == len(others)
    assert failed == sorted([*others, *(f"{n}.error.json" for n in others), "sub"])
    accepted = " ".join(IMAGE_SUFFIX_LIST)
    for name in others:
        note = json.loads((folders["failed"] / f"{name}.error.json").read_text())
        assert note["error"] == f"{name}: not an image (accepted names end in {accepted})"
        assert note["job_id"]
    assert len(watcher.active) == len(p_took)  # the images' claims wait for their jobs
