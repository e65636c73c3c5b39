"""The settler's shortcut: a file its writer let go of, whose bytes end where its format
says, is taken at once; anything else waits the settle time."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest
from PIL import Image

from cutout.images import register_plugins
from watcher.complete import is_whole
from watcher.settle import CLOSED_QUIET_SECONDS, Settler

FORMATS = {
    "JPEG": "jpg",
    "PNG": "png",
    "GIF": "gif",
    "WEBP": "webp",
    "BMP": "bmp",
    "HEIF": "heic",
    "AVIF": "avif",
}


def encoded(fmt: str) -> bytes:
    register_plugins()  # HEIF's encoder (pillow-heif), made here by the real library
    buf = io.BytesIO()
    Image.effect_noise((64, 48), 40).convert("RGB").save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_whole_file_is_told_from_a_cut_one(tmp_path: Path, fmt: str) -> None:
    data = encoded(fmt)
    whole = tmp_path / f"whole.{FORMATS[fmt]}"
    whole.write_bytes(data)
    assert is_whole(whole) is True
    for cut in (len(data) // 3, len(data) - 1):
        part = tmp_path / f"part.{FORMATS[fmt]}"
        part.write_bytes(data[:cut])
        assert is_whole(part) is False, cut


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_a_phone_photo_cut_between_its_boxes_is_not_whole(tmp_path: Path, fmt: str) -> None:
    """Cut where a box ends, before the last: every box there is whole, the image is not."""
    data = encoded(fmt)
    ends, offset = [], 0
    while offset < len(data):
        offset += int.from_bytes(data[offset : offset + 4], "big")
        ends.append(offset)
    assert ends[-1] == len(data) and len(ends) >= 3  # ftyp, meta, mdat at least
    for end in ends[:-1]:
        part = tmp_path / f"part.{FORMATS[fmt]}"
        part.write_bytes(data[:end])
        assert is_whole(part) is False, end


def test_formats_without_an_end_and_odd_files_are_unknown(tmp_path: Path) -> None:
    tiff = tmp_path / "a.tif"
    tiff.write_bytes(encoded("TIFF"))
    assert is_whole(tiff) is None
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    assert is_whole(text) is None
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    assert is_whole(fifo) is None  # and it did not block on the FIFO
    assert is_whole(tmp_path / "gone.jpg") is False


def test_settler_takes_a_whole_file_renamed_into_place_at_once(tmp_path: Path) -> None:
    settler = Settler(60.0)
    done = tmp_path / "done.jpg"
    done.write_bytes(encoded("JPEG"))
    half = tmp_path / "half.jpg"
    half.write_bytes(encoded("JPEG")[:200])
    tiff = tmp_path / "done.tif"
    tiff.write_bytes(encoded("TIFF"))
    for path in (done, half, tiff):
        settler.offer(path, "renamed")
    assert [p for p, _ in settler.ready(10)] == [done]
    assert len(settler) == 2  # the cut JPEG and the TIFF wait the settle time


def closed_and_seen(tmp_path: Path) -> tuple[Settler, Path, float]:
    """A whole JPEG its writer closed, looked at once: its quiet time runs from then."""
    settler = Settler(60.0)
    path = tmp_path / "a.jpg"
    path.write_bytes(encoded("JPEG"))
    settler.offer(path, "closed")
    start = time.monotonic()
    assert settler.ready(10, now=start) == []
    return settler, path, start


def test_a_closed_file_waits_a_quiet_time_that_each_change_restarts(tmp_path: Path) -> None:
    # shutil.copy closes the file, then sets its mode by path: taken in between, the
    # writer's chmod fails. The quiet time covers that gap; the chmod starts it again.
    settler, path, start = closed_and_seen(tmp_path)
    quiet = start + CLOSED_QUIET_SECONDS
    os.chmod(path, 0o640)  # the copy tool's copymode: a new ctime, and an event
    settler.offer(path, "changed")
    assert settler.ready(10, now=quiet) == []  # restarted: the mode changed just now
    assert settler.ready(10, now=quiet + CLOSED_QUIET_SECONDS - 0.01) == []
    assert [p for p, _ in settler.ready(10, now=quiet + CLOSED_QUIET_SECONDS + 0.01)] == [path]


def test_a_metadata_change_without_an_event_restarts_the_quiet_time(tmp_path: Path) -> None:
    settler, path, start = closed_and_seen(tmp_path)
    os.utime(path, ns=(1, 1))  # copy2's copystat, its event not seen yet
    later = start + CLOSED_QUIET_SECONDS
    assert settler.ready(10, now=later) == []
    assert [p for p, _ in settler.ready(10, now=later + CLOSED_QUIET_SECONDS + 0.01)] == [path]


def test_a_file_written_again_after_its_close_waits_while_it_is_cut(tmp_path: Path) -> None:
    settler = Settler(60.0)
    path = tmp_path / "a.png"
    path.write_bytes(encoded("PNG")[:100])  # closed, then
    settler.offer(path, "closed")
    settler.offer(path, "changed")  # modified again: being rewritten
    start = time.monotonic()
    assert settler.ready(10, now=start + 5) == []
    path.write_bytes(encoded("PNG"))
    settler.offer(path, "changed")  # the mode set after the close: still let go
    assert settler.ready(10, now=start + 5) == []
    assert [p for p, _ in settler.ready(10, now=start + 5.01 + CLOSED_QUIET_SECONDS)] == [path]


def test_a_renamed_file_touched_again_waits_as_a_closed_one(tmp_path: Path) -> None:
    settler = Settler(60.0)
    path = tmp_path / "a.jpg"
    path.write_bytes(encoded("JPEG"))
    settler.offer(path, "renamed")
    settler.offer(path, "changed")  # its mode set by path after the rename
    start = time.monotonic()
    assert settler.ready(10, now=start) == []
    assert [p for p, _ in settler.ready(10, now=start + CLOSED_QUIET_SECONDS + 0.01)] == [path]


def test_without_the_hint_a_whole_file_still_waits(tmp_path: Path) -> None:
    settler = Settler(0.3)
    path = tmp_path / "a.jpg"
    path.write_bytes(encoded("JPEG"))
    settler.offer(path)
    start = time.monotonic()
    assert settler.ready(10, now=start) == []  # first look: only now is its size known
    assert settler.ready(10, now=start + 0.29) == []
    assert [p for p, _ in settler.ready(10, now=start + 0.31)] == [path]
