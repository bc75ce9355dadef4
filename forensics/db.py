"""The DuckDB file: opening it, the tables every other step relies on, and tracing.

Tables (a contract other tools rely on):

``requests``
    One row per accepted request: every canonical column (null when the input
    lacked it), the user's extra columns, one boolean column per signal, and two
    provenance columns, ``_source_file_id`` (see ``ingested_files``) and
    ``_source_row`` (line or row number in that file).
``rejected_rows``
    Quarantined input rows: source file, row number, column, reason code, the
    bad value and the raw content.
``events``
    Change events (deploys, config and load-balancer changes).
``ingested_files``
    One row per file ingested: content hash and counts (provenance for reports).
``signal_definitions``
    The signal registry as stored: built-in detectors and the user's own (their
    expression, ``expr``, and every column it reads, ``inputs``).
``column_roles``
    Every column's role (dimension, outcome, id, time, identity, signal,
    internal) and the rule that gave it (see ``forensics.roles``).
``forensics_meta``
    Key/value settings of this database (schema version, privacy mode).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import polars as pl

from forensics.config import Config
from forensics.errors import ConfigError, DiskFullError

__all__ = ["SCHEMA_VERSION", "Database", "Tracer", "remove_spill", "spill_folder"]

logger = logging.getLogger("forensics")

SCHEMA_VERSION = "1"
"""Bumped when the layout of the tables changes."""

Tracer = Callable[[str, Mapping[str, Any] | Sequence[Any] | None], None]

T = TypeVar("T")


def remember(memo: dict[Hashable, Any], key: Hashable, compute: Callable[[], T]) -> T:
    """``memo[key]``, computed by ``compute()`` the first time (an engine's ``memo``).

    Examples
    --------
    >>> seen: dict = {}
    >>> remember(seen, "answer", lambda: 42), remember(seen, "answer", lambda: 0)
    (42, 42)
    """
    if key not in memo:
        memo[key] = compute()
    value: T = memo[key]
    return value


_READ_ONLY = re.compile(r"\s*(SELECT|WITH|SHOW|DESCRIBE|EXPLAIN|SUMMARIZE|FROM)\b", re.IGNORECASE)
"""Statements that cannot change the database (the memo survives them)."""

_FIXED_TABLES = {
    "rejected_rows": """
        CREATE TABLE IF NOT EXISTS rejected_rows (
            source_file VARCHAR NOT NULL,
            file_id INTEGER,
            row_number BIGINT,
            "column" VARCHAR,
            reason VARCHAR NOT NULL,
            bad_value VARCHAR,
            raw VARCHAR,
            ingested_at TIMESTAMPTZ NOT NULL
        )""",
    "events": """
        CREATE TABLE IF NOT EXISTS events (
            ts TIMESTAMPTZ NOT NULL,
            kind VARCHAR NOT NULL,
            description VARCHAR,
            scope VARCHAR,
            source_file VARCHAR
        )""",
    "ingested_files": """
        CREATE TABLE IF NOT EXISTS ingested_files (
            file_id INTEGER PRIMARY KEY,
            path VARCHAR NOT NULL,
            sha256 VARCHAR NOT NULL,
            format VARCHAR NOT NULL,
            bytes BIGINT NOT NULL,
            rows_read BIGINT NOT NULL,
            accepted BIGINT NOT NULL,
            rejected BIGINT NOT NULL,
            duplicates BIGINT NOT NULL,
            ingested_at TIMESTAMPTZ NOT NULL,
            mapping VARCHAR,
            privacy BOOLEAN NOT NULL
        )""",
    "signal_definitions": """
        CREATE TABLE IF NOT EXISTS signal_definitions (
            name VARCHAR PRIMARY KEY,
            description VARCHAR,
            kind VARCHAR NOT NULL,
            source_column VARCHAR,
            op VARCHAR,
            value DOUBLE,
            expr VARCHAR,
            inputs VARCHAR[]
        )""",
    "column_roles": """
        CREATE TABLE IF NOT EXISTS column_roles (
            "column" VARCHAR PRIMARY KEY,
            role VARCHAR NOT NULL,
            why VARCHAR NOT NULL
        )""",
    "forensics_meta": """
        CREATE TABLE IF NOT EXISTS forensics_meta (
            key VARCHAR PRIMARY KEY,
            value VARCHAR
        )""",
}


_ADDED_COLUMNS = (
    ("signal_definitions", "expr VARCHAR"),
    ("signal_definitions", "inputs VARCHAR[]"),
    ("ingested_files", "skipped BIGINT DEFAULT 0"),
)
"""Columns of the fixed tables added after they were first made: (table, column and type)."""


def spill_folder(path: str | Path) -> Path:
    """The folder DuckDB spills to for database ``path`` (its default ``temp_directory``)."""
    return Path(f"{path}.tmp")


_SPILL_OWNER = re.compile(r"duckdb_temp_(\d+)_")
"""DuckDB's spill files are named after the process that wrote them."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def remove_spill(path: str | Path) -> None:
    """Remove what a process killed while writing ``path`` left in its spill folder.

    DuckDB removes its spill files when it closes, not after a crash, and a new
    connection neither reads nor removes them: they keep whatever the killed
    statement held. Called once a connection for writing is open, so no other
    process has the file open (DuckDB locks it); a file named after a live
    process (this one's other connections) is left alone.
    """
    folder = spill_folder(path)
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if not (entry.is_file() and entry.name.startswith("duckdb_temp")):
            continue
        owner = _SPILL_OWNER.match(entry.name)
        if owner is not None and _alive(int(owner.group(1))):
            continue
        try:
            entry.unlink()
        except OSError as exc:
            logger.warning("could not remove the stale spill file %s: %s", entry, exc)


class Database:
    """One DuckDB connection, with every statement traced and timed.

    Parameters
    ----------
    path
        The database file (created if missing), or ``":memory:"``.
    read_only
        Open without write access (several readers can share a file).
    trace
        Called with each SQL statement and its parameters before it runs,
        e.g. ``trace=print``.
    config
        Process settings; ``Config.from_env()`` when omitted.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        read_only: bool = False,
        trace: Tracer | None = None,
        config: Config | None = None,
    ) -> None:
        self.path = str(path)
        self.config = config or Config.from_env()
        self.trace = trace
        self._memo: dict[Hashable, Any] = {}
        if read_only and self.path != ":memory:" and not Path(self.path).exists():
            raise ConfigError(
                f"{self.path}: no such database; create it with `forensics ingest FILE --db {self.path}`"
            )
        try:
            self.con = duckdb.connect(self.path, read_only=read_only)
        except duckdb.ConnectionException as exc:
            if "different configuration" not in str(exc):
                raise
            mode = "read-only" if read_only else "for writing"
            raise ConfigError(
                f"{self.path}: this process already has the database open with other settings, "
                f"so it cannot also be opened {mode}. Reuse the Workbench you have (one "
                "connection serves every question), or close it first, or open every one of "
                "them with read_only=True."
            ) from None
        except duckdb.IOException as exc:
            raise ConfigError(f"{self.path}: cannot open the database ({exc})") from None
        self.read_only = read_only
        if not read_only and self.path != ":memory:":
            remove_spill(self.path)
        self.con.execute("SET TimeZone = 'UTC'")
        # DuckDB's own progress bar writes into notebooks and CLI output; we print ours.
        self.con.execute("SET enable_progress_bar = false")
        self.con.execute("SET memory_limit = $limit", {"limit": self.config.memory_limit})
        if self.config.threads:
            self.con.execute("SET threads = $threads", {"threads": self.config.threads})
        if not read_only:
            self.create_fixed_tables()

    # -- statements -----------------------------------------------------------------

    def _traced(
        self, sql: str, params: Mapping[str, Any] | Sequence[Any] | None
    ) -> Mapping[str, Any] | Sequence[Any] | None:
        """Trace a statement; return its parameters without names the SQL does not use.

        DuckDB refuses named parameters a statement does not reference, and
        callers often share one parameter dict between several statements. A
        statement that may change the database forgets what ``memo`` remembered.
        """
        if not _READ_ONLY.match(sql):
            self._memo.clear()
        if isinstance(params, Mapping):
            params = {k: v for k, v in params.items() if re.search(rf"\${re.escape(k)}\b", sql)}
        if self.trace is not None:
            self.trace(sql, params)
        logger.debug("SQL %s params=%r", sql, params)
        return params

    def execute(
        self, sql: str, params: Mapping[str, Any] | Sequence[Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """Run one statement and fetch all its rows."""
        params = self._traced(sql, params)
        try:
            result = self.con.execute(sql, params) if params else self.con.execute(sql)
            return result.fetchall()
        except duckdb.Error as exc:
            self._raise_if_disk_full(exc)
            raise

    def frame(self, sql: str, params: Mapping[str, Any] | None = None) -> pl.DataFrame:
        """Run a query and return its result as a Polars DataFrame."""
        bound = self._traced(sql, params)
        try:
            rel = self.con.sql(sql, params=dict(bound) if bound else None)
            if rel is None:
                return pl.DataFrame()
            return rel.pl()
        except duckdb.Error as exc:
            self._raise_if_disk_full(exc)
            raise

    def _raise_if_disk_full(self, exc: duckdb.Error) -> None:
        """Raise ``DiskFullError`` for a statement that failed on a full disk.

        A full disk is the user's to fix (exit 2), not a bug. DuckDB invalidates
        a database whose write failed; every later statement repeats the original
        error, so each of them says the disk is full too.
        """
        if DiskFullError.caused(exc):
            raise DiskFullError.while_writing(self.path) from exc

    def scalar(self, sql: str, params: Mapping[str, Any] | Sequence[Any] | None = None) -> Any:
        """Run a query that returns one value."""
        rows = self.execute(sql, params)
        return rows[0][0] if rows else None

    # -- schema ---------------------------------------------------------------------

    def create_fixed_tables(self) -> None:
        """Create the tables whose layout does not depend on the data (idempotent)."""
        for ddl in _FIXED_TABLES.values():
            self.execute(ddl)
        for name, dtype in _ADDED_COLUMNS:
            # A database made before a column was added gets it (null on old rows).
            self.execute(f"ALTER TABLE {name} ADD COLUMN IF NOT EXISTS {dtype}")
        self.execute(
            "INSERT OR IGNORE INTO forensics_meta VALUES ('schema_version', $v)",
            {"v": SCHEMA_VERSION},
        )

    def memo(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()``, remembered under ``key`` until a statement changes the database.

        Catalog lookups (tables, columns, dimensions, cubes, signals) run on
        every interactive query; read from memory they cost nothing. Any
        statement that is not a plain read (SELECT, WITH, SHOW, DESCRIBE...)
        clears every remembered value.

        Examples
        --------
        >>> db = Database(":memory:")
        >>> db.memo("answer", lambda: 42)
        42
        """
        return remember(self._memo, key, compute)

    def forget(self) -> None:
        """Drop every value ``memo`` remembered (another connection changed the database)."""
        self._memo.clear()

    def tables(self) -> set[str]:
        """Names of the tables in the main schema."""

        def lookup() -> set[str]:
            rows = self.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' "
                "AND database_name = current_database()"
            )
            return {r[0] for r in rows}

        return set(self.memo(("tables",), lookup))

    def columns(self, table: str) -> dict[str, str]:
        """Column name -> DuckDB type of a table, in table order ({} if it does not exist)."""

        def lookup() -> dict[str, str]:
            rows = self.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = $t "
                "AND schema_name = 'main' AND database_name = current_database() "
                "ORDER BY column_index",
                {"t": table},
            )
            return {name: dtype for name, dtype in rows}

        return dict(self.memo(("columns", table), lookup))

    def meta(self, key: str) -> str | None:
        """A value of ``forensics_meta``."""
        if "forensics_meta" not in self.tables():
            return None
        return self.scalar("SELECT value FROM forensics_meta WHERE key = $k", {"k": key})

    def set_meta(self, key: str, value: str) -> None:
        """Set a value of ``forensics_meta``."""
        self.execute(
            "INSERT OR REPLACE INTO forensics_meta VALUES ($k, $v)", {"k": key, "v": value}
        )

    def close(self) -> None:
        """Close the connection."""
        self.con.close()
