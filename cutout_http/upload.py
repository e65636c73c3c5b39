"""Uploads and results as bytes: which image format a file is by its first bytes (the
gateway decodes nothing: a worker does), the content type of a result, and its name."""

from __future__ import annotations

from pathlib import PurePath, PureWindowsPath

from worker.naming import fit_name

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
ACCEPTED = "JPEG, PNG, WebP, GIF, BMP or TIFF"
CONTENT_TYPES = {
    "png": "image/png",
    "webp": "image/webp",
    "jpg": "image/jpeg",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
}
DEFAULT_STEM = "image"


def image_format(data: bytes) -> str | None:
    """The format the bytes start as, or None when they start as no image we take."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
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
