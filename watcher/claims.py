"""Claiming a file atomically, and settling its fate once its job is done.

A claim is a rename of `INBOX/a/b/x.jpg` to `INBOX/.cutout-claims/<job id>/a/b/x.jpg`: on one
file system a rename either happens once or fails, so two watchers on the same share, or a
restarted one, can never both take a file. The job id travels in the path, so after a
restart every claim still says which job it belongs to.
"""

from __future__ import annotations

import ctypes
import errno
import json
import logging
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from watcher.names import first_free, fit_name
from watcher.rules import CLAIMS

log = logging.getLogger(__name__)
ERROR_SUFFIX = ".error.json"


@dataclass(frozen=True)
class Claim:
    job_id: str
    rel: Path  # the input's place relative to the inbox
    path: Path  # where the claimed file is now


class Claims:
    def __init__(self, inbox: Path) -> None:
        self.inbox = inbox
        self.root = inbox / CLAIMS

    def take(self, path: Path) -> Claim | None:
        """Claim one file; None when another watcher was faster (or it vanished)."""
        rel = path.relative_to(self.inbox)
        job_id = str(uuid.uuid4())
        target = self.root / job_id / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(path, target)
        except FileNotFoundError:
            shutil.rmtree(self.root / job_id, ignore_errors=True)
            return None
        return Claim(job_id, rel, target)

    def all(self) -> Iterator[Claim]:
        """Every claim on disk; empty leftovers of an interrupted finish are removed."""
        if not self.root.is_dir():
            return
        for folder in sorted(self.root.iterdir()):
            # Dotfiles are our own notes (the job's output name), not inputs.
            files = [
                p
                for p in folder.rglob("*")
                if (p.is_file() or p.is_symlink()) and not p.name.startswith(".")
            ]
            if not files:
                shutil.rmtree(folder, ignore_errors=True)
                continue
            for path in files:
                yield Claim(folder.name, path.relative_to(folder), path)

    def count(self) -> int:
        return sum(1 for _ in self.root.iterdir()) if self.root.is_dir() else 0

    def release(self, claim: Claim) -> None:
        shutil.rmtree(self.root / claim.job_id, ignore_errors=True)


def move(claim: Claim, folder: Path, beside: str = "") -> Path | None:
    """Move the claimed file to `folder`, keeping its relative place, under the first name
    there that holds no file (names.first_free; with `beside`, whose companion is free
    too): an archive is never replaced. None if the file is already gone (another watcher
    handled the same outcome)."""
    place = folder / claim.rel
    place.parent.mkdir(parents=True, exist_ok=True)
    for target in first_free(place.parent, place.name, beside):
        try:
            rename_new(claim.path, target)
        except FileExistsError:
            continue  # taken since it was looked at
        except FileNotFoundError:
            return None
        return target
    raise AssertionError("unreachable: first_free() ends by raising")


_RENAME_NOREPLACE = 1
_AT_FDCWD = -100
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_renameat2 = getattr(_libc, "renameat2", None)


def rename_new(source: Path, target: Path) -> None:
    """Rename `source` to `target`, which must not exist (FileExistsError if it does):
    atomic where the kernel and file system offer it (Linux's RENAME_NOREPLACE), else
    looked at first. Across file systems: copied beside the target, then renamed so."""
    if _renameat2 is not None:
        result = _renameat2(
            _AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE
        )
        if result == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.EXDEV):  # EINVAL: not on this fs
            raise OSError(code, os.strerror(code), str(source), None, str(target))
        if code == errno.EXDEV:
            return _copy_across(source, target)
    if os.path.lexists(target):
        raise FileExistsError(errno.EEXIST, "exists", str(target))
    try:
        os.rename(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        _copy_across(source, target)


def _copy_across(source: Path, target: Path) -> None:
    tmp = target.with_name(f".cutout-{uuid.uuid4().hex[:8]}.tmp")
    shutil.copy2(source, tmp, follow_symlinks=False)
    try:
        rename_new(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.unlink(source)


def write_error(
    target: Path, *, error: str, job_id: str, attempts: int, worker: str | None
) -> None:
    """`<name>.error.json` beside the failed input, written atomically."""
    note = {
        "input": target.name,
        "error": error,
        "job_id": job_id,
        "attempts": attempts,
        "worker": worker,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    path = target.with_name(fit_name(target.name, ERROR_SUFFIX))
    tmp = path.with_name(f".cutout-{uuid.uuid4().hex[:8]}.error.tmp")
    tmp.write_text(json.dumps(note, indent=2) + "\n")
    os.replace(tmp, path)
