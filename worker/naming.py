"""Which files are images, and which output belongs to which input: one rule for `cutout p`,
the watch folder, the task's default output and `cutout submit --wait`.

An output mirrors its input: `a/b/photo.jpg` -> `a/b/photo.png` (the output format's
extension). When that name is taken, `photo (2).png`, then `photo (3).png`, and so on, each
fitted to the file system's NAME_MAX bytes (`fit_name`). What counts as taken, by caller:
- `batch` (`cutout p`): given to an earlier input of the same run, the inputs in sorted
  order, so that `a.jpg` and `a.png` in one folder give `a.png` and `a (2).png`, the same on
  every run: a second run replaces its own earlier outputs.
- `output_rel` (the watcher): a file is there, or a job in flight has reserved it. The same
  name dropped again (cameras repeat `IMG_0001.jpg`) is a new input with an output of its
  own. A reservation is a Redis key per output path (`Keys.output`,
  `<prefix>:output:<path>`), taken with SET NX so that two watchers agree, and it expires
  with the job's record.
- `write_new` (`cutout submit --wait`): a file is there; the result is linked into place
  under a free name, never over a file that is there or appears meanwhile.
- `mirrored` (the task's default output): never renumbered; the task's `overwrite` decides
  what happens to a file already there.
Archived inputs (done/) and failed ones (failed/, with their `.error.json`) follow the same
rule, `candidates`, taken by watcher.claims through open folder handles.

Kept light (no engine, no Redis client at import): the watcher and `cutout p` both use it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import redis

    from worker.redisio import Keys

NAME_MAX = 255  # bytes in one name: ext4, XFS, btrfs, NTFS, APFS and SMB shares alike
MAX_TRIES = 100_000  # names tried before giving up: a folder holding that many is a bug

# What the decoder (Pillow, and pillow-heif for HEIC: cutout.images) reads and what cameras,
# phones, browsers and editors name their pictures: the one list `cutout p`, `cutout report`
# and the watch folder take. Other formats Pillow knows (PSD, EPS, PDF, ...) are documents
# more often than photos. A name only decides whether a file is taken; the decoder reads
# the format from the content, so a JPEG saved as `photo.png` is still a JPEG.
IMAGE_SUFFIX_LIST = (
    ".jpg",
    ".jpeg",
    ".jpe",
    ".jfif",
    ".png",
    ".apng",
    ".webp",
    ".gif",
    ".bmp",
    ".dib",
    ".tif",
    ".tiff",
    ".heic",  # iPhones' photos, and Android's "high efficiency" ones
    ".heif",
    ".hif",  # Canon's and Fujifilm's HEIF
    ".avif",
)
IMAGE_SUFFIXES = frozenset(IMAGE_SUFFIX_LIST)

P = TypeVar("P", bound=PurePath)


def is_image(path: PurePath) -> bool:
    """Whether a file is an image by its name (the suffix, in any case)."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def not_an_image(rel: PurePath) -> str:
    """Why a file that is not an image is not taken: its name and the names that are."""
    return f"{rel}: not an image (accepted names end in {' '.join(IMAGE_SUFFIX_LIST)})"


def as_text(path: str | PurePath) -> str:
    """A path as Redis can take it: a name that is not UTF-8 (surrogate escapes, as Python
    reads it from the disk) has its odd bytes written as \\xNN instead of failing."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


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


def output_name(name: str, fmt: str) -> str:
    """`photo.jpg` -> `photo.<fmt>`: the name an output wants before any is taken."""
    return PurePath(name).with_suffix(f".{fmt}").name


def outputs(rel: P, fmt: str) -> Iterator[P]:
    """The output names for input `rel` in the naming order, in its mirrored folder."""
    for name in candidates(output_name(rel.name, fmt)):
        yield rel.with_name(name)


def mirrored(source: Path, inbox: Path, fmt: str) -> Path:
    """`INBOX/a/b/photo.jpg` -> `a/b/photo.<fmt>` (relative to the outbox); a file elsewhere
    goes to the top."""
    real_inbox = Path(os.path.realpath(inbox))
    rel = source.relative_to(real_inbox) if source.is_relative_to(real_inbox) else Path(source.name)
    return next(outputs(rel, fmt))


def batch(rels: Iterable[P], fmt: str) -> dict[P, P]:
    """The output of each input of one run (paths relative to its input folder): in sorted
    order, each takes the first of its names that no earlier input took. What is already in
    the output folder does not count, so running again gives the same names."""
    taken: set[str] = set()
    named: dict[P, P] = {}
    for rel in sorted(rels):
        # Case-folded: on a case-insensitive share `A.png` and `a.png` are one file.
        out = next(o for o in outputs(rel, fmt) if o.as_posix().casefold() not in taken)
        taken.add(out.as_posix().casefold())
        named[rel] = out
    return named


def output_rel(
    client: redis.Redis, rel: Path, fmt: str, outbox: Path, ttl: int, *, keys: Keys
) -> Path:
    """The first output name for `rel` that no file holds and no job has reserved; reserved
    now for `ttl` seconds (the life of its job's record)."""
    for out in outputs(rel, fmt):
        path = outbox / out
        if _exists(path):
            continue
        if client.set(keys.output(path), as_text(rel.as_posix()), nx=True, ex=ttl) and not _exists(
            path
        ):
            return out
    raise AssertionError("unreachable: candidates() ends by raising")


def write_new(folder: Path, name: str, write: Callable[[Path], None]) -> Path:
    """Where `write` put its file: the first of `candidates(name)` in `folder` that holds no
    file. `write(path)` must never replace a file (FileExistsError instead, as
    `cutout.images.write_atomic(..., replace=False)`, which links the whole file into place):
    a name taken between the look and the write moves on to the next."""
    for candidate in candidates(name):
        path = folder / candidate
        if _exists(path):
            continue
        try:
            write(path)
        except FileExistsError:
            continue
        return path
    raise AssertionError("unreachable: candidates() ends by raising")


def _exists(path: Path) -> bool:
    return os.path.lexists(path)  # a symlink, even a dangling one, holds its name
