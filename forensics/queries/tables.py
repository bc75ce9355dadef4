"""The small tables beside ``requests``: events, ingested files, rejected rows, their sizes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import polars as pl

from forensics.db import Database
from forensics.queries.where import Where, where_sql

__all__ = [
    "event_rows",
    "event_sources",
    "ingested_files",
    "rejected_by_reason",
    "rejected_rows",
    "stored_path",
    "table_counts",
]


def event_rows(db: Database, *, where: Where | None = None) -> pl.DataFrame:
    """Change events within the filter's time range: ``ts, kind, description, scope``."""
    where = where or Where(start=None, end=None)
    params: dict[str, Any] = {}
    condition = where_sql(
        Where(start=where.start, end=where.end), columns={"ts": "TIMESTAMPTZ"}, params=params
    )
    return db.frame(
        f"SELECT ts, kind, description, scope FROM events WHERE {condition} ORDER BY ts", params
    )


def event_sources(db: Database) -> pl.DataFrame:
    """The files change events were loaded from, in load order: ``source_file, events``.

    ``source_file`` is absolute (``stored_path``), null for events added
    otherwise (the user's own SQL).
    """
    if "events" not in db.tables():
        return pl.DataFrame(schema={"source_file": pl.Utf8, "events": pl.Int64})
    frame = db.frame(
        "SELECT source_file, count(*)::BIGINT AS events FROM events "
        "GROUP BY source_file ORDER BY min(rowid)"
    )
    files = [stored_path(db, p) for p in frame["source_file"].to_list()]
    return frame.with_columns(pl.Series("source_file", files, dtype=pl.Utf8))


def table_counts(db: Database) -> dict[str, int]:
    """Rows in requests, rejected_rows, events and ingested_files (0 when absent)."""
    tables = db.tables()
    return {
        t: int(db.scalar(f"SELECT count(*) FROM {t}")) if t in tables else 0
        for t in ("requests", "rejected_rows", "events", "ingested_files")
    }


def ingested_files(db: Database) -> pl.DataFrame:
    """The files ingested so far, with content hashes and row counts; ``path`` absolute.

    A relative ``path`` (stored by an older version, relative to where that
    ingest ran) is resolved by ``stored_path``.
    """
    frame = db.frame("SELECT * FROM ingested_files ORDER BY file_id")
    return frame.with_columns(
        pl.Series("path", [stored_path(db, p) for p in frame["path"].to_list()], dtype=pl.Utf8)
    )


def stored_path(db: Database, path: str | None) -> str | None:
    """A file path the database stored, as an absolute path.

    Ingest stores absolute paths. A database made by an older version may hold
    one relative to the folder that ingest ran in, which nothing recorded: it is
    taken relative to the database's folder, or to the nearest folder above it
    where the file exists (a database in ``build/demo/`` made from the
    repository root names ``data_samples/...``); else to the database's folder.

    Examples
    --------
    >>> stored_path(Database(":memory:"), "/data/logs.parquet")
    '/data/logs.parquet'
    """
    if path is None or Path(path).is_absolute():
        return path
    home = Path.cwd() if db.path == ":memory:" else Path(os.path.abspath(db.path)).parent
    for folder in (home, *home.parents):
        if (folder / path).exists():
            return os.path.normpath(folder / path)
    return os.path.normpath(home / path)


def rejected_rows(
    db: Database,
    *,
    reason: str | None = None,
    source_file: str | None = None,
    limit: int = 1000,
) -> pl.DataFrame:
    """Quarantined rows (optionally of one reason code, one file), in the order they were found."""
    return db.frame(
        "SELECT * FROM rejected_rows WHERE ($reason IS NULL OR reason = $reason) "
        "AND ($file IS NULL OR source_file = $file) "
        "ORDER BY ingested_at, source_file, row_number LIMIT $n",
        {"reason": reason, "file": source_file, "n": limit},
    )


def rejected_by_reason(db: Database) -> pl.DataFrame:
    """Rejected rows counted per file and reason: ``source_file, reason, rows``."""
    return db.frame(
        "SELECT source_file, reason, count(*) AS rows FROM rejected_rows "
        "GROUP BY ALL ORDER BY source_file, rows DESC, reason"
    )
