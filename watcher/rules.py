"""Which files in the inbox are inputs, and which are someone's work in progress.

An input need not be an image: whether it is (worker.naming.is_image, the rule `cutout p`
follows too) is decided once it has settled and been claimed, so that a file that is not
ends in the failed folder with its reason instead of lying in the inbox unexplained.
"""

from __future__ import annotations

from pathlib import PurePath

# Names that browsers, editors and copy tools give a file while they are still writing it.
TEMP_SUFFIXES = frozenset(
    {".part", ".partial", ".tmp", ".temp", ".crdownload", ".download", ".swp"}
)
SYSTEM_FILES = frozenset({"thumbs.db", "desktop.ini", "icon\r"})
CLAIMS = ".cutout-claims"
LEDGER = ".cutout-ledger"


def is_input(rel: PurePath) -> bool:
    """Whether a path relative to the inbox is a file to process (once it settles)."""
    if not rel.parts:
        return False
    if any(part.startswith(".") for part in rel.parts):
        return False  # dotfiles, hidden folders, our own claims folder
    name = rel.name
    if name.startswith("~$") or name.lower() in SYSTEM_FILES:
        return False
    return rel.suffix.lower() not in TEMP_SUFFIXES
