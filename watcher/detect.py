"""Seeing new files: watchdog's native observer, or polling where events never arrive.

Events only say "look here"; the settler and the periodic rescan decide. Network file
systems (NFS, SMB/CIFS) and many container bind mounts deliver no inotify events for
changes made by other hosts (watchdog issues 283, 504), hence polling for them.
"""

from __future__ import annotations

import logging
import os
import queue
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from watcher.rules import is_input
from watcher.settle import Hint

log = logging.getLogger(__name__)

NETWORK_FS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb",
        "smb2",
        "smb3",
        "smbfs",
        "9p",
        "fuse.sshfs",
        "davfs",
        "afs",
        "glusterfs",
        "ceph",
        "fuse.rclone",
        "fuse.s3fs",
        "virtiofs",
        "fuse.grpcfuse",
        "fakeowner",
    }
)


class Seen(NamedTuple):
    """A file an event pointed at, and what the event said of it (watcher.settle.Hint): a
    hint, checked before it is trusted."""

    path: Path
    hint: Hint = "changed"


# watchdog's event types; "modified" covers IN_ATTRIB (chmod, utime) as well as writes.
_HINTS: dict[str, Hint] = {"created": "changed", "modified": "changed", "closed": "closed"}


class _Forward(FileSystemEventHandler):
    """Puts the path of every created, modified, closed or moved-in file on a queue."""

    def __init__(self, inbox: Path, paths: queue.Queue[Seen]) -> None:
        self.inbox = inbox
        self.paths = paths

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type in ("deleted", "opened", "closed_no_write"):
            return
        raw = getattr(event, "dest_path", "") or event.src_path
        path = Path(os.fsdecode(raw))
        try:
            rel = path.relative_to(self.inbox)
        except ValueError:
            return  # moved out of the inbox
        if is_input(rel):
            self.paths.put(Seen(path, _HINTS.get(event.event_type, "renamed")))


def filesystem_type(path: Path) -> str:
    """The type of the file system holding `path`, from /proc/mounts ('' if unknown)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return ""
    real = os.path.realpath(path)
    best, kind = "", ""
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        if (real == point or real.startswith(point.rstrip("/") + "/")) and len(point) > len(best):
            best, kind = point, fields[2]
    return kind


def choose_mode(mode: str, inbox: Path) -> str:
    if mode != "auto":
        return mode
    return "polling" if filesystem_type(inbox) in NETWORK_FS else "native"


def start_observer(
    inbox: Path, mode: str, poll_seconds: float, paths: queue.Queue[Seen]
) -> BaseObserver:
    chosen = choose_mode(mode, inbox)
    observer: BaseObserver = (
        PollingObserver(timeout=poll_seconds) if chosen == "polling" else Observer()
    )
    observer.schedule(_Forward(inbox, paths), str(inbox), recursive=True)
    observer.start()
    log.info("watching %s (%s)", inbox, chosen)
    return observer


def scan(inbox: Path) -> Iterator[Path]:
    """Every input file under the inbox, skipping hidden folders without entering them."""
    for folder, dirs, files in os.walk(inbox):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        base = Path(folder)
        for name in sorted(files):
            path = base / name
            if is_input(path.relative_to(inbox)) and path.is_file():
                yield path
