"""The speed harness's own logic: a deterministic image set, and targets computed per round."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from bench import children, images, speed


def test_image_set_is_deterministic_and_by_class(tmp_path: Path) -> None:
    first = images.build(tmp_path / "a", photos=1, jpegs=1, variants=2)
    again = images.build(tmp_path / "b", photos=1, jpegs=1, variants=2)
    assert first.classes == ["small", "hd", "12mp"]
    assert [len(first.files[c]) for c in first.classes] == [2, 2, 2]
    for size_class in first.classes:
        for a, b in zip(first.files[size_class], again.files[size_class], strict=True):
            assert a.name == b.name and a.read_bytes() == b.read_bytes()
    with images.Image.open(first.files["12mp"][0]) as im:
        assert im.size == images.SIZES["12mp"] and im.format == "JPEG"


def test_small_jpegs_are_the_shipped_photos_without_pascal_s(tmp_path: Path) -> None:
    built = images.build(tmp_path / "set", photos=1, jpegs=2, evalset=tmp_path / "absent")
    assert built.jpegs_from == "shipped"
    jpegs = [f.name for f in built.files["small"] if f.suffix == ".jpg"]
    assert jpegs == ["shipped-astronaut.jpg", "shipped-coffee.jpg"]


def test_warm_up_sees_every_size_twice(tmp_path: Path) -> None:
    # Untimed, both of cutout p's lanes meet each size class once before the timed runs.
    built = images.build(tmp_path / "set", photos=1, jpegs=1, variants=2)
    warm = children.warm_folder(built.root)
    try:
        sizes = [size_of(f) for f in children.images_in(warm)]
    finally:
        shutil.rmtree(warm)
    small = size_of(built.files["small"][0])
    assert sizes == [small, small, *[images.SIZES[c] for c in ("hd", "hd", "12mp", "12mp")]]


def size_of(path: Path) -> tuple[int, int]:
    with images.Image.open(path) as im:
        return im.size


def run(ms: dict[str, float], images_per_class: int = 4, nbytes: int = 0) -> dict[str, Any]:
    return {
        "classes": {
            c: {"images": images_per_class, "seconds": v * images_per_class / 1000, "bytes": nbytes}
            for c, v in ms.items()
        }
    }


def test_ratios_are_taken_within_each_round() -> None:
    # Round 2 is slow for everyone (a busy machine): per-round ratios do not see it.
    model = [{"small": 400, "hd": 400, "12mp": 400}, {"small": 800, "hd": 800, "12mp": 800}]
    lanes = [{"small": 390, "hd": 395, "12mp": 410}, {"small": 780, "hd": 790, "12mp": 820}]
    ours = [{"small": 420, "hd": 440, "12mp": 760}, {"small": 840, "hd": 880, "12mp": 1520}]
    theirs = [{"small": 450, "hd": 700, "12mp": 2500}, {"small": 900, "hd": 1400, "12mp": 5000}]
    raw = {
        "runs": {
            "model": [run(r) for r in model],
            "model-lanes": [run(r) for r in lanes],
            "cutout-p": [run(r, nbytes=110) for r in ours],
            "rembg-remove": [run(r, nbytes=100) for r in theirs],
        },
        "fidelity": {"images": 12, "equal": 12},
        "idle_cpu_percent": 0.5,
    }
    table = speed.summarise(raw)
    found = {t["target"]: t for t in speed.targets(table, raw, "u2net")}
    hd = found["cutout p HD / model only, its best (x)"]
    assert hd["value"] == pytest.approx(440 / 395) and hd["holds"]
    assert found["cutout p 12 MP / model only, its best (x)"]["value"] == pytest.approx(760 / 400)
    speedup = found["cutout p images/s / rembg's best, equal thirds (x)"]
    assert speedup["value"] == pytest.approx(3650 / 1620) and speedup["holds"]
    assert found["cutout p output bytes / rembg's (x, over the mix)"]["value"] == pytest.approx(1.1)
    assert found["idle cutout up CPU (% of a core)"]["holds"] is True
    text = speed.markdown(table, list(found.values()), {"model": "u2net"})
    assert "| cutout p | 630 | 660 | 1,140 |" in text  # medians of the two rounds
