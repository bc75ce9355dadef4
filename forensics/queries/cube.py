"""Cubes: counts per hour (or day) and per combination of some dimensions' values.

A cube holds ``requests`` and, for each signal ``s``, ``n__s`` (requests
where ``s`` is defined) and ``k__s`` (where it is true); numeric dimensions
enter as buckets. ``cube_catalog`` lists the cubes, each with the state of
``requests`` it was built from, and ``cube_dimensions`` the dimensions found;
a read uses only cubes built from ``requests`` as it is now (``_catalog``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import polars as pl

from forensics.db import Database
from forensics.errors import QueryError, UnknownNameError
from forensics.grain import check_grain, database_grain, grain_us, parse_grain
from forensics.queries.dims import (
    CUBE_MAX_VALUES,
    DIMENSION_MAX_VALUES,
    Dimension,
    _candidate_columns,
    _key_sql,
    _not_a_dimension,
    bucket_sql,
    describe_column,
    discover_dimensions,
)
from forensics.queries.engine import Engine
from forensics.queries.measures import _requests_sum, _signal_sums, count_column, signal_names
from forensics.roles import columns_with_role
from forensics.schema import quote_identifier

logger = logging.getLogger("forensics")

__all__ = [
    "CUBE_MAX_ROWS",
    "CUBE_MIN_ROWS",
    "CUBE_REDUCTION",
    "GRAINS",
    "GRAIN_META",
    "Cube",
    "Grain",
    "build_cube",
    "checked_grain",
    "cube_sql",
    "cubes",
    "data_grain",
    "dimension",
    "dimension_values",
    "dimensions",
    "groupable_columns",
    "recorded_dimensions",
    "refresh_cubes",
    "set_grain",
]

Grain = Literal["minute", "5min", "15min", "hour", "day"]

GRAINS: tuple[Grain, ...] = ("minute", "5min", "15min", "hour", "day")
"""Time buckets (``forensics.grain``), counted from the Unix epoch: UTC hours and days."""

_BUCKET_US = {g: grain_us(g) for g in GRAINS}

GRAIN_META = "grain"
"""``forensics_meta`` key of a grain set by option (``set_grain``); absent: from the data."""

CUBE_MIN_ROWS = 50_000
"""The default cube may always hold this many rows."""

CUBE_MAX_ROWS = 500_000
"""...and never more than this many (a query over it stays well under 100 ms)."""

CUBE_REDUCTION = 10
"""...nor more than the raw row count divided by this."""


def groupable_columns(
    db: Database, names: Sequence[str], *, known: Mapping[str, Dimension] | None = None
) -> dict[str, Dimension]:
    """The dimensions and outcomes named, described; a count can group by each of them.

    An outcome is described by ``describe_column`` (and read from the raw table);
    any other name raises ``UnknownNameError`` listing the dimensions. ``known``
    is the dimensions the caller already holds (``dimensions(db)`` when omitted).
    """
    dims = dict(known) if known is not None else {d.name: d for d in dimensions(db)}
    outcomes = set(columns_with_role(db, "outcome"))
    out = {}
    for name in names:
        if name in dims:
            out[name] = dims[name]
        elif name in outcomes:
            out[name] = describe_column(db, name)
        else:
            raise UnknownNameError.for_name("dimension", name, dims)
    return out


def dimensions(db: Database) -> list[Dimension]:
    """The dimensions of ``requests``, as recorded when the cubes were last built.

    Only columns whose role is still dimension (``forensics.roles``).
    Rediscovered when the record is missing or older than ``requests`` (see
    ``_catalog``).
    """
    return list(_catalog(db).dimensions)


def dimension(db: Database, name: str) -> Dimension:
    """One dimension by name, or ``UnknownNameError`` listing the valid ones."""
    dims = {d.name: d for d in dimensions(db)}
    if name not in dims:
        raise _not_a_dimension(db, name, dims)
    return dims[name]


def dimension_values(db: Database, name: str, *, limit: int = DIMENSION_MAX_VALUES) -> pl.DataFrame:
    """The values of one dimension with their request counts, most requests first.

    Numeric dimensions give their buckets (``value`` is the lower edge). Reads
    a cube that holds the dimension when there is one.

    Returns
    -------
    pl.DataFrame
        ``value, requests``; a missing value is a null ``value``.
    """
    catalog = _catalog(db)
    dims = {d.name: d for d in catalog.dimensions}
    if name not in dims:
        raise UnknownNameError.for_name("dimension", name, dims)
    d = dims[name]
    cube = next((c for c in catalog.cubes if name in c.dims), None)
    q = quote_identifier(name)
    if cube is not None:
        sql = f"SELECT {q} AS value, sum(requests) AS requests FROM {quote_identifier(cube.name)}"
    else:
        key = bucket_sql(name, d.edges) if d.kind == "numeric" else q
        sql = f"SELECT {key} AS value, {_requests_sum(db)} AS requests FROM requests"
    frame = db.frame(
        f"{sql} GROUP BY 1 ORDER BY requests DESC, value NULLS LAST LIMIT $n", {"n": limit}
    )
    return frame.with_columns(pl.col("requests").cast(pl.Int64))


@dataclass(frozen=True)
class Cube:
    """A materialised aggregate of ``requests``."""

    name: str
    """Its table."""
    dims: tuple[str, ...]
    """Dimensions it holds (numeric ones as buckets)."""
    grain: Grain
    """Time bucket."""
    rows: int
    """Rows in the cube."""
    source_rows: int
    """Rows of ``requests`` it was built from."""
    auto: bool
    """Chosen automatically (the default cube) rather than asked for."""


_CATALOG = """
    CREATE TABLE IF NOT EXISTS cube_catalog (
        name VARCHAR PRIMARY KEY, dims VARCHAR[], grain VARCHAR, rows BIGINT,
        source_rows BIGINT, auto BOOLEAN, built_at TIMESTAMPTZ, source_state VARCHAR
    )"""

_CATALOG_STATE = "ALTER TABLE cube_catalog ADD COLUMN IF NOT EXISTS source_state VARCHAR"
"""A catalog written before cubes recorded their source's state gets the column (null: stale)."""


@dataclass(frozen=True)
class _Recorded:
    """A row of ``cube_catalog``: the cube and the state of ``requests`` it summarises."""

    cube: Cube
    state: str | None


@dataclass(frozen=True)
class _Catalog:
    """What a read may use: the cubes that summarise ``requests`` as it is, and its dimensions."""

    cubes: tuple[Cube, ...]
    dimensions: tuple[Dimension, ...]


def _provenance_checksum(db: Database) -> int:
    """A checksum of which rows ``requests`` holds (their file and row; rowid without them).

    Unlike a row count it changes when rows are deleted and as many others
    inserted. It reads two columns of every row (about 30 ms on 10M rows), so it
    is remembered until this connection writes.
    """

    def compute() -> int:
        columns = db.columns("requests")
        keys = (
            "_source_file_id, _source_row"
            if {"_source_file_id", "_source_row"} <= set(columns)
            else "rowid"
        )
        return int(db.scalar(f"SELECT coalesce(sum(hash({keys})), 0) FROM requests"))

    return db.memo(("requests_checksum",), compute)


def _source_state(db: Database) -> tuple[str, dict[str, int]]:
    """The state of ``requests`` a cube must have been built from, and each table's size.

    The state joins what ingest commits with its rows (``ingested_files``: files,
    last id, rows accepted), the signal registry, the row count of ``requests``
    and a checksum of its rows' provenance (``_provenance_checksum``): a crash
    between an ingest's commit and the cube refresh, an ingest through
    ``ingest.ingest_files`` and a user's own DELETE or INSERT all change it. (A
    user's UPDATE of stored values in place does not; call ``refresh_cubes``
    after one.)

    All but the checksum come from table metadata and tiny tables in one
    statement (about 1.5 ms). A connection that may write runs it on every read,
    since another connection of this process may have written; when it differs
    from what this connection saw last, every remembered catalog lookup is
    forgotten. A read-only connection runs it once: while it is open, DuckDB's
    file lock lets no one write.

    Returns
    -------
    tuple[str, dict[str, int]]
        The state, and the estimated row count of every table (a cube's is exact).
    """
    seen, sizes = _source_parts(db)
    return _state_text(seen, _provenance_checksum(db)), sizes


def _state_text(seen: tuple[Any, ...], check: int) -> str:
    """The recorded form of a state of ``requests`` (see ``_source_state``)."""
    rows, files, signals = seen
    files_text = "/".join(map(str, files)) or "-"
    return f"rows={rows};files={files_text};signals={signals};check={check}"


_STATE = re.compile(r"rows=(\d+);files=([0-9/]+|-);signals=(.*);check=(-?\d+)")
"""A recorded state, parsed back (``_state_text``)."""


def _source_parts(db: Database) -> tuple[tuple[Any, ...], dict[str, int]]:
    """Every part of the state of ``requests`` but its checksum, and each table's size.

    See ``_source_state``; remembered per connection as it says.
    """

    def look() -> tuple[tuple[Any, ...], dict[str, int]]:
        tables = db.tables()
        parts = [
            "(SELECT count(*) FROM requests)",
            "(SELECT [count(*), coalesce(max(file_id), 0), coalesce(sum(accepted), 0)] "
            "FROM ingested_files)"
            if "ingested_files" in tables
            else "NULL",
            "(SELECT coalesce(sum(hash(name, kind, source_column, op, value"
            + (", expr" if "expr" in db.columns("signal_definitions") else "")
            + ")), 0) FROM signal_definitions)"
            if "signal_definitions" in tables
            else "NULL",
            "(SELECT list({'t': table_name, 'n': estimated_size}) FROM duckdb_tables() "
            "WHERE schema_name = 'main' AND database_name = current_database())",
        ]
        rows, files, signals, sizes = db.execute(f"SELECT {', '.join(parts)}")[0]
        seen = (int(rows), tuple(int(f) for f in files or ()), signals)
        return seen, {s["t"]: int(s["n"]) for s in sizes or ()}

    if db.read_only:
        return db.memo(("requests_state",), look)
    seen, sizes = look()
    if db.memo(("requests_state",), lambda: (seen, sizes))[0] != seen:
        db.forget()  # another connection wrote: tables, columns, signals may differ too
        db.memo(("requests_state",), lambda: (seen, sizes))
    return seen, sizes


def _recorded_cubes(db: Database) -> list[_Recorded]:
    """``cube_catalog`` as stored, smallest first (remembered until this connection writes)."""
    if "cube_catalog" not in db.tables():
        return []

    def lookup() -> list[_Recorded]:
        state = "source_state" if "source_state" in db.columns("cube_catalog") else "NULL"
        rows = db.execute(
            f"SELECT name, dims, grain, rows, source_rows, auto, {state} FROM cube_catalog "
            "ORDER BY rows, name"
        )
        return [
            _Recorded(Cube(r[0], tuple(r[1]), r[2], int(r[3]), int(r[4]), bool(r[5])), r[6])
            for r in rows
        ]

    return list(db.memo(("cubes",), lookup))


def _recorded_dimensions(db: Database) -> list[Dimension]:
    """``cube_dimensions`` as stored (remembered until this connection writes)."""
    if "cube_dimensions" not in db.tables():
        return []

    def lookup() -> list[Dimension]:
        rows = db.execute(
            "SELECT name, kind, cardinality, cubable, edges FROM cube_dimensions ORDER BY position"
        )
        allowed = set(columns_with_role(db, "dimension"))
        return [
            Dimension(r[0], r[1], int(r[2]), bool(r[3]), tuple(float(e) for e in (r[4] or ())))
            for r in rows
            if r[0] in allowed
        ]

    return list(db.memo(("dimensions",), lookup))


def recorded_dimensions(db: Database) -> list[Dimension]:
    """The dimensions as the last cube build or ``update_cubes`` recorded them.

    Unlike ``dimensions`` this does not check the cubes against ``requests`` (a
    check that reads every row's provenance): for a caller that has just
    brought them up to date, such as a watch cycle.
    """
    return _recorded_dimensions(db)


def _fresh(db: Database) -> tuple[list[Cube], bool, bool]:
    """The recorded cubes that summarise ``requests`` as it is now.

    Returns the fresh cubes, whether the recorded dimensions are fresh (they are
    written just before the default cube, by the same refresh) and whether
    every recorded cube is.
    """
    recorded = _recorded_cubes(db)
    state, sizes = _source_state(db)
    fresh = [r for r in recorded if r.state == state and sizes.get(r.cube.name) == r.cube.rows]
    dims_fresh = any(r.cube.auto for r in fresh) and "cube_dimensions" in db.tables()
    return [r.cube for r in fresh], dims_fresh, len(fresh) == len(recorded)


def _catalog(db: Database) -> _Catalog:
    """The cubes and dimensions a read may use, checked against ``requests`` as it is now.

    A cube built from another state of ``requests`` (rows ingested, deleted or
    added since, by any connection, or a refresh cut short by a crash) never
    answers: a connection that may write rebuilds the cubes first, a read-only
    one reads the raw table and discovers the dimensions by scanning it.
    """
    if "requests" not in db.tables():
        return _Catalog((), ())
    cubes_now, dims_fresh, complete = _fresh(db)
    if not (dims_fresh and complete) and not db.read_only:
        refresh_cubes(db)
        cubes_now, dims_fresh, _ = _fresh(db)
    if dims_fresh:
        dims = _recorded_dimensions(db)
    else:
        dims = db.memo(("dimensions", "discovered"), lambda: discover_dimensions(db))
    return _Catalog(tuple(cubes_now), tuple(dims))


def cubes(db: Database) -> list[Cube]:
    """The cubes this database keeps that summarise ``requests`` as it is, smallest first.

    Stale cubes are rebuilt first when the connection may write, and left out
    when it is read-only (see ``_catalog``).
    """
    return list(_catalog(db).cubes)


def _default_cube_dims(
    db: Engine, dims: Sequence[Dimension], source_rows: int, grain: Grain = "hour"
) -> list[str]:
    """Dimensions of the default cube: in schema order, each kept if the cube stays in budget.

    The budget is ``max(CUBE_MIN_ROWS, min(CUBE_MAX_ROWS, rows / CUBE_REDUCTION))``; cube
    sizes are estimated with approximate distinct counts, one scan per step.
    """
    budget = max(CUBE_MIN_ROWS, min(CUBE_MAX_ROWS, source_rows // CUBE_REDUCTION))
    hour = f"epoch_us(ts) // {_BUCKET_US[grain]}"
    chosen: list[Dimension] = []
    remaining = [d for d in dims if d.cubable]
    while remaining:
        keys = [hour, *(_key_sql(d).split(" AS ")[0] for d in chosen)]
        items = ", ".join(
            f"approx_count_distinct(hash({', '.join([*keys, _key_sql(d).split(' AS ')[0]])}))"
            for d in remaining
        )
        estimates = db.execute(f"SELECT {items} FROM requests")[0]
        # A dimension too big now stays too big once more are added.
        fitting = [d for d, e in zip(remaining, estimates, strict=True) if int(e) <= budget]
        if not fitting:
            break
        chosen.append(fitting[0])
        remaining = fitting[1:]
    return [d.name for d in chosen]


def build_cube(
    db: Database,
    *,
    dims: Sequence[str] | None = None,
    grain: Grain = "hour",
    name: str | None = None,
) -> Cube:
    """Build (or rebuild) a cube over ``dims`` and record it in ``cube_catalog``.

    Parameters
    ----------
    dims
        Dimensions to keep; None chooses the default cube's (see
        ``_default_cube_dims``).
    grain
        One of ``GRAINS`` (``"hour"``, ``"day"``, ``"minute"``...).
    name
        Table name; ``cube_<grain>_<n>`` when omitted (the default cube is ``cube_default``).
    """
    if grain not in GRAINS:
        raise QueryError(f"grain {grain!r}: use one of {', '.join(GRAINS)}")
    if "requests" not in db.tables():
        raise QueryError("the database holds no requests yet; run `forensics ingest FILE` first")
    if _BUCKET_US[grain] < _BUCKET_US["hour"]:
        grain = checked_grain(db, grain)  # no finer than the timestamps' own grid
    known = {d.name: d for d in dimensions(db)}
    if name is None:
        existing = {r.cube.name: r.cube for r in _recorded_cubes(db)}
        same = [
            c.name
            for c in existing.values()
            if dims is not None and c.dims == tuple(dims) and c.grain == grain and not c.auto
        ]
        if dims is None:
            name = "cube_default"
        elif same:
            name = same[0]
        else:
            number = 1
            while f"cube_{grain}_{number}" in existing:
                number += 1
            name = f"cube_{grain}_{number}"
    return _build_cube(db, known, dims=dims, grain=grain, name=name)


def cube_sql(db: Engine, dims: Sequence[Dimension], grain: Grain) -> str:
    """The query a cube is made of: counts per time bucket and ``dims``' values (or buckets).

    One definition for every engine that holds ``requests``: DuckDB builds the
    table from it, Spark answers it for the cache (``forensics.spark.cache``).

    Examples
    --------
    >>> cube_sql(Database(":memory:"), [Dimension("model", "categorical", 2, True)], "day")
    'SELECT epoch_us(ts) // 86400000000 AS bucket, "model", count(*) AS requests FROM requests GROUP BY ALL'
    """
    keys = [_key_sql(d) for d in dims]
    measures = _cube_measures(db, signal_names(db))
    select = ", ".join([f"epoch_us(ts) // {_BUCKET_US[grain]} AS bucket", *keys, *measures])
    return f"SELECT {select} FROM requests GROUP BY ALL"


def _build_cube(
    db: Database,
    known: Mapping[str, Dimension],
    *,
    dims: Sequence[str] | None,
    grain: Grain,
    name: str,
) -> Cube:
    """Build one cube from ``known`` dimensions and record it with the state it summarises."""
    # The state is taken before the cube is built: rows another connection adds
    # in between make the cube look stale (rebuilt), never fresh with rows missing.
    state, _ = _source_state(db)
    source_rows = int(db.scalar("SELECT count(*) FROM requests"))
    auto = dims is None
    if dims is None:
        dims = _default_cube_dims(db, list(known.values()), source_rows, grain)
    for d in dims:
        if d not in known:
            raise _not_a_dimension(db, d, known)
        if not known[d].cubable:
            raise QueryError(
                f"dimension {d!r} has {known[d].cardinality} values, more than a cube holds "
                f"({CUBE_MAX_VALUES}); filter on it against the raw table instead"
            )
    db.execute(_CATALOG)
    db.execute(_CATALOG_STATE)
    table = quote_identifier(name)
    db.execute(
        f"CREATE OR REPLACE TABLE {table} AS {cube_sql(db, [known[d] for d in dims], grain)}"
    )
    rows = int(db.scalar(f"SELECT count(*) FROM {table}"))
    # Written after the table: a crash in between leaves the old state recorded (stale).
    db.execute(
        "INSERT OR REPLACE INTO cube_catalog "
        "(name, dims, grain, rows, source_rows, auto, built_at, source_state) "
        "VALUES ($n, $d, $g, $r, $s, $a, now(), $state)",
        {
            "n": name,
            "d": list(dims),
            "g": grain,
            "r": rows,
            "s": source_rows,
            "a": auto,
            "state": state,
        },
    )
    return Cube(name, tuple(dims), grain, rows, source_rows, auto)


def _cube_measures(db: Engine, signals: Sequence[str]) -> list[str]:
    """A cube's counts: ``requests``, and per signal ``n__`` (defined) and ``k__`` (true).

    On counted rows each sums the rows' counts (``_requests_sum``, ``_signal_sums``).
    """
    measures = [f"{_requests_sum(db)} AS requests"]
    for s in signals:
        n, k = _signal_sums(db, s)
        measures.append(f"{n} AS {quote_identifier('n__' + s)}")
        measures.append(f"{k} AS {quote_identifier('k__' + s)}")
    return measures


def _record_dimensions(db: Database, dims: Sequence[Dimension]) -> None:
    """Write ``cube_dimensions``: each dimension, and the values of the cubable text ones.

    The values let ``update_cubes`` tell, from the new rows alone, whether a
    dimension crossed its cardinality limit. The columns that were candidates
    (``forensics_meta`` key ``cube_columns``) let it tell a new column from one
    dropped before (no values, or too many).
    """
    db.execute(
        "CREATE OR REPLACE TABLE cube_dimensions (position INTEGER, name VARCHAR, kind VARCHAR, "
        'cardinality BIGINT, cubable BOOLEAN, edges DOUBLE[], "values" VARCHAR[])'
    )
    listed = [d.name for d in dims if d.kind == "categorical" and d.cubable]
    values: dict[str, list[str]] = {}
    if listed:
        items = ", ".join(
            f"list(DISTINCT {quote_identifier(n)}) FILTER (WHERE {quote_identifier(n)} IS NOT NULL)"
            for n in listed
        )
        row = db.execute(f"SELECT {items} FROM requests")[0]
        values = {n: sorted(v or ()) for n, v in zip(listed, row, strict=True)}
    for i, d in enumerate(dims):
        db.execute(
            "INSERT INTO cube_dimensions VALUES ($i, $n, $k, $c, $b, $e, $v)",
            {
                "i": i,
                "n": d.name,
                "k": d.kind,
                "c": d.cardinality,
                "b": d.cubable,
                "e": list(d.edges),
                "v": values.get(d.name),
            },
        )
    db.set_meta("cube_columns", json.dumps(sorted(_candidate_columns(db))))


def refresh_cubes(db: Database) -> list[Cube]:
    """Rediscover the dimensions and rebuild every cube from ``requests``.

    ``Workbench.ingest`` calls this after loading; any read through a cube
    calls it when the cubes no longer summarise ``requests`` as it is (see
    ``_catalog``). A cube asked for earlier whose dimensions no longer fit is
    dropped.
    """
    if "requests" not in db.tables():
        return []
    previous = _recorded_cubes(db)
    found = discover_dimensions(db)
    _record_dimensions(db, found)
    known = {d.name: d for d in found}
    grain = _chosen_grain(db)
    rebuilt = [_build_cube(db, known, dims=None, grain=grain, name="cube_default")]
    for entry in previous:
        cube = entry.cube
        if cube.auto:
            continue
        if all(d in known and known[d].cubable for d in cube.dims):
            rebuilt.append(_build_cube(db, known, dims=cube.dims, grain=cube.grain, name=cube.name))
        else:
            # The catalog row goes first: a crash in between leaves a table nothing reads.
            db.execute("DELETE FROM cube_catalog WHERE name = $n", {"n": cube.name})
            db.execute(f"DROP TABLE IF EXISTS {quote_identifier(cube.name)}")
    return rebuilt


def _chosen_grain(db: Engine) -> Grain:
    """The grain set by option (``set_grain``), else the data's (``grain.database_grain``)."""
    asked = db.meta(GRAIN_META)
    if asked is not None:
        return parse_grain(asked)  # type: ignore[return-value]
    if "requests" not in db.tables() or not db.scalar("SELECT EXISTS (SELECT 1 FROM requests)"):
        return "hour"  # no times to choose from
    from forensics.queries.counts import time_grid  # counts reads cubes: imported here

    grid = time_grid(db, units_us=[grain_us(g) for g in GRAINS], weight=count_column(db))
    aligned = timedelta(microseconds=grid.aligned_us) if grid.aligned_us else None
    return database_grain(grid.first, grid.last, grid.requests, aligned)  # type: ignore[return-value]


def data_grain(db: Database) -> Grain:
    """The finest time grain of this database: what its default cube was built at.

    Chosen from the timestamps when the cubes are built (``grain.database_grain``)
    unless an option set it (``set_grain``), and stored with the default cube in
    ``cube_catalog``, so every reader agrees. A read-only connection whose cubes
    are stale chooses it the same way without storing it.
    """
    for cube in _catalog(db).cubes:
        if cube.auto:
            return cube.grain
    return _chosen_grain(db)


def set_grain(db: Database, grain: str | timedelta | None) -> Grain:
    """Set (or, with None, unset) the database's grain and rebuild the cubes at it.

    Raises ``QueryError`` when ``grain`` is finer than the timestamps' own grid
    (``grain.check_grain``).
    """
    if "requests" not in db.tables():
        raise QueryError("the database holds no requests yet; run `forensics ingest FILE` first")
    if grain is None:
        db.execute("DELETE FROM forensics_meta WHERE key = $k", {"k": GRAIN_META})
    else:
        db.set_meta(GRAIN_META, checked_grain(db, grain))
    refresh_cubes(db)
    return data_grain(db)


def checked_grain(db: Database, grain: str | timedelta) -> Grain:
    """The name of ``grain``, refused when finer than the timestamps' grid (``grain.check_grain``)."""
    from forensics.queries.counts import time_grid  # counts reads cubes: imported here

    grid = time_grid(db, units_us=[grain_us(g) for g in GRAINS], weight=count_column(db))
    aligned = timedelta(microseconds=grid.aligned_us) if grid.aligned_us else None
    return check_grain(parse_grain(grain), aligned)  # type: ignore[return-value]
