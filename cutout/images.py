"""Decoding any input into one 8-bit sRGB image, and encoding results to bytes.

Everything that can be wrong with an input image surfaces here as an ImageError that names
the image and the reason, so the CLI and the worker never see Pillow's own exception zoo.
"""

from __future__ import annotations

import io
import logging
import os
import re
import secrets
import stat
import struct
import warnings
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, TypeAlias, cast

import numpy as np
import numpy.typing as npt
from PIL import ExifTags, Image, ImageCms, UnidentifiedImageError

from cutout import png
from cutout.errors import (
    EmptyImageError,
    ImageError,
    ImageTooLargeError,
    NotAnImageError,
    OutputFormatError,
    TruncatedImageError,
    UnsupportedImageError,
)
from cutout.options import EncodeOptions, parse_format

DEFAULT_ENCODE = EncodeOptions()

ImageInput: TypeAlias = (
    str | os.PathLike[str] | bytes | IO[bytes] | Image.Image | np.ndarray[Any, Any]
)

_log = logging.getLogger(__name__)

# What Pillow raises for damaged data, depending on the plugin and on where the data ends.
_CORRUPT = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)
_SIXTEEN_BIT = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
# Phones store gain maps and depth maps as extra MPO frames; those are not animations.
_STILL_FORMATS_WITH_FRAMES = frozenset({"MPO"})
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# ICC colour space of the profile -> (image mode it applies to, mode of the sRGB result).
_ICC_MODES = {"RGB ": ("RGB", "RGB"), "CMYK": ("CMYK", "RGB"), "GRAY": ("L", "RGB")}
_WEBP_MAX_SIDE = 16383
_JPEG_MAX_SIDE = 65535


@dataclass
class Decoded:
    image: Image.Image  # RGB, or RGBA when the input has real transparency; sRGB, upright
    source: str  # the name used in messages
    frames: int  # frames in the input; 1 for stills
    # The pixels as stored, before the ICC conversion, when there was one. U^2-Net was
    # trained on pixels read without colour management and rembg feeds it those: on
    # pascal_s's Adobe RGB photos the converted pixels give slightly worse masks.
    unmanaged: Image.Image | None = None

    @property
    def model_input(self) -> Image.Image:
        return self.unmanaged if self.unmanaged is not None else self.image


def decode(data: ImageInput, *, max_pixels: int, source: str | None = None) -> Decoded:
    """Open, check and normalise one input; a PIL image given in is never modified.

    The format is read from the content, never from a file's name: a JPEG named `.png`
    decodes as the JPEG it is.

    The result may be the very object passed in when it needs no change: treat it as
    read-only. Float data is read as 0..1 (a PIL "F" image whose values exceed 1 as 0..255,
    Pillow's own convention) and 16-bit data keeps its top 8 bits.
    """
    if isinstance(data, Image.Image):
        return _decode_pil(data, source or "<image>", max_pixels)
    if isinstance(data, np.ndarray):
        name = source or "<array>"
        return Decoded(_from_array(data, name, max_pixels), name, 1)
    if isinstance(data, bytes | bytearray | memoryview):
        name = source or "<bytes>"
        if not len(data):
            raise EmptyImageError(name, "no data (0 bytes)")
        return _decode_stream(io.BytesIO(data), name, max_pixels)
    if hasattr(data, "read"):  # an open binary file: read from where it stands, not closed
        stream = cast(IO[bytes], data)
        named = getattr(stream, "name", None)  # a path, or an int for os.fdopen's files
        name = source or (os.fsdecode(named) if isinstance(named, str | bytes) else "<stream>")
        with suppress(AttributeError, OSError):  # not every stream is a file
            _check_not_empty(stream.fileno(), name)
        return _decode_stream(stream, name, max_pixels)
    path = os.fspath(data)
    name = source or path
    with _open_file(path, name) as fp:
        return _decode_stream(fp, name, max_pixels)


def _open_file(path: str, name: str) -> IO[bytes]:
    try:
        fp = open(path, "rb")  # noqa: SIM115 - the caller closes it
    except FileNotFoundError as e:
        raise ImageError(name, "no such file") from e
    except IsADirectoryError as e:
        raise ImageError(name, "is a directory, not an image file") from e
    except OSError as e:
        raise ImageError(name, f"cannot read the file: {e.strerror or e}") from e
    try:
        _check_not_empty(fp.fileno(), name)
    except EmptyImageError:
        fp.close()
        raise
    return fp


def _check_not_empty(fd: int, name: str) -> None:
    info = os.fstat(fd)
    if info.st_size == 0 and stat.S_ISREG(info.st_mode):  # pipes report 0 too
        raise EmptyImageError(name, "the file is empty (0 bytes)")


@lru_cache(maxsize=1)
def register_plugins() -> None:
    """HEIC/HEIF (what phones save) through pillow-heif, registered with Pillow once per
    process, on the first decode; AVIF is Pillow's own. Thumbnails, depth and auxiliary
    images are never decoded: only the primary image is used."""
    from pillow_heif import register_heif_opener

    register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)


def _decode_stream(fp: IO[bytes], name: str, max_pixels: int) -> Decoded:
    register_plugins()
    with _reading(name, max_pixels):
        im = Image.open(fp)  # reads the header only
        _check_pixels(im.size, name, max_pixels)
        frames = int(getattr(im, "n_frames", 1))
        im.load()  # the first frame: Image.open leaves the file at frame 0
    if frames > 1:
        _note_frames(im, name, frames, current=0)
    image, unmanaged = _normalise(im, name)
    return Decoded(image, name, frames, unmanaged)


def _decode_pil(im: Image.Image, name: str, max_pixels: int) -> Decoded:
    _check_pixels(im.size, name, max_pixels)
    with _reading(name, max_pixels):
        frames = int(getattr(im, "n_frames", 1))
        im.load()  # a lazily opened image may still hold undecoded (and damaged) data
    if frames > 1:
        # The caller chose the frame by seeking; moving it would change their object.
        _note_frames(im, name, frames, current=im.tell())
    image, unmanaged = _normalise(im, name)
    return Decoded(image, name, frames, unmanaged)


@contextmanager
def _reading(name: str, max_pixels: int) -> Iterator[None]:
    """Turn Pillow's failures into ImageErrors and mute its bomb warning.

    We check max_pixels ourselves right after the header is read, so Pillow's warning
    (over Image.MAX_IMAGE_PIXELS) is noise; only its hard error (over twice that) can fire
    before our check, and it is translated. The global limit is left alone for other code.
    catch_warnings swaps the process-wide filter list; the worst a thread race can do is
    leave this one ignore filter installed.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # Pillow's TIFF reader only warns on missing data and returns a partial image.
            warnings.filterwarnings("error", "Truncated File Read", UserWarning)
            yield
    except UserWarning as e:
        raise TruncatedImageError(name, f"truncated image data ({e})") from e
    except UnidentifiedImageError as e:
        raise NotAnImageError(name, "not an image, or in a format Pillow cannot read") from e
    except Image.DecompressionBombError as e:
        raise ImageTooLargeError(name, _bomb_reason(str(e), max_pixels)) from e
    except _CORRUPT as e:
        raise TruncatedImageError(name, f"truncated or corrupt image data ({e})") from e


def _bomb_reason(message: str, max_pixels: int) -> str:
    # Pillow raised before we saw the size; its message is the only place that has it.
    found = re.search(r"\((\d+) pixels\)", message)
    limit = min(max_pixels, 2 * (Image.MAX_IMAGE_PIXELS or 0))
    size = _mp(int(found.group(1))) if found else "the image"
    return f"{size} exceeds the limit of {_mp(limit)}"


def _check_pixels(size: tuple[int, int], name: str, max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageTooLargeError(
            name, f"{width}x{height} = {_mp(width * height)} exceeds the limit of {_mp(max_pixels)}"
        )


def _mp(pixels: int) -> str:
    return f"{pixels / 1e6:.1f} MP"


def _note_frames(im: Image.Image, name: str, frames: int, current: int) -> None:
    if im.format in _STILL_FORMATS_WITH_FRAMES:
        _log.debug("%s: %s with %d frames; using the first", name, im.format, frames)
    elif current == 0:
        _log.warning("%s: animated image with %d frames; using the first", name, frames)
    else:
        _log.warning("%s: animated image with %d frames; using frame %d", name, frames, current + 1)


def _normalise(im: Image.Image, name: str) -> tuple[Image.Image, Image.Image | None]:
    """8-bit RGB(A) in sRGB, upright, and the unmanaged pixels when a profile converted them.

    Each step returns its input when it has nothing to do.
    """
    orientation = _orientation(im, name)  # before conversions, which drop TIFF tags
    icc = im.info.get("icc_profile")
    stored = _drop_opaque_alpha(_to_8bit(im, name))
    managed = _to_srgb(stored, icc, name) if icc else stored
    method = _TRANSPOSE.get(orientation)

    def upright(image: Image.Image) -> Image.Image:
        image = _to_rgb(image)
        return image.transpose(method) if method is not None else image

    return upright(managed), None if managed is stored else upright(stored)


def _orientation(im: Image.Image, name: str) -> int:
    try:
        value = im.getexif().get(ExifTags.Base.Orientation, 1)
    except _CORRUPT as e:  # a broken EXIF block should not cost the whole image
        _log.debug("%s: unreadable EXIF ignored (%s)", name, e)
        return 1
    return value if isinstance(value, int) else 1


def _to_8bit(im: Image.Image, name: str) -> Image.Image:
    """One of L, LA, RGB, RGBA or CMYK, 8 bits per channel, transparency as an alpha band."""
    mode = im.mode
    if mode in ("L", "RGB") and "transparency" in im.info:
        return im.convert("RGBA")  # a tRNS colour key
    if mode in ("L", "LA", "RGB", "RGBA", "CMYK"):
        return im
    if mode in _SIXTEEN_BIT:
        # Pillow's own I;16 -> L conversion clips everything above 255 to white. Mode I
        # (32-bit) holds 16-bit samples too, from older Pillows and from TIFF.
        values = np.asarray(im)
        if mode == "I":
            values = np.clip(values, 0, 65535).astype(np.uint16)
        return Image.fromarray(_to_uint8(values, name))
    if mode == "F":
        values = np.asarray(im)
        return Image.fromarray(_to_uint8(values / 255 if values.max() > 1 else values, name))
    if mode == "La":
        return im.convert("LA")  # Pillow has no La -> RGBA conversion
    target = "RGBA" if im.has_transparency_data else "RGB"
    try:
        return im.convert(target)
    except ValueError as e:
        raise UnsupportedImageError(name, f"cannot convert colour mode {mode} to {target}") from e


def _drop_opaque_alpha(im: Image.Image) -> Image.Image:
    # Many PNGs carry an alpha band that is 255 everywhere; without it JPEG output works.
    if im.mode in ("RGBA", "LA") and _is_opaque(im):
        return im.convert(im.mode[:-1])
    return im


def _is_opaque(im: Image.Image) -> bool:
    """Whether no pixel is even partly transparent, whatever carries the transparency."""
    if not im.has_transparency_data:
        return True
    if im.mode not in ("RGBA", "LA"):
        im = im.convert("RGBA")  # a palette alpha or a colour key
    low, _ = im.getchannel("A").getextrema()
    return low == 255


def _to_srgb(im: Image.Image, icc: bytes, name: str) -> Image.Image:
    try:
        transform = _srgb_transform(icc, im.mode)
    except (OSError, ImageCms.PyCMSError) as e:
        _log.warning("%s: unusable ICC profile ignored (%s)", name, e)
        return im
    return transform.apply(im) if transform is not None else im


@lru_cache(maxsize=16)
def _srgb_transform(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """The cached transform to sRGB; None when the profile is sRGB or for another mode.

    Cached because a batch usually shares one profile (Display P3 for every iPhone photo)
    and building a transform costs more than applying it to a small image.
    """
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    if "sRGB" in (profile.profile.profile_description or ""):
        return None
    in_mode, out_mode = _ICC_MODES.get(profile.profile.xcolor_space, ("", ""))
    if mode == "RGBA" and in_mode == "RGB":
        in_mode = out_mode = "RGBA"  # lcms carries the alpha band through unchanged
    if mode != in_mode:
        return None
    # NOCACHE: the cached transform is shared by threads, and lcms's pixel cache is not.
    return ImageCms.buildTransform(
        profile, _srgb_profile(), in_mode, out_mode, flags=ImageCms.Flags.NOCACHE
    )


@lru_cache(maxsize=1)
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("RGB", "RGBA"):
        return im
    return im.convert("RGBA" if im.mode == "LA" else "RGB")


def _from_array(array: npt.NDArray[Any], name: str, max_pixels: int) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (2, 3, 4))):
        raise UnsupportedImageError(
            name, f"array of shape {array.shape}; expected HxW, HxWx3 or HxWx4"
        )
    height, width = array.shape[:2]
    if width == 0 or height == 0:
        raise EmptyImageError(name, f"array of shape {array.shape} has no pixels")
    _check_pixels((width, height), name, max_pixels)
    return _to_rgb(_drop_opaque_alpha(Image.fromarray(_to_uint8(array, name))))


def _to_uint8(array: npt.NDArray[Any], name: str) -> npt.NDArray[np.uint8]:
    """uint8 as is, uint16 by its top byte (not clipped), floats from 0..1, bools as 0/255."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        return (array >> 8).astype(np.uint8)
    if array.dtype.kind == "f":
        clean = np.nan_to_num(array.astype(np.float32, copy=False), nan=0.0)
        return (np.clip(clean, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * np.uint8(255)
    # Other integers are refused rather than guessed: int64 arrays usually hold 0..255.
    raise UnsupportedImageError(
        name, f"array dtype {array.dtype} is not supported; use uint8, uint16 or float in 0..1"
    )


def encode(
    img: Image.Image, fmt: str, options: EncodeOptions = DEFAULT_ENCODE, *, source: str = "output"
) -> bytes:
    """The image in the format, pixels as given: no colour management, no metadata."""
    fmt = parse_format(fmt)
    if fmt == "png" and png.supports(img):
        return png.encode(img, options.png_compress_level)
    out = io.BytesIO()
    if fmt == "png":  # modes our writer does not take (1, P, I;16...): Pillow's, zlib's 0..9
        level = min(options.png_compress_level, 9)
        img.save(out, "PNG", compress_level=level, optimize=False)
    elif fmt == "webp":
        _check_side(img, _WEBP_MAX_SIDE, "WebP", source)
        if "A" in img.getbands():
            # exact: keep the colour under transparent pixels, as PNG does, so it is lossless.
            img.save(out, "WEBP", lossless=True, exact=True)
        else:
            img.save(out, "WEBP", quality=options.webp_quality)
    else:
        _check_side(img, _JPEG_MAX_SIDE, "JPEG", source)
        _opaque(img, source).save(out, "JPEG", quality=options.jpeg_quality, optimize=False)
    return out.getvalue()


def _check_side(img: Image.Image, limit: int, fmt_name: str, source: str) -> None:
    if max(img.size) > limit:
        width, height = img.size
        raise OutputFormatError(
            f"{source}: {width}x{height} is too large for {fmt_name} "
            f"(at most {limit} pixels a side); choose png"
        )


def _opaque(img: Image.Image, source: str) -> Image.Image:
    """The image without its alpha band, which must be fully opaque; JPEG has no alpha."""
    if img.mode in ("RGB", "L"):
        return img
    if not _is_opaque(img):
        raise OutputFormatError(
            f"{source}: JPEG cannot store transparency; "
            "choose png or webp, or an opaque background with --bg"
        )
    return img.convert("L" if img.mode in ("1", "LA", "La") else "RGB")


def write_atomic(
    path: Path,
    data: bytes,
    *,
    like: Path | os.stat_result | None = None,
    dir_fd: int | None = None,
    replace: bool = True,
    attributes: Mapping[str, bytes] | None = None,
) -> None:
    """Replace path with data so that readers see the old file or the new one, never half.

    The temporary name starts with "." and ends with ".tmp" so that folder watchers (ours
    included) skip it; it is created with os.open so the umask applies, unlike mkstemp's 0600.
    With `like` (the input the output is made from, or its stat), the file takes like's
    permission bits and, where the process may, its group: a group-readable shared inbox
    gives group-readable outputs. They are set before a byte is written, on a file only its
    owner can open until then, so neither the temporary file nor the output ever has broader
    access than `like`. A symlink at `path` is replaced by the file, never followed (rename
    does not follow). If `like` is gone by then, the umask applies.
    With `dir_fd` (an open folder), the file is written into that very folder under path's
    name, wherever the folder's path may point by then.
    With `replace=False` an existing file at `path` is never replaced: FileExistsError,
    even when it appears while the data is written (the file is linked into place).
    `attributes`: extended attributes for the file (`user.` names), where the file system
    keeps them; silently skipped where it does not.
    """
    path = Path(path)
    source = None
    if isinstance(like, os.stat_result):
        source = like
    elif like is not None:
        with suppress(FileNotFoundError):  # gone since it was read: the output still counts
            source = os.stat(like)
    # At most 200 bytes of the name: with the dot and the suffix, within any file system's
    # 255-byte limit whatever the name's script (a CJK character is 3 bytes in UTF-8).
    head = os.fsencode(path.name)[:200].decode("utf-8", "ignore")
    tmp_name = f".{head}.{secrets.token_hex(4)}.tmp"
    # In an open folder, names are taken relative to it; else the paths as given.
    name = path.name if dir_fd is not None else str(path)
    tmp = tmp_name if dir_fd is not None else str(path.with_name(tmp_name))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o666 if source is None else 0o600, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as f:
            if source is not None:
                _take_access(f.fileno(), source)
            for key, value in (attributes or {}).items():
                with suppress(OSError, AttributeError):  # no xattrs here (or no os.setxattr)
                    os.setxattr(f.fileno(), key, value)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        else:  # a second name for our own file: fails, atomically, if the name is taken
            os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            os.unlink(tmp, dir_fd=dir_fd)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise


def _take_access(fd: int, source: os.stat_result) -> None:
    """The source's group (first: a chown may clear mode bits), then its permission bits."""
    if os.name != "posix":
        return
    # Only root, or an owner who is a member of that group, may give a file another group.
    with suppress(PermissionError):
        os.fchown(fd, -1, source.st_gid)
    os.fchmod(fd, stat.S_IMODE(source.st_mode) & 0o777)
