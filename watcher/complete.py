"""Whether a file's bytes end where its format says the file ends.

The settle time (a quiet period) is what keeps half-written files out in general; but a
file that was closed after writing, or renamed into the inbox, and whose last bytes are
its format's end, is whole now: waiting longer would only add latency. Formats with no
such end (TIFF, for one) answer None and wait the settle time. HEIF and AVIF end where
their boxes' declared sizes add up to.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk: empty, fixed CRC


def is_whole(path: Path) -> bool | None:
    """True when the file ends with its format's end marker or at the length its header
    declares, False when it does not (yet), None when the format has neither."""
    try:
        # Non-blocking, and only a regular file is read: a FIFO must not hang the watcher.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None
            head = f.read(32)
            size = st.st_size
            if head[4:8] == b"ftyp":  # HEIF/HEIC, AVIF: a sequence of boxes
                return _boxes_whole(f, size)
            f.seek(max(0, size - len(PNG_END)))
            tail = f.read()
    except OSError:
        return False
    if head.startswith(b"\xff\xd8"):
        return tail.endswith(b"\xff\xd9")  # EOI; scan data cannot hold it (0xFF is stuffed)
    if head.startswith(PNG_SIGNATURE):
        return tail == PNG_END
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return tail.endswith(b"\x3b")  # the trailer
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _u32le(head, 4) + 8 == size
    if head[:2] == b"BM" and len(head) >= 6:
        return _u32le(head, 2) == size
    return None


# ISO base media files (HEIF/HEIC, AVIF): whole when the top-level boxes, each declaring its
# size, end exactly at the file's end, and both the image's description (meta) and its data
# (mdat) are among them, whichever order the writer chose.
BOX_LIMIT = 64  # top-level boxes walked at most: phones write about four
NEEDED_BOXES = frozenset({b"meta", b"mdat"})


def _boxes_whole(f: BinaryIO, size: int) -> bool | None:
    offset, seen = 0, set[bytes]()
    for _ in range(BOX_LIMIT):
        if offset == size:
            return seen >= NEEDED_BOXES
        f.seek(offset)
        header = f.read(16)
        if len(header) < 8:
            return False
        length, kind = int.from_bytes(header[:4], "big"), header[4:8]
        if length == 1:  # a 64-bit size follows the type
            if len(header) < 16:
                return False
            length = int.from_bytes(header[8:16], "big")
        elif length == 0:  # "to the end of the file": declares no end to wait for
            return None
        if length < 8:
            return None  # not a box this walk understands: the settle time decides
        seen.add(kind)
        offset += length
        if offset > size:
            return False
    return None


def _u32le(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 4], "little")
