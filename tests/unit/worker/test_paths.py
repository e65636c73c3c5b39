"""Confinement holds between the check and the use: a file or folder swapped for a symlink
after a job's paths were checked is refused, or written in the folder that was checked.

Real files and symlinks on a real filesystem; the swaps are made between the calls that a
worker makes in that order (check, then open), the one window an attacker could use.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cutout.images import write_atomic
from worker.paths import PathRefused, input_file, open_input, output_file, output_folder


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    names = ("inbox", "outbox", "outside")
    made = {name: tmp_path / name for name in names}
    for folder in made.values():
        folder.mkdir()
    (made["outside"] / "secret.jpg").write_bytes(b"not yours")
    return made


def roots(folders: dict[str, Path]) -> list[Path]:
    return [folders["inbox"], folders["outbox"]]


def assert_refused_and_nothing_outside(target: Path, folders: dict[str, Path], reason: str) -> None:
    with (
        pytest.raises(PathRefused, match=reason),
        output_folder(target.parent, roots(folders)) as fd,
    ):
        write_atomic(target, b"cut-out", dir_fd=fd)
    assert sorted(p.name for p in folders["outside"].iterdir()) == ["secret.jpg"]


def test_the_checked_input_is_opened_with_its_stat(folders: dict[str, Path]) -> None:
    source = folders["inbox"] / "a.jpg"
    source.write_bytes(b"image bytes")
    path = input_file("a.jpg", folders["inbox"], roots(folders))
    stream, info = open_input(path, "a.jpg", roots(folders))
    with stream:
        assert stream.read() == b"image bytes"
    assert info.st_ino == source.stat().st_ino


def test_an_input_swapped_for_a_symlink_after_the_check_is_not_read(
    folders: dict[str, Path],
) -> None:
    source = folders["inbox"] / "a.jpg"
    source.write_bytes(b"image bytes")
    path = input_file("a.jpg", folders["inbox"], roots(folders))
    swap = folders["inbox"] / ".swap"
    swap.symlink_to(folders["outside"] / "secret.jpg")
    os.replace(swap, source)
    with pytest.raises(PathRefused, match=r"a\.jpg: refused, replaced by a symlink"):
        open_input(path, "a.jpg", roots(folders))


def test_an_input_folder_swapped_for_a_symlink_after_the_check_is_not_read(
    folders: dict[str, Path],
) -> None:
    (folders["inbox"] / "shoes").mkdir()
    (folders["inbox"] / "shoes" / "secret.jpg").write_bytes(b"image bytes")
    path = input_file("shoes/secret.jpg", folders["inbox"], roots(folders))
    (folders["inbox"] / "shoes").rename(folders["inbox"] / "moved")
    (folders["inbox"] / "shoes").symlink_to(folders["outside"])
    with pytest.raises(PathRefused, match="moved outside the allowed folders"):
        open_input(path, "shoes/secret.jpg", roots(folders))


def test_an_output_folder_swapped_for_a_symlink_after_the_check_gets_nothing(
    folders: dict[str, Path],
) -> None:
    (folders["outbox"] / "shoes").mkdir()
    target = output_file("shoes/red.png", folders["outbox"], roots(folders))
    (folders["outbox"] / "shoes").rename(folders["outbox"] / "moved")
    (folders["outbox"] / "shoes").symlink_to(folders["outside"])
    assert_refused_and_nothing_outside(target, folders, "shoes was replaced by a symlink")


def test_missing_output_folders_are_made_inside_the_roots(folders: dict[str, Path]) -> None:
    target = output_file("a/b/c/red.png", folders["outbox"], roots(folders))
    with output_folder(target.parent, roots(folders)) as fd:
        write_atomic(target, b"cut-out", dir_fd=fd)
    assert (folders["outbox"] / "a" / "b" / "c" / "red.png").read_bytes() == b"cut-out"


def test_a_folder_made_a_symlink_before_the_worker_makes_it_gets_nothing(
    folders: dict[str, Path],
) -> None:
    # Checked while "a" did not exist yet; then someone makes it a symlink out. Making the
    # folders by path (mkdir -p) would create outside/b; walking them does not.
    target = output_file("a/b/red.png", folders["outbox"], roots(folders))
    (folders["outbox"] / "a").symlink_to(folders["outside"])
    assert_refused_and_nothing_outside(target, folders, "a was replaced by a symlink")


def test_an_output_folder_swapped_once_open_still_gets_the_file(
    folders: dict[str, Path],
) -> None:
    (folders["outbox"] / "shoes").mkdir()
    target = output_file("shoes/red.png", folders["outbox"], roots(folders))
    with output_folder(target.parent, roots(folders)) as fd:
        (folders["outbox"] / "shoes").rename(folders["outbox"] / "moved")
        (folders["outbox"] / "shoes").symlink_to(folders["outside"])
        write_atomic(target, b"cut-out", dir_fd=fd)
    assert (folders["outbox"] / "moved" / "red.png").read_bytes() == b"cut-out"
    assert sorted(p.name for p in folders["outside"].iterdir()) == ["secret.jpg"]
