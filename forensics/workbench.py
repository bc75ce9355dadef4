"""The Workbench: the one object a notebook works with, over one DuckDB file.

``forensics.open(path)`` returns it. Its methods read like an investigator's
questions and delegate to the modules that own each step (ingest, queries,
separation, widgets, report); it holds no logic of its own.
"""

from __future__ import annotations

import html
from collections.abc import Mapping as MappingABC
from pathlib import Path
from typing import Any, Literal

import polars as pl

from forensics.config import Config
from forensics.db import Database, Tracer
from forensics.ingest import FileSummary, IngestSummary, ingest_events, ingest_files
from forensics.schema import Mapping
from forensics.signals import SignalParams

__all__ = ["Workbench", "open"]


class Workbench:
    """An investigation's view of one database of request logs.

    Parameters
    ----------
    db
        The open database.

    Examples
    --------
    >>> wb = open(":memory:")
    >>> wb.counts()["requests"]
    0
    >>> wb.close()
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    @property
    def path(self) -> str:
        """The database file."""
        return self.db.path

    # -- loading --------------------------------------------------------------------

    def ingest(
        self,
        *paths: str | Path,
        mapping: Mapping | str | Path | None = None,
        privacy: bool = False,
        salt: str | None = None,
        params: SignalParams | None = None,
        progress: bool | None = None,
        errors: Literal["raise", "collect"] = "raise",
    ) -> IngestSummary:
        """Load request-log files (see ``forensics.ingest.ingest_files``)."""
        if mapping is not None and not isinstance(mapping, Mapping):
            mapping = Mapping.load(mapping)
        return ingest_files(
            self.db,
            paths,
            mapping=mapping,
            privacy=privacy,
            salt=salt,
            params=params,
            progress=self.db.config.show_progress() if progress is None else progress,
            errors=errors,
        )

    def ingest_events(self, path: str | Path) -> FileSummary:
        """Load change events (deploys, config changes) from CSV or JSON."""
        return ingest_events(self.db, path)

    # -- looking --------------------------------------------------------------------

    def sql(self, query: str, params: MappingABC[str, Any] | None = None) -> pl.DataFrame:
        """Run your own SQL and get a Polars DataFrame; bind values with ``$name`` params."""
        return self.db.frame(query, params)

    def counts(self) -> dict[str, int]:
        """Rows in each table: requests, rejected_rows, events, ingested_files."""
        tables = self.db.tables()
        out = {}
        for table in ("requests", "rejected_rows", "events", "ingested_files"):
            out[table] = (
                int(self.db.scalar(f"SELECT count(*) FROM {table}")) if table in tables else 0
            )
        return out

    def files(self) -> pl.DataFrame:
        """The files ingested so far, with content hashes and row counts."""
        return self.db.frame("SELECT * FROM ingested_files ORDER BY file_id")

    def rejected(self, *, reason: str | None = None, limit: int = 1000) -> pl.DataFrame:
        """Quarantined rows (optionally of one reason code), oldest first."""
        if reason is None:
            return self.db.frame(
                "SELECT * FROM rejected_rows ORDER BY ingested_at, source_file, row_number LIMIT $n",
                {"n": limit},
            )
        return self.db.frame(
            "SELECT * FROM rejected_rows WHERE reason = $r ORDER BY ingested_at, source_file, "
            "row_number LIMIT $n",
            {"r": reason, "n": limit},
        )

    def rejected_by_reason(self) -> pl.DataFrame:
        """Rejected rows counted by file and reason."""
        return self.db.frame(
            "SELECT source_file, reason, count(*) AS rows FROM rejected_rows "
            "GROUP BY ALL ORDER BY source_file, rows DESC"
        )

    def events(self) -> pl.DataFrame:
        """Change events, in time order."""
        return self.db.frame("SELECT * FROM events ORDER BY ts")

    # -- lifecycle ------------------------------------------------------------------

    def close(self) -> None:
        """Close the database."""
        self.db.close()

    def __enter__(self) -> Workbench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        counts = self.counts()
        return (
            f"<Workbench {self.path}: {counts['requests']:,} requests, {counts['events']:,} events>"
        )

    def _repr_html_(self) -> str:
        counts = self.counts()
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td style='text-align:right'>{v:,}</td></tr>"
            for k, v in counts.items()
        )
        return (
            f"<div><b>forensics workbench</b> <code>{html.escape(self.path)}</code>"
            f"<table>{rows}</table></div>"
        )


def open(
    path: str | Path | None = None,
    *,
    read_only: bool = False,
    trace: Tracer | None = None,
) -> Workbench:
    """Open (or create) a forensics database and return its Workbench.

    Parameters
    ----------
    path
        The DuckDB file; ``FORENSICS_DB`` or ``forensics.duckdb`` when omitted;
        ``":memory:"`` for a throwaway one.
    read_only
        Open without write access, so that several processes can read one file.
    trace
        Called with every SQL statement and its parameters, e.g. ``trace=print``.
    """
    config = Config.from_env()
    return Workbench(Database(path or config.db, read_only=read_only, trace=trace, config=config))
