"""Odd image files built in memory: hand-made ICC profiles, 16-bit and lying PNGs, EXIF.

Pillow writes most formats but not 16-bit RGB PNGs, PNG headers that lie about their size,
or ICC profiles other than sRGB/LAB/XYZ; those are assembled here byte by byte.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image

XYZ = tuple[float, float, float]

# The sRGB primaries adapted to D50, as in every sRGB ICC profile.
SRGB_RED: XYZ = (0.4361, 0.2225, 0.0139)
SRGB_GREEN: XYZ = (0.3851, 0.7169, 0.0971)
SRGB_BLUE: XYZ = (0.1431, 0.0606, 0.7141)
D50: XYZ = (0.9642, 1.0, 0.8249)


def save(image: Image.Image, fmt: str, **params: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def jpeg_with_orientation(image: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return save(image, "JPEG", quality=95, exif=exif.tobytes())


# --- ICC profiles -----------------------------------------------------------------------


def rgb_profile(
    red: XYZ = SRGB_RED,
    green: XYZ = SRGB_GREEN,
    blue: XYZ = SRGB_BLUE,
    gamma: float = 2.2,
    description: str = "Test RGB",
) -> bytes:
    """A v2 matrix/TRC display profile; pass other primaries to make a non-sRGB space."""
    curve = _curve(gamma)
    tags = {
        b"desc": _text_description(description),
        b"wtpt": _xyz(D50),
        b"rXYZ": _xyz(red),
        b"gXYZ": _xyz(green),
        b"bXYZ": _xyz(blue),
        b"rTRC": curve,
        b"gTRC": curve,
        b"bTRC": curve,
    }
    return _profile(b"mntr", b"RGB ", tags)


def gray_profile(gamma: float, description: str = "Test Gray") -> bytes:
    tags = {b"desc": _text_description(description), b"wtpt": _xyz(D50), b"kTRC": _curve(gamma)}
    return _profile(b"mntr", b"GRAY", tags)


def cmyk_profile(rgb_of_cmyk: Callable[[int, int, int, int], tuple[int, int, int]]) -> bytes:
    """A CMYK printer profile whose 2x2x2x2 grid maps each ink corner to an sRGB colour.

    Only the corners (each ink 0 or 100 %) are exact; between them lcms interpolates.
    """
    grid = []
    for c in (0, 1):
        for m in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    grid.append(_srgb_to_xyz_d50(rgb_of_cmyk(c, m, y, k)))
    tags = {
        b"desc": _text_description("Test CMYK"),
        b"wtpt": _xyz(D50),
        b"A2B0": _lut16(grid, inputs=4, outputs=3),
    }
    return _profile(b"prtr", b"CMYK", tags)


def _profile(device_class: bytes, colour_space: bytes, tags: dict[bytes, bytes]) -> bytes:
    table_size = 4 + 12 * len(tags)
    offset = 128 + table_size
    entries, blobs = [], []
    for signature, blob in tags.items():
        padded = blob + b"\0" * (-len(blob) % 4)
        entries.append(struct.pack(">4sII", signature, offset, len(blob)))
        blobs.append(padded)
        offset += len(padded)
    header = struct.pack(
        ">I4sI4s4s4s12s4s4sI4s4sQI12s4s16s28s",
        offset,  # total size
        b"none",
        0x02100000,  # version 2.1
        device_class,
        colour_space,
        b"XYZ ",
        b"\0" * 12,
        b"acsp",
        b"APPL",
        0,
        b"none",
        b"none",
        0,
        0,  # perceptual
        b"".join(struct.pack(">i", _s15(v)) for v in D50),
        b"none",
        b"\0" * 16,
        b"\0" * 28,
    )
    assert len(header) == 128
    table = struct.pack(">I", len(tags)) + b"".join(entries)
    return header + table + b"".join(blobs)


def _s15(value: float) -> int:
    return round(value * 65536)


def _xyz(value: XYZ) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(struct.pack(">i", _s15(v)) for v in value)


def _curve(gamma: float) -> bytes:
    return b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256))


def _text_description(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\0"
    return (
        b"desc\0\0\0\0"
        + struct.pack(">I", len(ascii_text))
        + ascii_text
        + struct.pack(">II", 0, 0)  # no Unicode description
        + struct.pack(">HB", 0, 0)
        + b"\0" * 67  # no ScriptCode description
    )


def _lut16(grid: Sequence[XYZ], inputs: int, outputs: int) -> bytes:
    identity_matrix = [1, 0, 0, 0, 1, 0, 0, 0, 1]
    head = b"mft2\0\0\0\0" + struct.pack(">BBBB", inputs, outputs, 2, 0)
    head += b"".join(struct.pack(">i", _s15(v)) for v in identity_matrix)
    head += struct.pack(">HH", 2, 2)  # two-entry (identity) input and output curves
    input_curves = struct.pack(">HH", 0, 65535) * inputs
    # lut16 encodes PCS XYZ as u1Fixed15: 1.0 is 0x8000.
    clut = b"".join(struct.pack(">H", min(65535, round(v * 32768))) for xyz in grid for v in xyz)
    output_curves = struct.pack(">HH", 0, 65535) * outputs
    return head + input_curves + clut + output_curves


def _srgb_to_xyz_d50(rgb: tuple[int, int, int]) -> XYZ:
    # Corner colours are 0 or 255 only, where the sRGB curve is the identity.
    linear = [v / 255 for v in rgb]
    x, y, z = (
        sum(p[i] * c for p, c in zip((SRGB_RED, SRGB_GREEN, SRGB_BLUE), linear, strict=True))
        for i in range(3)
    )
    return (x, y, z)


# --- PNG by hand --------------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes) -> bytes:
    """A PNG from raw scanlines (each already prefixed with its filter byte)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        _PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows))
        + _chunk(b"IEND", b"")
    )


def png_rgb16(pixels: np.ndarray[Any, np.dtype[np.uint16]]) -> bytes:
    """A 16-bit-per-channel RGB PNG, which Pillow cannot write itself."""
    height, width, _ = pixels.shape
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in pixels)
    return png(width, height, 16, 2, rows)


def png_claiming_size(width: int, height: int) -> bytes:
    """A few dozen bytes whose header claims width x height RGB pixels: a bomb's fuse."""
    return png(width, height, 8, 2, b"\0")
