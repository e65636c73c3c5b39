"""Wait until a file's writer is done with it: no change to its size, mtime or ctime (the
ctime moves with every chmod, chown and utime) and no event about it for a quiet time, and
it opens. A file copied slowly in chunks is taken once, whole.

How long the quiet time is depends on what the events said of the file:
- renamed into place (rsync, browsers, `mv`, an editor writing a temp file): the rename is
  the writer's last step, so a file whose bytes end where its format says (watcher.complete)
  is taken at once;
- closed after writing (`cp`, `shutil.copy`, an editor writing in place): copy tools set the
  mode and times *by path* after the close (`shutil.copy`'s copymode, `copy2`'s copystat,
  vim's setperm), and a file claimed in between makes the writer fail with ENOENT. So a
  whole file waits a short quiet time, which every later event or metadata change restarts;
- anything else (polling mode, files found by a scan, formats with no end such as TIFF,
  files cut short): the settle time.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from watcher.complete import is_whole

# What an event said of a file: "scan" (nothing: found by a rescan), "changed" (written or
# its metadata changed), "closed" (closed after writing), "renamed" (renamed into place).
Hint = Literal["scan", "changed", "closed", "renamed"]

# The quiet time of a whole file closed by its writer. The gap it covers (close, then chmod
# and utime by path) is microseconds on an idle machine; this leaves room for a writer
# descheduled or paused by its garbage collector on a loaded one, while staying far under
# the settle time.
CLOSED_QUIET_SECONDS = 0.5


@dataclass
class _File:
    offered: float
    hint: Hint
    signature: tuple[int, int, int] | None = None  # size, mtime_ns, ctime_ns
    since: float = field(default=0.0)  # when the signature was last seen to change


class Settler:
    def __init__(self, settle_seconds: float) -> None:
        self.settle_seconds = settle_seconds
        self._files: dict[Path, _File] = {}

    def offer(self, path: Path, hint: Hint = "scan") -> None:
        known = self._files.get(path)
        if known is None:
            self._files[path] = _File(time.monotonic(), hint)
            return
        if hint == "scan":
            return  # a rescan says nothing new about a file already waiting
        known.signature = None  # it changed just now: its quiet time starts again
        if hint != "changed":
            known.hint = hint
        elif known.hint == "renamed":
            # Touched after its rename: the writer is not done yet; still let go of the
            # bytes (a rewrite shows as cut short), so it waits as a closed file does.
            known.hint = "closed"

    def __len__(self) -> int:
        return len(self._files)

    def __bool__(self) -> bool:
        return bool(self._files)

    def ready(self, limit: int, now: float | None = None) -> list[tuple[Path, float]]:
        """Up to `limit` files that have settled, oldest offer first, with the seconds each
        waited since it was offered; they leave the settler."""
        now = time.monotonic() if now is None else now
        done: list[tuple[Path, float]] = []
        # Look at a bounded window: a drop of 100,000 files must not mean 100,000 stat()
        # calls per turn while only a few hundred can be taken anyway.
        for path in list(itertools.islice(self._files, max(2 * limit, 256))):
            if len(done) >= limit:
                break
            if self._settled(path, now):
                done.append((path, now - self._files.pop(path).offered))
        return done

    def _settled(self, path: Path, now: float) -> bool:
        try:
            st = path.stat()
        except FileNotFoundError:
            del self._files[path]  # moved away or deleted before it settled
            return False
        known = self._files[path]
        signature = (st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if known.signature != signature:
            known.signature, known.since = signature, now
        return now - known.since >= self._quiet(path, known.hint) and _opens(path)

    def _quiet(self, path: Path, hint: Hint) -> float:
        if hint in ("scan", "changed") or not is_whole(path):
            return self.settle_seconds
        return 0.0 if hint == "renamed" else min(self.settle_seconds, CLOSED_QUIET_SECONDS)


def _opens(path: Path) -> bool:
    # On SMB shares a file still being written by another host may refuse to open.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    os.close(fd)
    return True


def open_for_writing(path: Path) -> bool:
    """Whether a process on this machine holds `path` open for writing (Linux's /proc; as
    far as this process may look). A writer on another host, or another system: False."""
    try:
        target = os.stat(path)
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return False
    for pid in pids:
        folder = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(folder)
        except OSError:
            continue  # gone, or not ours to look at
        for fd in fds:
            try:
                if not os.path.samestat(os.stat(f"{folder}/{fd}"), target):
                    continue
                with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                    flags = next(int(v.split()[1], 8) for v in info if v.startswith("flags:"))
            except (OSError, StopIteration, ValueError, IndexError):
                continue
            if flags & (os.O_WRONLY | os.O_RDWR):
                return True
    return False
