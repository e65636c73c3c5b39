"""Claiming a file atomically, and settling its fate once its job is done.

A claim is a rename of `INBOX/a/b/x.jpg` to `INBOX/.cutout-claims/<job id>/a/b/x.jpg`: on one
file system a rename either happens once or fails, so two watchers on the same share, or a
restarted one, can never both take a file. The job id travels in the path, so after a
restart every claim still says which job it belongs to.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from watcher.names import fit_name
from watcher.rules import CLAIMS

log = logging.getLogger(__name__)


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


def move(claim: Claim, folder: Path) -> Path | None:
    """Move the claimed file to `folder`, keeping its relative place; None if already gone
    (another watcher handled the same outcome)."""
    target = folder / claim.rel
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(claim.path, target)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno != 18:  # EXDEV: the folders are on different file systems
            raise
        shutil.move(claim.path, target)
    return target


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
    path = target.with_name(fit_name(target.name, ".error.json"))
    tmp = path.with_name(f".cutout-{uuid.uuid4().hex[:8]}.error.tmp")
    tmp.write_text(json.dumps(note, indent=2) + "\n")
    os.replace(tmp, path)
