"""Claiming a file atomically, and settling its fate once its job is done.

A claim is a rename of `INBOX/a/b/x.jpg` to `INBOX/.cutout-claims/<job id>/a/b/x.jpg`: on one
file system a rename either happens once or fails, so two watchers on the same share, or a
restarted one, can never both take a file. The job id travels in the path, so after a
restart every claim still says which job it belongs to.

Every folder a file moves out of or into (an inbox subfolder, the claims folder, done/ and
failed/ with their mirrored subfolders) is reached from its root one name at a time
without following a symlink (worker.paths.output_folder), and the file is moved between
those open handles: a folder swapped for a symlink can neither lead a file out of the
service's folders nor bring one in (PathRefused).
"""

from __future__ import annotations

import ctypes
import errno
import json
import logging
import os
import shutil
import stat
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from watcher.rules import CLAIMS
from worker.naming import candidates, fit_name
from worker.paths import PathRefused, output_folder

log = logging.getLogger(__name__)
ERROR_SUFFIX = ".error.json"


@dataclass(frozen=True)
class Claim:
    job_id: str
    rel: Path  # the input's place relative to the inbox
    path: Path  # where the claimed file is now


@contextmanager
def folder_fd(folder: Path, root: Path) -> Iterator[int]:
    """An open handle on `folder` (made where missing), reached from `root` following no
    symlink; PathRefused where one is in the way."""
    with output_folder(folder, [root]) as fd:
        if fd is None:  # a system without O_DIRECTORY: no safe way to walk a folder
            raise PathRefused(f"{folder}: folders cannot be opened safely on this system")
        yield fd


class Claims:
    def __init__(self, inbox: Path) -> None:
        self.inbox = inbox
        self.root = inbox / CLAIMS

    def take(self, path: Path) -> Claim | None:
        """Claim one file; None when another watcher was faster (or it vanished).
        InboxRefused when a folder on its way in the inbox is a symlink (the file is not
        ours to touch); PathRefused when the claims folder, or one inside it, is."""
        rel = path.relative_to(self.inbox)
        job_id = str(uuid.uuid4())
        with ExitStack() as folders:
            try:
                source = folders.enter_context(folder_fd(path.parent, self.inbox))
            except PathRefused as exc:
                raise InboxRefused(str(exc)) from None
            target = folders.enter_context(folder_fd(self.root / job_id / rel.parent, self.inbox))
            try:
                rename_new(source, rel.name, target, rel.name)
            except FileNotFoundError:
                shutil.rmtree(self.root / job_id, ignore_errors=True)
                return None
        return Claim(job_id, rel, self.root / job_id / rel)

    def all(self) -> Iterator[Claim]:
        """Every claim on disk; empty leftovers of an interrupted finish are removed."""
        if self.root.is_symlink():
            log.error("%s is a symlink: no claim is read through it; remove it", self.root)
            return
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

    def note(self, claim: Claim, name: str, data: dict[str, str | None]) -> None:
        """A dotfile of ours beside the claim (its output name, say)."""
        with folder_fd(self.root / claim.job_id, self.inbox) as fd:
            _write_new(fd, name, json.dumps(data))

    def read_note(self, claim: Claim, name: str) -> dict[str, Any]:
        with folder_fd(self.root / claim.job_id, self.inbox) as fd:
            handle = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
            with os.fdopen(handle) as f:
                data: dict[str, Any] = json.load(f)
                return data

    def move(
        self, claim: Claim, folder: Path, rel: Path | None = None, beside: str = ""
    ) -> Path | None:
        """Move the claimed file to `folder` at `rel` (default: its place in the inbox),
        under the first name there that holds no file (worker.naming.candidates; with `beside`,
        whose companion is free too): an archive is never replaced. None if the file is
        already gone (another watcher handled the same outcome). PathRefused when a folder
        on either side is a symlink."""
        place = folder / (rel or claim.rel)
        with (
            folder_fd(claim.path.parent, self.inbox) as source,
            folder_fd(place.parent, folder) as target,
        ):
            for name in candidates(place.name):
                if _exists(target, name) or (beside and _exists(target, fit_name(name, beside))):
                    continue
                try:
                    rename_new(source, claim.path.name, target, name)
                except FileExistsError:
                    continue  # taken since it was looked at
                except FileNotFoundError:
                    return None
                return place.with_name(name)
        raise AssertionError("unreachable: candidates() ends by raising")


class InboxRefused(PathRefused):
    """A file reached through a symlinked folder in the inbox: not ours to take."""


def _exists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _write_new(dir_fd: int, name: str, text: str) -> None:
    """`name` in the open folder, written whole under a temp name then renamed."""
    tmp = f".cutout-{uuid.uuid4().hex[:8]}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise


_RENAME_NOREPLACE = 1
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_renameat2 = getattr(_libc, "renameat2", None)


def rename_new(source_fd: int, source: str, target_fd: int, target: str) -> None:
    """Rename `source` (in the open folder source_fd) to `target` (in target_fd), which must
    not exist (FileExistsError if it does): atomic where the kernel and file system offer it
    (Linux's RENAME_NOREPLACE), else looked at first. Across file systems: copied beside
    the target, then renamed so, then the source removed."""
    if _renameat2 is not None:
        done = _renameat2(
            source_fd, os.fsencode(source), target_fd, os.fsencode(target), _RENAME_NOREPLACE
        )
        if done == 0:
            return
        code = ctypes.get_errno()
        if code == errno.EXDEV:
            return _copy_across(source_fd, source, target_fd, target)
        if code not in (errno.EINVAL, errno.ENOSYS):  # EINVAL: not on this file system
            raise OSError(code, os.strerror(code), source, None, target)
    if _exists(target_fd, target):
        raise FileExistsError(errno.EEXIST, "exists", target)
    try:
        os.rename(source, target, src_dir_fd=source_fd, dst_dir_fd=target_fd)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        _copy_across(source_fd, source, target_fd, target)


def _copy_across(source_fd: int, source: str, target_fd: int, target: str) -> None:
    tmp = f".cutout-{uuid.uuid4().hex[:8]}.tmp"
    src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=source_fd)
    try:
        info = os.fstat(src)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", source)
        dst = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=target_fd)
        with os.fdopen(src, "rb", closefd=False) as reader, os.fdopen(dst, "wb") as writer:
            shutil.copyfileobj(reader, writer)
            os.fchmod(writer.fileno(), stat.S_IMODE(info.st_mode))
            os.utime(writer.fileno(), ns=(info.st_atime_ns, info.st_mtime_ns))
    finally:
        os.close(src)
    try:
        rename_new(target_fd, tmp, target_fd, target)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=target_fd)
        raise
    os.unlink(source, dir_fd=source_fd)


def write_error(
    root: Path, target: Path, *, error: str, job_id: str, attempts: int, worker: str | None
) -> None:
    """`<name>.error.json` beside the failed input (under `root`, the failed folder),
    written whole, through the folder reached without following a symlink."""
    note = {
        "input": target.name,
        "error": error,
        "job_id": job_id,
        "attempts": attempts,
        "worker": worker,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    with folder_fd(target.parent, root) as fd:
        _write_new(fd, fit_name(target.name, ERROR_SUFFIX), json.dumps(note, indent=2) + "\n")
