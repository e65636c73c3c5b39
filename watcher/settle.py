"""Wait until a file stops changing: size and mtime unchanged for the settle time, and it
opens. A file copied slowly in chunks is taken once, whole.

The shortcut: a file whose writer let go of it (closed after writing, or renamed into
place: inotify says so) and whose bytes end where its format says (watcher.complete) is
taken at once, without the settle time.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path

from watcher.complete import is_whole


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    since: float


class Settler:
    def __init__(self, settle_seconds: float) -> None:
        self.settle_seconds = settle_seconds
        self._files: dict[Path, _Seen | None] = {}
        self._offered: dict[Path, float] = {}
        self._let_go: set[Path] = set()

    def offer(self, path: Path, done_writing: bool = False) -> None:
        if path not in self._files:
            self._files[path] = None
            self._offered[path] = time.monotonic()
        # Sticky: copy tools set the mode and times after the close, which reads as one more
        # "modified"; a writer that comes back to it is caught by is_whole (a file being
        # rewritten is cut short, not whole, until it is done).
        if done_writing:
            self._let_go.add(path)

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
                del self._files[path]
                self._let_go.discard(path)
                done.append((path, now - self._offered.pop(path, now)))
        return done

    def _settled(self, path: Path, now: float) -> bool:
        try:
            st = path.stat()
        except FileNotFoundError:
            del self._files[path]  # moved away or deleted before it settled
            self._offered.pop(path, None)
            self._let_go.discard(path)
            return False
        if path in self._let_go and is_whole(path) and _opens(path):
            return True
        seen = self._files[path]
        if seen is None or (seen.size, seen.mtime_ns) != (st.st_size, st.st_mtime_ns):
            self._files[path] = _Seen(st.st_size, st.st_mtime_ns, now)
            return self.settle_seconds == 0 and _opens(path)
        return now - seen.since >= self.settle_seconds and _opens(path)


def _opens(path: Path) -> bool:
    # On SMB shares a file still being written by another host may refuse to open.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    os.close(fd)
    return True
