"""With CUTOUT_ON_SUCCESS=keep, inputs stay in the inbox: the ledger remembers which
versions of which files are done, so that a rescan does not take them again (a changed
file, new size or mtime, is taken again)."""

from __future__ import annotations

import json
import os
from pathlib import Path

Entry = tuple[str, int, int]


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._done: set[Entry] = set()
        if path.exists():
            for line in path.read_text().splitlines():
                item = json.loads(line)
                self._done.add((item["path"], item["size"], item["mtime_ns"]))

    def _entry(self, rel: Path, st: os.stat_result) -> Entry:
        return (rel.as_posix(), st.st_size, st.st_mtime_ns)

    def contains(self, rel: Path, st: os.stat_result) -> bool:
        return self._entry(rel, st) in self._done

    def add(self, rel: Path, st: os.stat_result) -> None:
        entry = self._entry(rel, st)
        self._done.add(entry)
        with self.path.open("a") as out:
            out.write(json.dumps({"path": entry[0], "size": entry[1], "mtime_ns": entry[2]}) + "\n")
