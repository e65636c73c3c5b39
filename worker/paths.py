"""Where a job may read and write: every path is resolved (symlinks too) and confined to
the configured roots, so a payload can never make a worker touch another file.

A check on a path and the use of that path are two moments: whoever can write in a shared
folder could swap a file or a folder for a symlink in between. So inputs are opened without
following a final symlink, output folders are reached from their root one name at a time
without following any, and what was actually opened is checked again (Linux's
/proc/self/fd, macOS's F_GETPATH) before a byte is read or written through it.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from worker.jobs import JobError


class PathRefused(JobError):
    """A job's path points outside the allowed folders."""


def confine(raw: str, base: Path, roots: Sequence[Path]) -> Path:
    """The real path of `raw` (relative to `base`), refused unless it lies under a root."""
    path = Path(raw)
    real = Path(os.path.realpath(path if path.is_absolute() else base / path))
    if _root_of(real, roots) is None:
        raise PathRefused(f"{raw}: refused, outside the allowed folders")
    return real


def _root_of(real: Path, roots: Sequence[Path]) -> Path | None:
    """The real path of the first root that `real` lies under; None if none."""
    return next(
        (r for root in roots if real.is_relative_to(r := Path(os.path.realpath(root)))), None
    )


def opened_path(fd: int) -> Path | None:
    """Where an open file or folder really is; None where the system cannot tell."""
    if sys.platform == "darwin":
        import fcntl

        return Path(os.fsdecode(fcntl.fcntl(fd, fcntl.F_GETPATH, bytes(1024)).rstrip(b"\0")))
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return None


def _check_opened(fd: int, raw: str, roots: Sequence[Path]) -> None:
    where = opened_path(fd)
    if where is not None and _root_of(where, roots) is None:
        raise PathRefused(f"{raw}: refused, moved outside the allowed folders while in use")


def not_found(raw: str) -> PathRefused:
    """One answer whether a file is missing or outside the roots: an error must not tell a
    job's sender which files exist outside the folders."""
    return PathRefused(f"{raw}: refused: not found in the allowed folders")


def input_file(raw: str, base: Path, roots: Sequence[Path]) -> Path:
    """A regular file under the roots, `raw` read relative to `base` (never the process's
    working folder); FIFOs, devices and folders are refused unopened (opening a FIFO would
    block the worker forever). Used for every file a job reads: its input, its backdrop."""
    try:
        path = confine(raw, base, roots)
        mode = os.stat(path).st_mode
    except (PathRefused, FileNotFoundError):
        raise not_found(raw) from None
    except OSError as exc:
        raise JobError(f"{raw}: cannot read ({exc.strerror})") from exc
    if not stat.S_ISREG(mode):
        raise JobError(f"{raw}: not a regular file")
    return path


def output_file(
    raw: str, outbox: Path, roots: Sequence[Path], *, archives: Sequence[Path] = ()
) -> Path:
    """The folder is resolved, the final name is not: a symlink already sitting at the
    output path is replaced, never followed. Never in `archives` (the service's done and
    failed folders, whose files are its record of what it did) nor in a hidden folder or
    under a hidden name (the watcher's claims and ledger, temp files): a job reads there,
    it does not write."""
    path = Path(raw) if Path(raw).is_absolute() else outbox / raw
    if path.name in ("", ".", ".."):
        raise PathRefused(f"{raw}: not a file name")
    folder = confine(str(path.parent), outbox, roots)
    target = folder / path.name
    root = _root_of(folder, roots)
    if root is not None and any(p.startswith(".") for p in target.relative_to(root).parts):
        raise PathRefused(f"{raw}: refused, a hidden name or folder is not an output")
    if _root_of(target, archives) is not None:
        raise PathRefused(f"{raw}: refused, the done and failed folders are not outputs")
    return target


_READ = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)


def open_input(path: Path, raw: str, roots: Sequence[Path]) -> tuple[BinaryIO, os.stat_result]:
    """Open a file that `input_file` let through, and its stat: refused if it has become a
    symlink, a non-file or a file outside the roots since (O_NONBLOCK: a FIFO put there
    meanwhile cannot block the worker)."""
    flags = _READ | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise not_found(raw) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink
            raise PathRefused(f"{raw}: refused, replaced by a symlink while in use") from None
        raise JobError(f"{raw}: cannot read ({exc.strerror})") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise JobError(f"{raw}: not a regular file")
        _check_opened(fd, raw, roots)
        return os.fdopen(fd, "rb"), info
    except BaseException:
        os.close(fd)
        raise


@contextmanager
def output_folder(folder: Path, roots: Sequence[Path]) -> Iterator[int | None]:
    """An open handle on a folder that `output_file` let through, made where missing: reached
    from the root it lies under one name at a time, each made if missing and opened without
    following a symlink, so a folder swapped for a symlink since the check is refused, and
    nothing is made outside the roots. What is written through the handle lands in that
    folder even if its path is swapped afterwards. None where folders cannot be opened this
    way (Windows): the folder is made and used by its path, as checked."""
    if not hasattr(os, "O_DIRECTORY"):
        folder.mkdir(parents=True, exist_ok=True)
        yield None
        return
    root = _root_of(folder, roots)
    if root is None:
        raise PathRefused(f"{folder}: refused, outside the allowed folders")
    fd = os.open(root, _READ | os.O_DIRECTORY)
    try:
        for name in folder.relative_to(root).parts:
            with suppress(FileExistsError):
                os.mkdir(name, dir_fd=fd)
            try:
                inner = os.open(name, _READ | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError:
                # Linux says ENOTDIR for a symlink here, as for a file in the way; only the
                # symlink is refused (a file in the way is an I/O error: retried).
                if stat.S_ISLNK(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                    raise PathRefused(
                        f"{folder}: refused, {name} was replaced by a symlink while in use"
                    ) from None
                raise
            os.close(fd)
            fd = inner
        _check_opened(fd, str(folder), roots)
        yield fd
    finally:
        os.close(fd)
