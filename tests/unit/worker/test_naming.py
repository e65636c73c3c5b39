"""Output names and the image rule (worker.naming): what `cutout p`, the watch folder, the
task's default and `cutout submit --wait` call each output, on real files in a temp folder."""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePath

import pytest
from PIL import Image

from cutout.images import register_plugins, write_atomic
from cutout.report import find_pairs
from cutout_cli.p import find_files, plan
from tests.conftest import ROOT
from worker.naming import (
    IMAGE_SUFFIX_LIST,
    IMAGE_SUFFIXES,
    NAME_MAX,
    batch,
    candidates,
    fit_name,
    is_image,
    mirrored,
    write_new,
)


def rels(*names: str) -> list[PurePath]:
    return [PurePath(n) for n in names]


def as_text(named: dict[PurePath, PurePath]) -> dict[str, str]:
    return {src.as_posix(): out.as_posix() for src, out in named.items()}


# --- one run of `cutout p` ---


def test_batch_numbers_inputs_that_would_share_an_output_in_sorted_order() -> None:
    named = batch(rels("a.png", "b/a.jpg", "a.jpg", "a (2).jpg", "a.webp"), "png")
    assert as_text(named) == {
        "a (2).jpg": "a (2).png",  # sorted first (" " before "."): its plain name
        "a.jpg": "a.png",
        "a.png": "a (3).png",  # a (2).png was given to a (2).jpg
        "a.webp": "a (4).png",
        "b/a.jpg": "b/a.png",  # another folder: its own names
    }


def test_batch_names_depend_on_the_inputs_not_their_order() -> None:
    names = rels("x/photo.png", "x/photo.jpg", "x/photo.JPG", "y.tif")
    assert batch(names, "webp") == batch(reversed(names), "webp")


def test_batch_never_gives_two_inputs_names_a_case_insensitive_disk_would_merge() -> None:
    named = batch(rels("Photo.jpg", "photo.png"), "png")
    assert as_text(named) == {"Photo.jpg": "Photo.png", "photo.png": "photo (2).png"}


def test_p_plan_writes_each_input_to_its_batch_name(tmp_path: Path) -> None:
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    sources = [inputs / "shop" / n for n in ("a.jpg", "a.png", "b.gif")]
    jobs = plan(sources, inputs, outputs, "png")
    assert [(j.source.name, j.target.relative_to(outputs).as_posix()) for j in jobs] == [
        ("a.jpg", "shop/a.png"),
        ("a.png", "shop/a (2).png"),
        ("b.gif", "shop/b.png"),
    ]


# --- names longer than a folder allows ---


@pytest.mark.parametrize("stem", ["日本の写真" * 40, "é" * 200, "a" * 300, "x" * 250 + "日本"])
def test_long_names_fit_in_255_bytes_whole_characters_and_stay_distinct(
    tmp_path: Path, stem: str
) -> None:
    first, second, *_ = [n for n, _ in zip(candidates(f"{stem}.png"), range(3), strict=False)]
    other = fit_name(stem + "!", ".png")
    for name in (first, second, other):
        assert len(os.fsencode(name)) <= NAME_MAX
        assert name.endswith(".png") and "\ufffd" not in name
        (tmp_path / name).write_bytes(b"")  # the file system takes it
    assert len({first, second, other}) == 3
    assert first.startswith(stem[:10])


def test_a_name_that_fits_is_kept_as_it_is() -> None:
    stem = "日" * 83  # 249 bytes, + ".png" = 253
    assert fit_name(stem, ".png") == stem + ".png"
    assert next(candidates("photo.png")) == "photo.png"


# --- the task's default output ---


def test_mirrored_output_keeps_the_folders_below_the_inbox(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "a" / "b").mkdir(parents=True)
    linked = tmp_path / "linked-inbox"
    linked.symlink_to(inbox, target_is_directory=True)
    source = Path(os.path.realpath(inbox / "a" / "b" / "photo.jpg"))
    assert mirrored(source, linked, "webp") == Path("a/b/photo.webp")
    assert mirrored(tmp_path / "elsewhere" / "photo.jpg", inbox, "png") == Path("photo.png")


# --- `cutout submit --wait`: never over a file ---


def test_write_new_takes_the_first_free_name_and_replaces_nothing(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("must survive")
    (tmp_path / "photo.png").write_bytes(b"an earlier result")
    (tmp_path / "photo (2).png").symlink_to(victim)  # a symlink holds its name too

    def write(path: Path) -> None:
        write_atomic(path, b"new result", replace=False)

    assert write_new(tmp_path, "photo.png", write) == tmp_path / "photo (3).png"
    assert write_new(tmp_path, "photo.png", write) == tmp_path / "photo (4).png"
    assert (tmp_path / "photo.png").read_bytes() == b"an earlier result"
    assert (tmp_path / "photo (2).png").is_symlink() and victim.read_text() == "must survive"
    assert (tmp_path / "photo (3).png").read_bytes() == b"new result"


def test_write_new_moves_on_when_a_name_is_taken_while_it_writes(tmp_path: Path) -> None:
    """Another writer creates the chosen name between the look and the link."""
    raced: list[str] = []

    def write(path: Path) -> None:
        if not raced:
            path.write_bytes(b"the other writer's")
            raced.append(path.name)
        write_atomic(path, b"ours", replace=False)

    assert write_new(tmp_path, "photo.png", write) == tmp_path / "photo (2).png"
    assert (tmp_path / "photo.png").read_bytes() == b"the other writer's"
    assert (tmp_path / "photo (2).png").read_bytes() == b"ours"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo (2).png", "photo.png"]


# --- one rule for which files are images ---


def test_every_listed_suffix_in_any_case_is_an_image_and_nothing_else_is() -> None:
    for suffix in IMAGE_SUFFIX_LIST:
        assert is_image(PurePath(f"a/photo{suffix}"))
        assert is_image(PurePath(f"a/photo{suffix.upper()}"))
    for name in ("notes.txt", "scan.pdf", "README", "photo.jpg.part", "photo.psd", "jpg"):
        assert not is_image(PurePath(name))


def test_p_and_report_take_the_same_files(tmp_path: Path) -> None:
    names = ["a.JPG", "b.jpeg", "c.jfif", "d.tiff", "e.webp", "notes.txt", "scan.pdf", "README"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    images, skipped = find_files(tmp_path, tmp_path / "out")
    assert [p.name for p in images] == ["a.JPG", "b.jpeg", "c.jfif", "d.tiff", "e.webp"]
    assert skipped == 3
    assert sorted(p.name for p, _ in find_pairs(tmp_path, IMAGE_SUFFIXES)) == [
        p.name for p in images
    ]


def test_the_decoder_reads_every_listed_suffix() -> None:
    """No name is taken that the decoder then refuses for its format: each suffix is one
    Pillow (with the engine's plugins) knows."""
    register_plugins()
    known = Image.registered_extensions()
    assert [s for s in IMAGE_SUFFIX_LIST if s not in known] == []


def test_the_readme_lists_the_suffixes_the_code_takes() -> None:
    readme = (ROOT / "README.md").read_text()
    listed = re.findall(r"`(\.jpg \.jpeg [^`]*)`", readme)
    assert listed  # `cutout p`'s and the watch folder's
    assert all(text.split() == list(IMAGE_SUFFIX_LIST) for text in listed), listed
