"""The bytes that come in and go out: which image format an upload is by its first bytes
(the gateway decodes nothing: a worker does), a result's content type and name, and the zip
of several results."""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import PurePath, PureWindowsPath
from typing import IO
from urllib.parse import quote

from worker.naming import candidates, fit_name
from worker.status import StatusStore

ZIP_IN_MEMORY = 32 * 1024 * 1024  # a bigger zip is spooled to a temp file

# The formats of the watch folder's and `cutout p`'s image names (worker.naming), by their
# signatures. A file that passes may still be broken; a worker tells, with the reason.
SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "jpg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)
# HEIF and AVIF are ISO boxes: `ftyp` at byte 4, then the major brand (HEIC's phones write
# heic or mif1; AVIF avif, or avis for a sequence).
HEIF_BRANDS = {
    b"heic": "heic",
    b"heix": "heic",
    b"heim": "heic",
    b"heis": "heic",
    b"hevc": "heic",
    b"hevx": "heic",
    b"mif1": "heic",
    b"msf1": "heic",
    b"avif": "avif",
    b"avis": "avif",
}
ACCEPTED = "JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC/HEIF or AVIF"
CONTENT_TYPES = {
    "png": "image/png",
    "webp": "image/webp",
    "jpg": "image/jpeg",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
    "heic": "image/heic",
    "avif": "image/avif",
}
DEFAULT_STEM = "image"


def image_format(data: bytes) -> str | None:
    """The format the bytes start as, or None when they start as no image we take."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[4:8] == b"ftyp":
        return HEIF_BRANDS.get(data[8:12])
    return next((fmt for signature, fmt in SIGNATURES if data.startswith(signature)), None)


def content_type(data: bytes) -> str:
    fmt = image_format(data)
    return CONTENT_TYPES[fmt] if fmt else "application/octet-stream"


def result_name(input_name: str | None, data: bytes) -> str:
    """`photo.jpg`'s result as `photo.png` (the extension of what the bytes are); the
    folders of a name sent as a path are left out."""
    base = PureWindowsPath(PurePath(input_name or "").name).name  # either separator
    stem = PurePath(base).stem.strip() if base not in ("", ".", "..") else ""
    fmt = image_format(data) or "bin"
    return fit_name(stem or DEFAULT_STEM, f".{fmt}")


def disposition(kind: str, name: str) -> str:
    """A Content-Disposition any client reads: an ASCII name, and the real one (RFC 6266)."""
    plain = name.encode("ascii", "replace").decode().replace('"', "'").replace("?", "_")
    return f"{kind}; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


def build_zip(status: StatusStore, ids: list[str]) -> tuple[IO[bytes] | None, int]:
    """The zip (rewound), or None when no job had a result; and how many were skipped."""
    archive: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=ZIP_IN_MEMORY)  # noqa: SIM115
    unique = list(dict.fromkeys(ids))
    taken: set[str] = set()
    skipped = 0
    # Stored, not deflated: PNG, WebP and JPEG are compressed already.
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for job_id in unique:
            record = status.get(job_id)
            data = status.fetch_result(job_id) if record and record.has_bytes else None
            if record is None or data is None:
                skipped += 1
                continue
            wanted = candidates(result_name(record.input, data))
            name = next(c for c in wanted if c.casefold() not in taken)
            taken.add(name.casefold())
            zf.writestr(name, data)
    if skipped == len(unique):
        archive.close()
        return None, skipped
    archive.seek(0)
    return archive, skipped


def chunks(archive: IO[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    with archive:
        while chunk := archive.read(size):
            yield chunk
