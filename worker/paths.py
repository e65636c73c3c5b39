"""Where a job may read and write: every path is resolved (symlinks too) and confined to
the configured roots, so a payload can never make a worker touch another file."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from worker.jobs import JobError


class PathRefused(JobError):
    """A job's path points outside the allowed folders."""


def confine(raw: str, base: Path, roots: Sequence[Path]) -> Path:
    """The real path of `raw` (relative to `base`), refused unless it lies under a root."""
    path = Path(raw)
    real = Path(os.path.realpath(path if path.is_absolute() else base / path))
    for root in roots:
        real_root = Path(os.path.realpath(root))
        if real == real_root or real.is_relative_to(real_root):
            return real
    raise PathRefused(f"{raw}: refused, outside the allowed folders")


def input_file(raw: str, inbox: Path, roots: Sequence[Path]) -> Path:
    """A regular file under the roots; FIFOs, devices and folders are refused unopened
    (opening a FIFO would block the worker forever)."""
    path = confine(raw, inbox, roots)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise JobError(f"{raw}: no such file") from None
    except OSError as exc:
        raise JobError(f"{raw}: cannot read ({exc.strerror})") from exc
    if not stat.S_ISREG(mode):
        raise JobError(f"{raw}: not a regular file")
    return path


def mirrored_output(source: Path, inbox: Path, outbox: Path, fmt: str) -> Path:
    """`INBOX/a/b/photo.jpg` -> `OUTBOX/a/b/photo.<fmt>`; a file elsewhere goes to the top."""
    real_inbox = Path(os.path.realpath(inbox))
    rel = source.relative_to(real_inbox) if source.is_relative_to(real_inbox) else Path(source.name)
    return outbox / rel.with_suffix(f".{fmt}")


def output_file(raw: str, outbox: Path, roots: Sequence[Path]) -> Path:
    """The folder is resolved, the final name is not: a symlink already sitting at the
    output path is replaced, never followed."""
    path = Path(raw) if Path(raw).is_absolute() else outbox / raw
    if path.name in ("", ".", ".."):
        raise PathRefused(f"{raw}: not a file name")
    folder = confine(str(path.parent), outbox, roots)
    return folder / path.name
