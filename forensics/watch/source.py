"""The files a watch reads: a folder (searched recursively) or a glob, polled each cycle.

**Completeness rule.** A file is read once it is complete:

1. its name does not mark it as being written: it does not start with ``.``
   and does not end with ``.tmp``, ``.part``, ``.partial``, ``.inprogress``,
   ``.crdownload`` or ``.swp`` (write there, then rename: the rename is atomic,
   so the file appears complete); and
2. its size and modification time did not change between two looks
   ``settle`` seconds apart (default 2 s): the first look of a cycle and a
   second one just before reading (a cycle waits only when some file is new
   since the previous cycle; a file already seen unchanged then is read at once).

A writer that appends slowly (a pause longer than ``settle``) must use the
rename convention. A file already read is remembered with its size and
modification time in ``watch_files``: an unchanged file is not read (not even
hashed) again; a changed one is ingested again, which adds only rows not
already there (``ingest`` is idempotent by content hash and request id).
"""

from __future__ import annotations

import glob
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from forensics.db import Database
from forensics.errors import ConfigError, IngestError
from forensics.readers import detect_format

__all__ = ["IN_PROGRESS_SUFFIXES", "FolderSource", "record_read"]

IN_PROGRESS_SUFFIXES = (".tmp", ".part", ".partial", ".inprogress", ".crdownload", ".swp")
"""Name endings of files still being written."""

FILES = "watch_files"


def _supported(path: Path) -> bool:
    try:
        detect_format(path)
    except IngestError:
        return False
    return True


def _in_progress(path: Path) -> bool:
    name = path.name.lower()
    return name.startswith(".") or name.endswith(IN_PROGRESS_SUFFIXES)


@dataclass
class FolderSource:
    """A folder or glob of request-log files (see the module's completeness rule)."""

    spec: str
    """A folder (searched recursively) or a glob pattern."""
    settle: float = 2.0
    """Seconds between the two looks at a new file."""
    _seen: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        is_glob = any(ch in self.spec for ch in "*?[")
        if not is_glob and not Path(self.spec).is_dir():
            raise ConfigError(
                f"{self.spec}: no such folder; watch a folder or a glob pattern "
                "(quote it: 'logs/*.parquet')"
            )

    def _listing(self) -> list[Path]:
        if any(ch in self.spec for ch in "*?["):
            found = [Path(m) for m in glob.glob(self.spec, recursive=True)]
        else:
            found = list(Path(self.spec).rglob("*"))
        return sorted(p for p in found if p.is_file() and not _in_progress(p) and _supported(p))

    def ready(self, db: Database) -> list[tuple[Path, tuple[int, int]]]:
        """The complete files not read yet (or changed since), in name order, with their look.

        A look is (size, modification time in ns), as ``record_read`` remembers it.
        """
        read = _read_files(db)
        looks: dict[Path, tuple[int, int]] = {}
        for p in self._listing():
            look = _look(p)
            if look is not None and read.get(str(p.resolve())) != look:
                looks[p] = look
        waiting = [p for p, look in looks.items() if self._seen.get(str(p)) != look]
        if waiting and self.settle > 0:
            time.sleep(self.settle)
        ready = []
        for p, look in looks.items():
            again = _look(p)
            self._seen[str(p)] = again if again is not None else (-1, -1)
            if again == look and look[0] > 0:
                ready.append((p, look))
        return ready


def _look(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _ensure(db: Database) -> None:
    db.execute(
        f"CREATE TABLE IF NOT EXISTS {FILES} (path VARCHAR PRIMARY KEY, size BIGINT, "
        "mtime_ns BIGINT, status VARCHAR, read_at TIMESTAMPTZ)"
    )


def _read_files(db: Database) -> dict[str, tuple[int, int]]:
    if FILES not in db.tables():
        return {}
    return {
        p: (int(s), int(m)) for p, s, m in db.execute(f"SELECT path, size, mtime_ns FROM {FILES}")
    }


def record_read(db: Database, done: Sequence[tuple[Path, str, tuple[int, int]]]) -> None:
    """Remember files read: (path, ingest status, (size, mtime_ns) when looked at)."""
    _ensure(db)
    for path, status, (size, mtime) in done:
        db.execute(
            f"INSERT OR REPLACE INTO {FILES} VALUES ($p, $s, $m, $st, now())",
            {"p": str(path.resolve()), "s": size, "m": mtime, "st": status},
        )
