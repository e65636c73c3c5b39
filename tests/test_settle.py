"""The settler's shortcut: a file its writer let go of, whose bytes end where its format
says, is taken at once; anything else waits the settle time."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest
from PIL import Image

from watcher.complete import is_whole
from watcher.settle import Settler

FORMATS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp"}


def encoded(fmt: str) -> bytes:
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


def test_settler_takes_a_let_go_whole_file_at_once(tmp_path: Path) -> None:
    settler = Settler(60.0)
    done = tmp_path / "done.jpg"
    done.write_bytes(encoded("JPEG"))
    half = tmp_path / "half.jpg"
    half.write_bytes(encoded("JPEG")[:200])
    tiff = tmp_path / "done.tif"
    tiff.write_bytes(encoded("TIFF"))
    for path in (done, half, tiff):
        settler.offer(path, done_writing=True)
    assert [p for p, _ in settler.ready(10)] == [done]
    assert len(settler) == 2  # the cut JPEG and the TIFF wait the settle time


def test_a_file_written_again_after_its_close_waits_while_it_is_cut(tmp_path: Path) -> None:
    settler = Settler(60.0)
    path = tmp_path / "a.png"
    path.write_bytes(encoded("PNG")[:100])  # closed, then
    settler.offer(path, done_writing=True)
    settler.offer(path)  # modified again: being rewritten
    assert settler.ready(10) == []
    path.write_bytes(encoded("PNG"))
    settler.offer(path)  # the mode set after the close: still let go
    assert [p for p, _ in settler.ready(10)] == [path]


def test_without_the_hint_a_whole_file_still_waits(tmp_path: Path) -> None:
    settler = Settler(0.3)
    path = tmp_path / "a.jpg"
    path.write_bytes(encoded("JPEG"))
    settler.offer(path)
    assert settler.ready(10) == []  # first look: only now is its size known
    assert settler.ready(10) == []
    time.sleep(0.35)
    assert [p for p, _ in settler.ready(10)] == [path]
