"""Output names: `a/b/photo.jpg` -> `a/b/photo.png`, unless that output already belongs to
another input (`photo.png` dropped beside `photo.jpg`): then `a/b/photo.png.png`.

Which input owns an output is kept in Redis (hash `cutout:outputs`, by absolute output path),
claimed with HSETNX so that two watchers agree; the same input dropped again keeps its output.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import redis

KEY = "cutout:outputs"
NAME_MAX = 255  # bytes in one name: ext4, XFS, btrfs, NTFS, APFS and SMB shares alike


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


def output_rel(client: redis.Redis, rel: Path, fmt: str, outbox: Path) -> Path:
    plain = rel.with_name(fit_name(rel.stem, f".{fmt}"))
    if _own(client, plain, rel, outbox):
        return plain
    # Unique: input names are unique per folder.
    spelled = rel.with_name(fit_name(rel.name, f".{fmt}"))
    client.hset(KEY, str(outbox / spelled), rel.as_posix())
    return spelled


def _own(client: redis.Redis, out: Path, rel: Path, outbox: Path) -> bool:
    # Keyed by the absolute output path: watch folders with other outboxes share the Redis.
    key = str(outbox / out)
    owner = client.hget(KEY, key)
    if owner is None:
        # An output with no known owner (written before a Redis reset) is not ours to take.
        if (outbox / out).exists():
            return False
        return bool(client.hsetnx(KEY, key, rel.as_posix())) or _own(client, out, rel, outbox)
    text = owner.decode() if isinstance(owner, bytes) else str(owner)
    return text == rel.as_posix()
