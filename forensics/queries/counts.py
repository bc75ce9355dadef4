"""Counts of requests and of those showing a signal, from the smallest cube that answers.

A count query reads the smallest fresh cube that holds every column it needs
at a fine enough grain and whose time bounds fall on bucket edges, and the raw
``requests`` otherwise (``_source``): the answer is the same, only the speed
differs. True counts use ``count(*) FILTER (WHERE s)``: ``count_if`` of a
group where the signal is always null is null, not 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from forensics.db import Database
from forensics.errors import QueryError, UnknownNameError
from forensics.queries.cube import (
    _BUCKET_US,
    GRAINS,
    Cube,
    Grain,
    _Catalog,
    _catalog,
    groupable_columns,
)
from forensics.queries.dims import Dimension, _key_sql
from forensics.queries.engine import Engine
from forensics.queries.measures import (
    _signal_sums,
    _signal_terms,
    check_signal,
    no_users_on_counted_rows,
    signal_names,
)
from forensics.queries.where import Where, _bind, _epoch_us, _is_numeric_type, where_sql
from forensics.schema import quote_identifier

__all__ = [
    "Subset",
    "TimeGrid",
    "counts_by",
    "counts_in_subsets",
    "counts_per_dimension",
    "moment_counts",
    "time_grid",
    "time_range",
    "user_sequences",
    "value_counts",
]


@dataclass(frozen=True)
class _Source:
    """Where a count query reads from: a cube or the raw table."""

    table: str
    cube: Cube | None
    columns: dict[str, str]


def _aligned(t: datetime | None, grain: Grain) -> bool:
    return t is None or _epoch_us(t) % _BUCKET_US[grain] == 0


def _fits(d: Dimension, where: Where) -> bool:
    """Whether a cube's bucket column answers the filter on this dimension exactly."""
    if d.kind != "numeric":
        return True
    edges = set(d.edges)
    for column, allowed in where.values:
        if column == d.name and not (
            d.by_value and all(v is None or float(v) in edges for v in allowed)
        ):
            return False
    for column, gte, lt in where.ranges:
        if column == d.name and any(b is not None and b not in edges for b in (gte, lt)):
            return False
    return True


def _source(
    db: Database,
    needed: set[str],
    grain: Grain | None,
    signal: str,
    where: Where,
    *,
    times: Sequence[datetime | None] = (),
    catalog: _Catalog | None = None,
) -> _Source:
    """The smallest fresh cube that answers exactly, else ``requests``.

    ``times`` are further time bounds the query uses (besides ``where``'s),
    which must fall on the cube's bucket edges too. A query touching a column
    that is not a dimension (an outcome) reads ``requests``. ``catalog`` is the
    one the caller checked (``_catalog(db)`` when omitted).
    """
    catalog = catalog or _catalog(db)
    dims = {d.name: d for d in catalog.dimensions}
    bounds = (where.start, where.end, *times)
    for cube in catalog.cubes if needed <= set(dims) else ():
        if grain is not None and _BUCKET_US[grain] % _BUCKET_US[cube.grain]:
            continue  # a cube answers grains its buckets add up to
        if not (needed <= set(cube.dims)):
            continue
        if not all(_aligned(t, cube.grain) for t in bounds):
            continue
        if not all(_fits(dims[c], where) for c in needed if c in dims):
            continue
        columns = db.columns(cube.name)
        if f"n__{signal}" not in columns:
            continue
        return _Source(cube.name, cube, columns)
    if "requests" not in db.tables():
        raise QueryError("the database holds no requests yet; run `forensics ingest FILE` first")
    return _Source("requests", None, db.columns("requests"))


def counts_by(
    db: Database,
    *,
    by: Sequence[str],
    signal: str,
    grain: Grain | None = None,
    where: Where | None = None,
    use_cubes: bool = True,
) -> pl.DataFrame:
    """Count requests where ``signal`` is defined (``n``) and true (``k``) per group.

    ``by`` holds dimensions, or outcomes looked at by hand (``describe_column``:
    always read from the raw table). Numeric columns in ``by`` are bucketed (the
    value is the bucket's lower edge). Reads a cube when one covers ``by`` and
    ``where``; ``use_cubes=False`` forces the raw table (same answer).

    Returns
    -------
    pl.DataFrame
        ``[ts,] *by, n, k`` sorted by the keys; ``ts`` is the bucket start
        (UTC) when ``grain`` is given. With no ``by`` and no ``grain``, one row
        (0, 0 when nothing matches).
    """
    check_signal(db, signal)
    if grain is not None and grain not in GRAINS:
        raise QueryError(f"grain {grain!r}: use one of {', '.join(GRAINS)} or None")
    where = where or Where()
    catalog = _catalog(db)
    dims = groupable_columns(db, by, known={d.name: d for d in catalog.dimensions})
    needed = set(by) | where.columns
    source = (
        _source(db, needed, grain, signal, where, catalog=catalog)
        if use_cubes
        else _Source("requests", None, db.columns("requests"))
    )
    params: dict[str, Any] = {}
    keys = []
    for column in by:
        d = dims[column]
        if source.cube is None and d.kind == "numeric":
            keys.append(_key_sql(d))
        else:
            keys.append(quote_identifier(column))
    if source.cube is None:
        condition = where_sql(where, columns=source.columns, params=params)
        n, k = _signal_sums(db, signal)
        measures = [f"{n} AS n", f"{k} AS k"]
        time_key = "epoch_us(ts)"
        unit = 1
    else:
        condition = where_sql(
            where,
            columns=source.columns,
            params=params,
            time_column="bucket",
            time_unit_us=_BUCKET_US[source.cube.grain],
        )
        measures = [
            f"CAST(coalesce(sum({quote_identifier('n__' + signal)}), 0) AS BIGINT) AS n",
            f"CAST(coalesce(sum({quote_identifier('k__' + signal)}), 0) AS BIGINT) AS k",
        ]
        time_key = "bucket"
        unit = _BUCKET_US[source.cube.grain]
    if grain is not None:
        keys.insert(0, f"{time_key} // {_BUCKET_US[grain] // unit} AS _bucket")
    select = ", ".join([*keys, *measures])
    group = " GROUP BY ALL" if keys else ""
    inner = f"SELECT {select} FROM {quote_identifier(source.table)} WHERE {condition}{group}"
    outer = ["*"]
    if grain is not None:
        outer = [
            f"make_timestamptz(_bucket * {_BUCKET_US[grain]}) AS ts",
            *(quote_identifier(c) for c in by),
            "n",
            "k",
        ]
    order = " ORDER BY ALL" if keys else ""
    frame = db.frame(f"SELECT {', '.join(outer)} FROM ({inner}){order}", params)
    return _typed_counts(frame, by, grain, dims)


def _typed_counts(
    frame: pl.DataFrame, by: Sequence[str], grain: Grain | None, dims: Mapping[str, Dimension]
) -> pl.DataFrame:
    schema: dict[str, Any] = {}
    if grain is not None:
        schema["ts"] = pl.Datetime("us", "UTC")
    for column in by:
        schema[column] = pl.Float64 if dims[column].kind == "numeric" else None
    if frame.height == 0:
        empty = {c: (t or pl.Utf8) for c, t in schema.items()}
        return pl.DataFrame(schema={**empty, "n": pl.Int64, "k": pl.Int64})
    casts = [pl.col("n").cast(pl.Int64), pl.col("k").cast(pl.Int64)]
    casts += [pl.col(c).cast(t) for c, t in schema.items() if t is not None]
    return frame.with_columns(casts)


def counts_per_dimension(
    db: Database,
    *,
    dims: Sequence[str],
    signal: str,
    windows: Mapping[str, tuple[datetime | None, datetime | None]],
    where: Where | None = None,
    use_cubes: bool = True,
) -> pl.DataFrame:
    """Count ``n`` and ``k`` per value of each dimension in several time windows at once.

    The numbers are those of ``counts_by(by=[d], where=where.between(*window))``
    for each dimension ``d`` and window, 0 where a value has no requests in a
    window, but each source (a cube, or ``requests``) is read once for every
    dimension and window it answers (``GROUP BY GROUPING SETS``), instead of
    once per dimension and window. Windows may overlap. ``counts_in_subsets``
    counts in sets of requests of any shape.

    Parameters
    ----------
    dims
        Dimensions, or outcomes named by hand (read from the raw table); numeric
        ones are bucketed (the value is the bucket's lower edge).
    windows
        Name -> ``(start, end)`` (end exclusive, None for an open end); the name
        goes into the count columns' names.
    where
        A filter applied in every window (its time range intersects each window).

    Returns
    -------
    pl.DataFrame
        ``dimension, *dims, n_<window>, k_<window>...``: one row per dimension and
        value with requests in any window, dimensions in the order given and
        values in ascending order, missing last. A row's value is in its
        dimension's column; the other dimensions' columns are null there.

    Examples
    --------
    >>> db = Database(":memory:")
    >>> _ = db.execute("INSERT INTO signal_definitions (name, kind) VALUES ('bad', 'user')")
    >>> _ = db.execute("CREATE TABLE requests (ts TIMESTAMPTZ, model VARCHAR, bad BOOLEAN)")
    >>> _ = db.execute("INSERT INTO requests VALUES ('2025-01-01', 'a', true), "
    ...     "('2025-01-02', 'a', false), ('2025-01-02', 'b', true), ('2025-01-02', 'b', NULL)")
    >>> day2 = datetime(2025, 1, 2, tzinfo=UTC)
    >>> windows = {"before": (None, day2), "after": (day2, None)}
    >>> counts_per_dimension(db, dims=["model"], signal="bad", windows=windows).rows()
    [('model', 'a', 1, 1, 1, 0), ('model', 'b', 0, 0, 1, 1)]
    """
    where = where or Where()
    scope = Where(where.values, where.ranges)
    subsets = {}
    for name, window in windows.items():
        span = where.between(*window)
        times = Where(start=span.start, end=span.end)
        subsets[name] = Subset(within=(scope, times) if scope.columns else (times,))
    return counts_in_subsets(db, dims=dims, signal=signal, subsets=subsets, use_cubes=use_cubes)


@dataclass(frozen=True)
class Subset:
    """A set of requests: those meeting every filter of ``within`` and none of ``without``.

    A selection (a signature's slice and window, a brushed region) and the
    baseline it is compared with, e.g. everything else in the date range,
    without the rows of other signatures:
    ``Subset(within=(scope,), without=(selection, *others))``.

    Examples
    --------
    >>> s = Subset(within=(Where.parse({"model": "a"}),), without=(Where.parse({"region": "eu"}),))
    >>> sorted(s.columns)
    ['model', 'region']
    """

    within: tuple[Where, ...] = ()
    """Filters every request of the set meets (none: every request)."""
    without: tuple[Where, ...] = ()
    """Filters no request of the set meets (a request missing a value does not meet one)."""

    @property
    def columns(self) -> set[str]:
        """Columns its filters touch (not counting ts)."""
        return {c for w in (*self.within, *self.without) for c in w.columns}

    @property
    def times(self) -> list[datetime | None]:
        """The time bounds its filters use."""
        return [t for w in (*self.within, *self.without) for t in (w.start, w.end)]


def _subsets_source_filter(subsets: Iterable[Subset]) -> Where:
    """Every value and range condition of the subsets, for choosing a source that fits them."""
    wheres = [w for s in subsets for w in (*s.within, *s.without)]
    return Where(
        tuple(v for w in wheres for v in w.values), tuple(r for w in wheres for r in w.ranges)
    )


def counts_in_subsets(
    db: Database,
    *,
    dims: Sequence[str],
    signal: str,
    subsets: Mapping[str, Subset],
    use_cubes: bool = True,
    raw_true_only: bool = False,
) -> pl.DataFrame:
    """Count ``n`` and ``k`` per value of each dimension in several sets of requests at once.

    Each source (the smallest cube that answers every set exactly, or
    ``requests``) is read once for every dimension it answers, with one
    ``GROUP BY GROUPING SETS``; the sets may overlap.

    Parameters
    ----------
    dims
        Dimensions, or outcomes named by hand (read from the raw table); numeric
        ones are bucketed (the value is the bucket's lower edge).
    subsets
        Name -> ``Subset``; the name goes into the count columns' names.
    raw_true_only
        Dimensions no cube answers are counted over the requests where the
        signal is true only: their ``k`` is exact and their ``n`` null. Grouping
        every request by many dimensions takes seconds on 10M rows; the true
        ones are a small part of them.

    Returns
    -------
    pl.DataFrame
        ``dimension, *dims, n_<name>, k_<name>...``, shaped as
        ``counts_per_dimension``'s.

    Examples
    --------
    >>> db = Database(":memory:")
    >>> _ = db.execute("INSERT INTO signal_definitions (name, kind) VALUES ('bad', 'user')")
    >>> _ = db.execute("CREATE TABLE requests (ts TIMESTAMPTZ, model VARCHAR, bad BOOLEAN)")
    >>> _ = db.execute("INSERT INTO requests VALUES ('2025-01-01', 'a', true), "
    ...     "('2025-01-02', 'a', false), ('2025-01-02', 'b', true), ('2025-01-03', 'b', false)")
    >>> day2 = Where.parse({"ts": ("2025-01-02", "2025-01-03")})
    >>> sets = {"day2": Subset(within=(day2,)), "rest": Subset(without=(day2,))}
    >>> counts_in_subsets(db, dims=["model"], signal="bad", subsets=sets).rows()
    [('model', 'a', 1, 0, 1, 1), ('model', 'b', 1, 1, 1, 0)]
    """
    check_signal(db, signal)
    catalog = _catalog(db)
    known = groupable_columns(db, dims, known={d.name: d for d in catalog.dimensions})
    fits = _subsets_source_filter(subsets.values())
    times = [t for s in subsets.values() for t in s.times]
    groups: dict[str, tuple[_Source, list[str]]] = {}
    for column in dict.fromkeys(dims):
        source = (
            _source(db, {column} | fits.columns, None, signal, fits, times=times, catalog=catalog)
            if use_cubes
            else _Source("requests", None, db.columns("requests"))
        )
        groups.setdefault(source.table, (source, []))[1].append(column)
    counts = [f"{m}_{name}" for name in subsets for m in ("n", "k")]
    frames = [
        _counts_per_dimension_from(
            db,
            source,
            [known[c] for c in columns],
            signal,
            subsets,
            true_only=raw_true_only and source.cube is None,
        )
        for source, columns in groups.values()
    ]
    schema: dict[str, Any] = {"dimension": pl.Utf8}
    schema |= {c: (pl.Float64 if known[c].kind == "numeric" else pl.Utf8) for c in dims}
    schema |= dict.fromkeys(counts, pl.Int64)
    frames = [f for f in frames if f.height]
    if not frames:
        return pl.DataFrame(schema=schema)
    frame = pl.concat(frames, how="diagonal_relaxed")
    # a source with no rows left its dimensions' columns out
    frame = frame.with_columns(
        pl.lit(None, dtype=schema[c]).alias(c) for c in dims if c not in frame.columns
    )
    order = {c: i for i, c in enumerate(dict.fromkeys(dims))}
    frame = frame.with_columns(
        pl.col("dimension").replace_strict(order, return_dtype=pl.Int64).alias("_order")
    ).sort(["_order", *order], nulls_last=True, maintain_order=True)
    return frame.select(
        "dimension",
        *(pl.col(c).cast(pl.Float64) if known[c].kind == "numeric" else pl.col(c) for c in order),
        *(pl.col(c).cast(pl.Int64) for c in counts),
    )


def _subset_sql(
    subset: Subset, shared: Sequence[Where], source: _Source, params: dict[str, Any]
) -> str:
    """SQL: whether a row of ``source`` is in ``subset`` (the ``shared`` filters left out)."""
    time: dict[str, Any] = {}
    if source.cube is not None:
        time = {"time_column": "bucket", "time_unit_us": _BUCKET_US[source.cube.grain]}
    parts = [
        f"coalesce({where_sql(w, columns=source.columns, params=params, **time)}, false)"
        for w in subset.within
        if w not in shared
    ]
    parts += [
        f"NOT coalesce({where_sql(w, columns=source.columns, params=params, **time)}, false)"
        for w in subset.without
    ]
    return "(" + " AND ".join(parts) + ")" if parts else "true"


def _counts_per_dimension_from(
    db: Database,
    source: _Source,
    dims: Sequence[Dimension],
    signal: str,
    subsets: Mapping[str, Subset],
    *,
    true_only: bool = False,
) -> pl.DataFrame:
    """One ``GROUPING SETS`` query of ``counts_in_subsets`` over one source."""
    params: dict[str, Any] = {}
    if source.cube is None:
        keys = [_key_sql(d) for d in dims]
        n, k = _signal_terms(db, signal)
        measures = [f"{n} AS _n", f"{k} AS _k"]
        time: dict[str, Any] = {}
    else:
        keys = [quote_identifier(d.name) for d in dims]
        measures = [
            f"{quote_identifier('n__' + signal)} AS _n",
            f"{quote_identifier('k__' + signal)} AS _k",
        ]
        time = {"time_column": "bucket", "time_unit_us": _BUCKET_US[source.cube.grain]}
    # Filters every set has are applied once, to the scan (they narrow it most).
    listed = list(subsets.values())
    shared = [w for w in listed[0].within if all(w in s.within for s in listed)] if listed else []
    flags = [_subset_sql(s, shared, source, params) for s in listed]
    condition = " AND ".join(
        [
            f"coalesce({where_sql(w, columns=source.columns, params=params, **time)}, false)"
            for w in shared
        ]
        + ([f"({_signal_terms(db, signal)[1]}) > 0"] if true_only else [])
    )
    inner = (
        f"SELECT {', '.join([*keys, *measures, *(f'{f} AS _w{i}' for i, f in enumerate(flags))])} "
        f"FROM {quote_identifier(source.table)} "
        f"WHERE {condition or 'true'} AND ({' OR '.join(flags) or 'false'})"
    )
    names = [quote_identifier(d.name) for d in dims]
    which = " ".join(
        f"WHEN grouping({n}) = 0 THEN {_bind(params, d.name)}"
        for n, d in zip(names, dims, strict=True)
    )
    sums = [
        f"CAST(NULL AS BIGINT) AS {quote_identifier(f'{m}_{w}')}"
        if true_only and m == "n"
        else f"CAST(coalesce(sum(_{m}) FILTER (WHERE _w{i}), 0) AS BIGINT) AS {quote_identifier(f'{m}_{w}')}"
        for i, w in enumerate(subsets)
        for m in ("n", "k")
    ]
    combos = inner
    if source.cube is not None:
        # Summed per combination of values and sets first: DuckDB's grouping sets
        # cost about twice as much over a cube's rows as over these few combinations
        # (a cube's dimensions have few values; the raw table's may have many).
        combos = (
            f"SELECT {', '.join([*names, *(f'_w{i}' for i in range(len(flags)))])}, "
            f"sum(_n) AS _n, sum(_k) AS _k FROM ({inner}) GROUP BY ALL"
        )
    sets = ", ".join(f"({n})" for n in names)
    return db.frame(
        f"SELECT CASE {which} END AS dimension, {', '.join([*names, *sums])} FROM ({combos}) "
        f"GROUP BY GROUPING SETS ({sets})",
        params,
    )


def value_counts(
    db: Database, *, dims: Sequence[str], where: Where | None = None, use_cubes: bool = True
) -> pl.DataFrame:
    """Requests per value of each dimension under every filter but the dimension's own.

    What a filter list shows beside each value (cross-filtering): the counts of
    ``model``'s values follow the filters on every other column and the time
    range, not the filter on ``model`` itself, so that the values not chosen
    still say how many requests choosing them would add. Each source (a cube
    holding the dimension and every filtered column, else ``requests``) is read
    once for all the dimensions it answers.

    Returns
    -------
    pl.DataFrame
        ``dimension, value, requests``: ``value`` as text (a numeric
        dimension's bucket lower edge written with ``%g``; null for a missing
        value), values with requests only, most requests first.

    Examples
    --------
    >>> db = Database(":memory:")
    >>> _ = db.execute("CREATE TABLE requests (ts TIMESTAMPTZ, model VARCHAR, region VARCHAR)")
    >>> _ = db.execute("INSERT INTO requests VALUES ('2025-01-01', 'a', 'eu'), "
    ...     "('2025-01-02', 'a', 'us'), ('2025-01-02', 'b', 'us')")
    >>> where = Where.parse({"model": ["a"], "region": ["us"]})
    >>> value_counts(db, dims=["model", "region"], where=where, use_cubes=False).rows()
    [('model', 'a', 1), ('model', 'b', 1), ('region', 'eu', 1), ('region', 'us', 1)]
    """
    where = where or Where()
    if not dims:
        return pl.DataFrame(schema={"dimension": pl.Utf8, "value": pl.Utf8, "requests": pl.Int64})
    catalog = _catalog(db) if use_cubes else None
    known = groupable_columns(
        db, dims, known={d.name: d for d in (catalog or _catalog(db)).dimensions}
    )
    signals = signal_names(db)
    groups: dict[str, tuple[_Source, list[str]]] = {}
    for column in dict.fromkeys(dims):
        source = _Source("requests", None, db.columns("requests"))
        if catalog is not None and signals:
            source = _source(
                db, {column} | where.columns, None, signals[-1], where, catalog=catalog
            )
        groups.setdefault(source.table, (source, []))[1].append(column)
    frames = [
        _value_counts_from(db, source, [known[c] for c in columns], where)
        for source, columns in groups.values()
    ]
    frame = pl.concat(frames) if frames else pl.DataFrame()
    return frame.filter(pl.col("requests") > 0).sort(
        ["dimension", "requests", "value"], descending=[False, True, False], nulls_last=True
    )


def _without(where: Where, column: str) -> Where:
    return Where(
        tuple(v for v in where.values if v[0] != column),
        tuple(r for r in where.ranges if r[0] != column),
        where.start,
        where.end,
    )


def _value_counts_from(
    db: Database, source: _Source, dims: Sequence[Dimension], where: Where
) -> pl.DataFrame:
    """One ``GROUPING SETS`` query of ``value_counts`` over one source."""
    params: dict[str, Any] = {}
    time: dict[str, Any] = {}
    if source.cube is not None:
        time = {"time_column": "bucket", "time_unit_us": _BUCKET_US[source.cube.grain]}
        keys = [quote_identifier(d.name) for d in dims]
        rows = "requests"
    else:
        keys = [_key_sql(d) for d in dims]
        rows = "1"
    # The time range and the filters on columns outside these dimensions hold for all.
    shared = Where(
        tuple(v for v in where.values if v[0] not in {d.name for d in dims}),
        tuple(r for r in where.ranges if r[0] not in {d.name for d in dims}),
        where.start,
        where.end,
    )
    flags = [
        f"coalesce({where_sql(_without(where, d.name), columns=source.columns, params=params, **time)}, false)"
        for d in dims
    ]
    condition = where_sql(shared, columns=source.columns, params=params, **time)
    inner = (
        f"SELECT {', '.join([*keys, f'{rows} AS _r', *(f'{f} AS _x{i}' for i, f in enumerate(flags))])} "
        f"FROM {quote_identifier(source.table)} WHERE {condition} AND ({' OR '.join(flags)})"
    )
    names = [quote_identifier(d.name) for d in dims]
    which = " ".join(
        f"WHEN grouping({n}) = 0 THEN {_bind(params, d.name)}"
        for n, d in zip(names, dims, strict=True)
    )
    values = " ".join(
        f"WHEN grouping({n}) = 0 THEN "
        + (f"printf('%g', {n})" if d.kind == "numeric" else f"CAST({n} AS VARCHAR)")
        for n, d in zip(names, dims, strict=True)
    )
    counts = " ".join(
        f"WHEN grouping({n}) = 0 THEN sum(_r) FILTER (WHERE _x{i})" for i, n in enumerate(names)
    )
    sets = ", ".join(f"({n})" for n in names)
    return db.frame(
        f"SELECT CASE {which} END AS dimension, CASE {values} END AS value, "
        f"CAST(coalesce(CASE {counts} END, 0) AS BIGINT) AS requests FROM ({inner}) "
        f"GROUP BY GROUPING SETS ({sets})",
        params,
    )


def time_range(db: Database) -> tuple[datetime | None, datetime | None]:
    """First request time and the end of the last hour that holds one (None, None if empty)."""
    if "requests" not in db.tables():
        return None, None

    def lookup() -> tuple[datetime | None, datetime | None]:
        first, last = db.execute(
            f"SELECT min(ts), make_timestamptz((max(epoch_us(ts)) // {_BUCKET_US['hour']} + 1) "
            f"* {_BUCKET_US['hour']}) FROM requests"
        )[0]
        if first is None:
            return None, None
        return first.astimezone(UTC), last.astimezone(UTC)

    return db.memo(("time_range",), lookup)


@dataclass(frozen=True)
class TimeGrid:
    """How the request times lie: their span, volume, and the coarsest grid they sit on."""

    first: datetime
    """First request time (UTC)."""
    last: datetime
    """Last request time (UTC)."""
    requests: int
    """Requests (rows, or the sum of the count column)."""
    aligned_us: int
    """The largest of the ``units_us`` asked that divides every time (0: none does)."""


def time_grid(db: Engine, *, units_us: Sequence[int], weight: str | None = None) -> TimeGrid:
    """Span, volume and alignment of ``requests.ts`` in one pass.

    ``weight`` names a column holding how many requests a row stands for (rows
    count one each without it). Raises ``QueryError`` when there are no requests.
    """
    if "requests" not in db.tables():
        raise QueryError("the database holds no requests yet; run `forensics ingest FILE` first")
    amount = "count(*)" if weight is None else f"coalesce(sum({_weight_column(db, weight)}), 0)"
    misses = [
        f"count(*) FILTER (WHERE epoch_us(ts) % {int(u)} <> 0) AS miss_{i}"
        for i, u in enumerate(units_us)
    ]
    row = db.execute(f"SELECT min(ts), max(ts), {amount}, {', '.join(misses)} FROM requests")[0]
    if row[0] is None:
        raise QueryError("the database holds no requests yet; run `forensics ingest FILE` first")
    aligned = [int(u) for u, miss in zip(units_us, row[3:], strict=True) if miss == 0]
    return TimeGrid(
        first=row[0].astimezone(UTC),
        last=row[1].astimezone(UTC),
        requests=int(row[2]),
        aligned_us=max(aligned, default=0),
    )


def _weight_column(db: Engine, weight: str) -> str:
    """The quoted count column, checked to exist and hold numbers."""
    columns = db.columns("requests")
    if weight not in columns:
        raise UnknownNameError.for_name("count column", weight, columns)
    if not _is_numeric_type(columns[weight]):
        raise QueryError(
            f"count column {weight!r} holds {columns[weight]}, not numbers; name the column "
            "that says how many requests a row stands for"
        )
    return quote_identifier(weight)


def moment_counts(
    db: Engine,
    *,
    signal: str,
    dims: Sequence[Dimension],
    grain_us: int,
    start: datetime | None = None,
    end: datetime | None = None,
    weight: str | None = None,
    where: Where | None = None,
) -> pl.DataFrame:
    """Requests (``n``) and those showing ``signal`` (``k``) per time bucket and slice.

    Reads the raw ``requests`` (cubes hold hours; an explanation works at the data's
    own grain). A boolean signal counts the rows where it is defined and true; with
    ``weight``, each row counts as that many requests. A signal held as a number is
    already a count of requests showing it (then ``n`` is the sum of ``weight``).
    Numeric dimensions enter as buckets (their lower edge). ``where`` keeps only the
    requests it selects (its time range intersects ``start``/``end``).

    Returns
    -------
    pl.DataFrame
        ``t`` (bucket start, UTC), one column per dimension, ``n``, ``k`` (Int64).
    """
    check_signal(db, signal)
    columns = db.columns("requests")
    q = quote_identifier(signal)
    w = "1" if weight is None else _weight_column(db, weight)
    if columns[signal].upper() == "BOOLEAN":
        n = f"sum({w}) FILTER (WHERE {q} IS NOT NULL)"
        k = f"sum({w}) FILTER (WHERE {q})"
    else:
        n = f"sum({w}) FILTER (WHERE {q} IS NOT NULL)"
        k = f"sum({q})"
    params: dict[str, Any] = {"grain": int(grain_us)}
    conditions = ["TRUE"]
    if start is not None:
        conditions.append("ts >= $start")
        params["start"] = start
    if end is not None:
        conditions.append("ts < $end")
        params["end"] = end
    if where is not None:
        conditions.append(where_sql(where, columns=columns, params=params))
    keys = [_key_sql(d) for d in dims]
    sql = (
        f"SELECT make_timestamptz(epoch_us(ts) // $grain * $grain) AS t, "
        f"{''.join(key + ', ' for key in keys)}"
        f"CAST(coalesce({n}, 0) AS BIGINT) AS n, CAST(coalesce({k}, 0) AS BIGINT) AS k "
        f"FROM requests WHERE {' AND '.join(conditions)} GROUP BY ALL HAVING n > 0"
    )
    frame = db.frame(sql, params)
    return frame.with_columns(pl.col("t").dt.convert_time_zone("UTC"))


def user_sequences(db: Database, *, signal: str, where: Where | None = None) -> pl.DataFrame:
    """Per user: requests with the signal defined, how many were true, and consecutive pairs.

    Returns
    -------
    pl.DataFrame
        ``user_id, n, k, pairs, after_true, true_after_true, true_after_false``:
        ``pairs`` counts consecutive (previous, current) requests of the user
        where both are defined; ``after_true`` those whose previous was true.
    """
    check_signal(db, signal)
    no_users_on_counted_rows(db, "user exposure")
    columns = db.columns("requests")
    if "user_id" not in columns or not db.scalar(
        "SELECT count(*) FROM requests WHERE user_id IS NOT NULL"
    ):
        raise QueryError(
            "requests has no user_id values; user exposure needs the user_id column "
            '(map yours with [columns] user_id = "..." in a --mapping file)'
        )
    params: dict[str, Any] = {}
    condition = where_sql(where or Where(), columns=columns, params=params)
    s = quote_identifier(signal)
    sql = (
        "SELECT user_id, count(*) AS n, count(*) FILTER (WHERE cur) AS k, "
        "count(prev) AS pairs, count(*) FILTER (WHERE prev) AS after_true, "
        "count(*) FILTER (WHERE prev AND cur) AS true_after_true, "
        "count(*) FILTER (WHERE NOT prev AND cur) AS true_after_false FROM ("
        f"SELECT user_id, {s} AS cur, "
        f"lag({s}) OVER (PARTITION BY user_id ORDER BY ts, request_id) AS prev "
        f"FROM requests WHERE {condition} AND user_id IS NOT NULL AND {s} IS NOT NULL"
        ") GROUP BY user_id ORDER BY user_id"
    )
    return db.frame(sql, params)
