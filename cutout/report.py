"""A picture, not a table: one self-contained HTML page of input | mask | cut-out | truth.

Rows are ordered worst first by boundary error when there is ground truth, so that a
person sees in seconds where edges fail. Pictures are embedded as base64 thumbnails: the
page can be mailed or attached to an issue as one file.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from cutout.errors import ImageError
from cutout.scores import Scores

THUMB_SIDE = 256
CHECKER_CELL = 8
_CHECKER_COLOURS = ((204, 204, 204), (255, 255, 255))


@dataclass(frozen=True)
class Panel:
    caption: str
    picture: Image.Image


@dataclass(frozen=True)
class Row:
    name: str
    panels: tuple[Panel, ...]
    scores: Scores | None = None
    note: str = ""


def natural_key(path: Path) -> tuple[tuple[int, int | str], ...]:
    """Sort 2.jpg before 10.jpg."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part.lower())
        for part in re.split(r"(\d+)", path.name)
        if part
    )


def find_truth(masks_dir: Path, image: Path, suffixes: Iterable[str]) -> Path | None:
    """The ground truth of `image`: a file with the same stem under `masks_dir`."""
    for suffix in (".png", *sorted(suffixes)):
        candidate = masks_dir / f"{image.stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def find_pairs(root: Path, suffixes: frozenset[str]) -> list[tuple[Path, Path | None]]:
    """(image, truth or None) for `root/images` + `root/masks`, or for a plain folder."""
    images_dir = root / "images"
    if not images_dir.is_dir():
        images = [p for p in root.iterdir() if p.is_file() and p.suffix.lower() in suffixes]
        return [(p, None) for p in sorted(images, key=natural_key) if not p.name.startswith(".")]
    images = [p for p in images_dir.iterdir() if p.is_file() and p.suffix.lower() in suffixes]
    masks_dir = root / "masks"
    return [
        (p, find_truth(masks_dir, p, suffixes))
        for p in sorted(images, key=natural_key)
        if not p.name.startswith(".")
    ]


def load_truth(path: Path, size: tuple[int, int]) -> Image.Image:
    """A truth mask as mode L, checked to match its image's size."""
    with Image.open(path) as opened:
        truth = opened.convert("L")
    if truth.size != size:
        raise ImageError(
            str(path), f"the mask is {truth.size[0]}x{truth.size[1]}, the image {size[0]}x{size[1]}"
        )
    return truth


def checkerboard(size: tuple[int, int], cell: int = CHECKER_CELL) -> Image.Image:
    """The usual grey-and-white pattern that shows transparency."""
    tile = Image.new("RGB", (2 * cell, 2 * cell), _CHECKER_COLOURS[1])
    tile.paste(_CHECKER_COLOURS[0], (0, 0, cell, cell))
    tile.paste(_CHECKER_COLOURS[0], (cell, cell, 2 * cell, 2 * cell))
    board = Image.new("RGB", size)
    for y in range(0, size[1], 2 * cell):
        for x in range(0, size[0], 2 * cell):
            board.paste(tile, (x, y))
    return board


def over_checkerboard(image: Image.Image, mask: Image.Image) -> Image.Image:
    """The cut-out as a viewer shows it: the subject over a checkerboard."""
    board = checkerboard(image.size)
    board.paste(image.convert("RGB"), (0, 0), mask)
    return board


def _data_uri(picture: Image.Image) -> str:
    thumb = picture.copy()
    thumb.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if thumb.mode == "L":  # masks: exact greys, and PNG compresses them well
        thumb.save(buffer, "PNG", optimize=True)
        kind = "png"
    else:
        thumb.convert("RGB").save(buffer, "JPEG", quality=85)
        kind = "jpeg"
    return f"data:image/{kind};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def _badness(row: Row) -> float:
    if row.scores is None or math.isnan(row.scores.boundary_mae):
        return -1.0
    return row.scores.boundary_mae


def worst_first(rows: Sequence[Row]) -> list[Row]:
    """By boundary MAE, worst first; rows without truth keep their order, at the end."""
    return sorted(rows, key=_badness, reverse=True)


def _scores_html(scores: Scores | None) -> str:
    if scores is None:
        return ""
    parts = [
        f"boundary MAE {scores.boundary_mae:.3f}",
        f"IoU {scores.iou:.3f}",
        f"MAE {scores.mae:.3f}",
        f"max-F {scores.max_f:.3f}",
    ]
    return "<br>".join(parts)


def _row_html(row: Row) -> str:
    cells = "".join(
        f'<td><img src="{_data_uri(p.picture)}" alt="{html.escape(p.caption)}">'
        f"<div>{html.escape(p.caption)}</div></td>"
        for p in row.panels
    )
    note = f"<br>{html.escape(row.note)}" if row.note else ""
    head = f"<th>{html.escape(row.name)}<br><small>{_scores_html(row.scores)}{note}</small></th>"
    return f"<tr>{head}{cells}</tr>"


_STYLE = """
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
th { text-align: left; vertical-align: top; padding: 6px 12px 6px 0; min-width: 11em; }
td { padding: 4px; text-align: center; vertical-align: top; }
td img { max-width: 256px; max-height: 256px; display: block; }
td div { color: #666; font-size: 12px; }
tr + tr { border-top: 1px solid #ddd; }
"""


def render(rows: Sequence[Row], title: str, summary: str = "") -> str:
    """The page. `summary` is trusted HTML (a table made by the caller), shown on top."""
    body = "\n".join(_row_html(row) for row in rows)
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{summary}<table>\n{body}\n</table></body></html>\n"
    )
