"""Names that never take another file's place.

An output: `a/b/photo.jpg` -> `a/b/photo.png`; when that name is taken - a file is there, or
a job in flight has reserved it - `photo (2).png`, then `photo (3).png`, and so on. The same
name dropped again (cameras repeat `IMG_0001.jpg`) is a new input with an output of its own.
A reservation is a Redis key per output path (`cutout:output:<path>`), taken with SET NX so
that two watchers agree, and it expires with the job's record.

Archived inputs (done/) and failed ones (failed/, with their `.error.json`) follow the same
rule, `candidates`, taken by watcher.claims through open folder handles.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path, PurePath

import redis

KEY_PREFIX = "cutout:output:"
NAME_MAX = 255  # bytes in one name: ext4, XFS, btrfs, NTFS, APFS and SMB shares alike
MAX_TRIES = 100_000  # names tried before giving up: a folder holding that many is a bug


def fit_name(name: str, suffix: str) -> str:
    """`name + suffix`, or - where that is longer than a file name may be - as much of the
    name as fits, then `~` and a hash of the whole name (still unique), then the suffix."""
    whole = name + suffix
    if len(os.fsencode(whole)) <= NAME_MAX:
        return whole
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:10]
    room = NAME_MAX - len(os.fsencode(f"~{digest}{suffix}"))
    head = os.fsencode(name)[:room].decode("utf-8", "ignore")
    return f"{head}~{digest}{suffix}"


def candidates(name: str) -> Iterator[str]:
    """`photo.png`, `photo (2).png`, `photo (3).png`, ... each within NAME_MAX."""
    plain = PurePath(name)
    yield fit_name(plain.stem, plain.suffix)
    for n in range(2, MAX_TRIES):
        yield fit_name(f"{plain.stem} ({n})", plain.suffix)
    raise FileExistsError(f"{name}: {MAX_TRIES} names taken in one folder")


def output_rel(client: redis.Redis, rel: Path, fmt: str, outbox: Path, ttl: int) -> Path:
    """The first output name for `rel` that no file holds and no job has reserved; reserved
    now for `ttl` seconds (the life of its job's record)."""
    for name in candidates(rel.with_suffix(f".{fmt}").name):
        out = rel.with_name(name)
        path = outbox / out
        if _exists(path):
            continue
        if client.set(KEY_PREFIX + str(path), rel.as_posix(), nx=True, ex=ttl) and not _exists(
            path
        ):
            return out
    raise AssertionError("unreachable: candidates() ends by raising")


def _exists(path: Path) -> bool:
    return os.path.lexists(path)
