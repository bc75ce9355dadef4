"""Where a report's numbers come from: the database, its inputs, the software."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import platform
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import polars as pl

from forensics import queries
from forensics.evaluate import simulation_of
from forensics.report.formatting import (
    _clip,
    _jsonable,
)
from forensics.roles import column_roles

if TYPE_CHECKING:
    from forensics.report.source import Source


RAW_EXAMPLE_CHARS = 240
"""A rejected row's raw content is shown up to this many characters."""

PACKAGES: tuple[str, ...] = (
    "forensics", "duckdb", "polars", "pyarrow", "numpy", "scipy", "statsmodels", "altair",
    "vl-convert-python",
)  # fmt: skip
"""Packages whose versions the report records: forensics and the dependencies its numbers
and charts come from (a test keeps them among pyproject.toml's dependencies)."""


@dataclass(frozen=True)
class Provenance:
    """Where the numbers come from: the database, its inputs, the software."""

    database: str
    """The database file."""
    gathered_at: datetime
    """When this was read (UTC)."""
    requests: int
    """Requests in the database."""
    events: int
    """Change events in the database."""
    event_files: tuple[dict[str, Any], ...]
    """Where they came from: ``source_file`` (null when not loaded from a file) and
    ``events``, in load order."""
    first: datetime | None
    """First request time (UTC)."""
    last: datetime | None
    """End of the last hour holding a request (UTC)."""
    files: tuple[dict[str, Any], ...]
    """Ingested files: path, sha256, format, bytes, rows_read, accepted, rejected,
    duplicates, ingested_at, mapping, privacy."""
    rejected: tuple[dict[str, Any], ...]
    """Rejected rows per file and reason: source_file, reason, rows, and one example
    (row_number, column, bad_value, raw; raw is redacted in privacy mode)."""
    privacy: bool
    """Any file was ingested in privacy mode (hashed ids, no response text stored)."""
    simulations: tuple[dict[str, Any], ...]
    """For input files made by ``forensics simulate``: scenario, seed, rows, truth file
    (only when a ``truth.json`` beside the file states the file's row count)."""
    signals: tuple[str, ...]
    """Signals the database holds."""
    dimensions: tuple[str, ...]
    """Dimensions requests can be sliced by."""
    packages: dict[str, str]
    """Package -> installed version."""
    python: str
    """Python version and platform."""
    outcomes: tuple[str, ...] = ()
    """Outcome columns: measured, never slices (``wb.roles()``)."""

    @classmethod
    def gather(cls, source: Source) -> Provenance:
        """Read the provenance of ``source``'s database (``wb`` or anything with ``db``)."""
        db = source.db
        counts = queries.table_counts(db)
        first, last = queries.time_range(db)
        files = tuple(queries.ingested_files(db).to_dicts()) if counts["ingested_files"] else ()
        rejected = []
        if counts["rejected_rows"]:
            examples: dict[str, dict[str, Any]] = {}
            for row in queries.rejected_by_reason(db).to_dicts():
                reason = row["reason"]
                if reason not in examples:
                    found = queries.rejected_rows(db, reason=reason, limit=1).to_dicts()
                    examples[reason] = found[0] if found else {}
                example = examples[reason]
                raw = example.get("raw")
                rejected.append(
                    {
                        **row,
                        "example": {
                            "source_file": example.get("source_file"),
                            "row_number": example.get("row_number"),
                            "column": example.get("column"),
                            "bad_value": example.get("bad_value"),
                            "raw": _clip(raw, RAW_EXAMPLE_CHARS) if raw is not None else None,
                        },
                    }
                )
        return cls(
            database=db.path,
            gathered_at=datetime.now(UTC),
            requests=counts["requests"],
            events=counts["events"],
            event_files=tuple(queries.event_sources(db).to_dicts()),
            first=first,
            last=last,
            files=files,
            rejected=tuple(rejected),
            privacy=any(bool(f.get("privacy")) for f in files),
            simulations=tuple(s for f in files if (s := simulation_of(f)) is not None),
            signals=tuple(queries.signal_names(db)) if counts["requests"] else (),
            dimensions=tuple(d.name for d in queries.dimensions(db)) if counts["requests"] else (),
            packages=_versions(PACKAGES),
            python=f"{platform.python_version()} ({platform.system()} {platform.machine()})",
            outcomes=tuple(
                column_roles(db).filter(pl.col("role") == "outcome")["column"].to_list()
                if counts["requests"]
                else ()
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dictionary (times as ISO-8601 UTC)."""
        return _jsonable(dataclasses.asdict(self))


def _versions(names: Iterable[str]) -> dict[str, str]:
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found
