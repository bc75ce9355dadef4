"""The separation's workspace: a temporary table of what the signature search reads.

The search works on a temporary copy of what it needs: the tick of each request
(``_tick``: buckets of the database's grain since the epoch, UTC; hours on
hour-grained data, see ``forensics.grain``), every dimension (text ones as enums, numeric ones as fine
buckets, both as the bucket's lower edge and as its index ``_i__<d>``), every
signal, and per signal two working columns: ``_x__<s>`` (the row is explained
by a signature found already) and ``_p__<s>`` (the row's expected probability
of ``s`` under the baseline model). Temporary tables live in memory, so a
read-only database can be searched. On counted rows (``[counts]``) it also holds
``_w``, the requests a row stands for, and a signal's column its count: every
``n`` is then a sum of ``_w``, every ``k`` a sum of the signal's count and every
expected count a sum of ``_p * _w``, so the search sees the requests, not the
rows. Every statement on it is a function here;
the counts on ``requests`` that another engine must answer (``slice_counts``,
``requests_and_users``) stay in ``queries``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import polars as pl

from forensics import queries
from forensics.db import Database
from forensics.queries import Dimension, Where, bucket_index_sql
from forensics.schema import quote_identifier

__all__ = [
    "HOUR_US",
    "WORKSPACE",
    "bucket_index_name",
    "cells",
    "columns",
    "create",
    "drop",
    "expected_column",
    "explained_column",
    "flags",
    "margins",
    "mark_explained",
    "series",
    "set_expected",
    "value_counts",
    "value_name",
    "where_sql",
]

WORKSPACE = "_separation"
"""Name of the temporary table the signature search works on."""

HOUR_US = 3_600_000_000
"""Microseconds per hour: the workspace's tick unless another grain is asked."""


def explained_column(signal: str) -> str:
    """Workspace column flagging rows a signature already explains for ``signal``."""
    return quote_identifier(f"_x__{signal}")


def expected_column(signal: str) -> str:
    """Workspace column holding each row's expected probability of ``signal``."""
    return quote_identifier(f"_p__{signal}")


WEIGHT = "_w"
"""Workspace column holding the requests a counted row stands for (counted rows only)."""


def _counted(db: Database) -> bool:
    return queries.count_column(db) is not None


def _n_sum(db: Database) -> str:
    """SQL aggregate: requests in a group of workspace rows."""
    return f"CAST(sum({WEIGHT}) AS BIGINT)" if _counted(db) else "count(*)"


def _k_sum(db: Database, signal: str) -> str:
    """SQL aggregate: requests showing ``signal`` in a group of workspace rows."""
    s = quote_identifier(signal)
    return (
        f"CAST(coalesce(sum({s}), 0) AS BIGINT)" if _counted(db) else f"count(*) FILTER (WHERE {s})"
    )


def _e_sum(db: Database, signal: str) -> str:
    """SQL aggregate: expected requests showing ``signal`` in a group of workspace rows."""
    p = expected_column(signal)
    return f"sum({p} * {WEIGHT})" if _counted(db) else f"sum({p})"


SAMPLE_RESOLUTION = 1_000_000
"""Sampling fractions of the workspace are multiples of one in this many."""


def create(
    db: Database,
    *,
    dims: Sequence[Dimension],
    edges: Mapping[str, Sequence[float]],
    signals: Sequence[str],
    fraction: float = 1.0,
    tick_us: int = HOUR_US,
) -> int:
    """Create the workspace from ``requests``; numeric dimensions bucketed at ``edges``.

    Workspace time is ``_tick = epoch_us(ts) // tick_us`` (the grain; hours by default).

    With ``fraction`` < 1, a uniform sample of the requests: each row is kept
    when a hash of its source (file, row) falls below the fraction, so the
    same database gives the same sample every time. Counted rows are thinned
    instead (``_thin``): each of a row's requests is kept with probability
    ``fraction``, its signals' counts drawn among the kept, from a fixed seed.

    Returns the number of requests (rows, or the sum of the counts).
    """
    items = [f"CAST(epoch_us(ts) // {int(tick_us)} AS INTEGER) AS _tick"]
    weight = queries.count_column(db)
    if weight is not None:
        items.append(f"CAST({quote_identifier(weight)} AS BIGINT) AS {WEIGHT}")
    enums = _enum_types(db, [d.name for d in dims if d.kind != "numeric"])
    lookups = []  # a numeric bucket's edge, looked up from its index (one search per row)
    for d in dims:
        q = quote_identifier(d.name)
        if d.kind == "numeric":
            i = quote_identifier(bucket_index_name(d.name))
            items.append(f"CAST({bucket_index_sql(d.name, edges[d.name])} AS USMALLINT) AS {i}")
            items.append(f"CAST({q} AS DOUBLE) AS {quote_identifier(value_name(d.name))}")
            listed = ", ".join(f"{float(e)!r}" for e in edges[d.name])
            lookups.append(f"CAST([{listed}][{i} + 1] AS DOUBLE) AS {q}")
        elif d.name in enums:
            items.append(f"CAST({q} AS {enums[d.name]}) AS {q}")
        else:
            items.append(q)
    for s in signals:
        items += [
            quote_identifier(s),
            f"false AS {explained_column(s)}",
            f"CAST(NULL AS DOUBLE) AS {expected_column(s)}",
        ]
    thin = fraction < 1.0 and weight is not None
    if thin:  # the rows' source, to write the thinned counts back
        items += ["_source_file_id", "_source_row"]
    sample = ""
    if fraction < 1.0 and weight is None:
        threshold = int(max(fraction, 0.0) * SAMPLE_RESOLUTION)
        sample = f" WHERE hash(_source_file_id, _source_row) % {SAMPLE_RESOLUTION} < {threshold}"
    db.execute(
        f"CREATE OR REPLACE TEMP TABLE {WORKSPACE} AS SELECT {', '.join(['*', *lookups])} "
        f"FROM (SELECT {', '.join(items)} FROM requests{sample})"
    )
    if thin:
        _thin(db, signals=signals, fraction=max(fraction, 0.0))
    return int(db.scalar(f"SELECT coalesce({_n_sum(db)}, 0) FROM {WORKSPACE}"))


THINNING_SEED = 17
"""Seed of the binomial thinning of counted rows: the same database, the same sample."""


def _thin(db: Database, *, signals: Sequence[str], fraction: float) -> None:
    """Thin counted rows to a sample of their requests, in place.

    Each request of a row is kept with probability ``fraction`` (binomial), and
    each signal's count among the kept is drawn without replacement from the
    row's (hypergeometric): the counts a uniform sample of the requests would
    give. Rows left with no request are dropped.
    """
    names = [quote_identifier(s) for s in signals]
    frame = db.frame(
        f"SELECT _source_file_id, _source_row, {WEIGHT}"
        f"{''.join(', ' + n for n in names)} FROM {WORKSPACE} ORDER BY _source_file_id, _source_row"
    )
    rng = np.random.default_rng(THINNING_SEED)
    total = frame[WEIGHT].fill_null(0).to_numpy().astype(np.int64)
    kept = rng.binomial(total, fraction)
    thinned = {"_source_file_id": frame["_source_file_id"], "_source_row": frame["_source_row"]}
    thinned[WEIGHT] = pl.Series(kept)
    for s in signals:
        column = frame[s]
        good = column.fill_null(0).to_numpy().astype(np.int64)
        drawn = rng.hypergeometric(good, total - good, kept)
        thinned[s] = pl.Series(drawn).set(column.is_null(), None)
    db.con.register("_thinned", pl.DataFrame(thinned).to_arrow())
    try:
        sets = ", ".join(f"{n} = t.{n}" for n in [WEIGHT, *names])
        db.execute(
            f"UPDATE {WORKSPACE} SET {sets} FROM _thinned t WHERE "
            f"{WORKSPACE}._source_file_id = t._source_file_id "
            f"AND {WORKSPACE}._source_row = t._source_row"
        )
        db.execute(f"DELETE FROM {WORKSPACE} WHERE {WEIGHT} = 0")
    finally:
        db.con.unregister("_thinned")


def value_name(name: str) -> str:
    """Workspace column holding numeric dimension ``name``'s own value (a DOUBLE).

    Conditions on a numeric dimension test it (``where_sql``), so that an edge
    refined to the data (``moves.edges``) selects the same rows here as
    in ``requests``; the column named ``name`` holds its bucket's lower edge.
    """
    return f"_v__{name}"


def where_sql(where: Where, columns: Mapping[str, str], params: dict[str, Any]) -> str:
    """``queries.where_sql`` over the workspace: numeric ranges test the columns' own values."""
    ranges = tuple(
        (value_name(c) if value_name(c) in columns else c, lo, hi) for c, lo, hi in where.ranges
    )
    return queries.where_sql(replace(where, ranges=ranges), columns=columns, params=params)


def bucket_index_name(name: str) -> str:
    """Workspace column holding the bucket index of numeric dimension ``name``.

    The search groups by it rather than by the bucket's edge: DuckDB groups a
    small integer about twice as fast as a DOUBLE.
    """
    return f"_i__{name}"


ENUM_MAX_VALUES = 100_000
"""Text dimensions with at most this many values are enums in the workspace."""


def _enum_types(db: Database, names: Sequence[str]) -> dict[str, str]:
    """An ENUM type per text column of ``names``, listing the values ``requests`` holds.

    The search groups by every dimension in each of its queries; DuckDB groups
    an enum by its small integer code, several times faster than by text.
    """
    columns = db.columns("requests")
    text = [n for n in names if columns.get(n, "").upper() == "VARCHAR"]
    if not text:
        return {}
    lists = ", ".join(
        f"list(DISTINCT {quote_identifier(n)} ORDER BY {quote_identifier(n)})" for n in text
    )
    found = db.execute(f"SELECT {lists} FROM requests")[0]
    out = {}
    for name, values in zip(text, found, strict=True):
        values = [v for v in values or [] if v is not None]
        if 0 < len(values) <= ENUM_MAX_VALUES:
            literals = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
            out[name] = f"ENUM({literals})"
    return out


def _as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Enum (categorical) columns of a workspace result back as text, as ``requests`` has them."""
    cats = [c for c, t in frame.schema.items() if isinstance(t, (pl.Categorical, pl.Enum))]
    return frame.with_columns(pl.col(cats).cast(pl.String)) if cats else frame


def drop(db: Database) -> None:
    """Drop the workspace (it also goes when the connection closes)."""
    db.execute(f"DROP TABLE IF EXISTS temp.{WORKSPACE}")


def columns(db: Database) -> dict[str, str]:
    """Column name -> type of the workspace."""
    rows = db.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = $t "
        "AND database_name = 'temp' ORDER BY column_index",
        {"t": WORKSPACE},
    )
    return {name: dtype for name, dtype in rows}


def _live(signal: str) -> str:
    """Rows where the signal is defined and not yet explained."""
    return f"{quote_identifier(signal)} IS NOT NULL AND NOT {explained_column(signal)}"


def margins(
    db: Database,
    *,
    signal: str,
    dims: Sequence[str],
    block_hours: int,
    condition: str = "true",
    params: Mapping[str, Any] | None = None,
) -> pl.DataFrame:
    """Live rows matching ``condition`` per dimension, value and time block of ``block_hours`` ticks.

    Returns ``dimension, value, block, n, k`` (value as text).
    """
    if not dims:
        return pl.DataFrame(
            schema={
                "dimension": pl.Utf8,
                "value": pl.Utf8,
                "block": pl.Int64,
                "n": pl.Int64,
                "k": pl.Int64,
            }
        )
    s = quote_identifier(signal)
    weighed = f", {WEIGHT}" if _counted(db) else ""
    texts = ", ".join(f"{quote_identifier(d)} AS v{i}" for i, d in enumerate(dims))
    dimension = " ".join(f"WHEN grouping(v{i}) = 0 THEN $d{i}" for i in range(len(dims)))
    value = " ".join(
        f"WHEN grouping(v{i}) = 0 THEN CAST(v{i} AS VARCHAR)" for i in range(len(dims))
    )
    sets = ", ".join(f"(block, v{i})" for i in range(len(dims)))
    sql = (
        f"SELECT CASE {dimension} END AS dimension, CASE {value} END AS value, block, "
        f"{_n_sum(db)} AS n, {_k_sum(db, signal)} AS k FROM "
        f"(SELECT {texts}, _tick // {int(block_hours)} AS block, {s}{weighed} FROM {WORKSPACE} "
        f"WHERE {_live(signal)} AND ({condition})) GROUP BY GROUPING SETS ({sets})"
    )
    return db.frame(sql, {**(params or {}), **{f"d{i}": d for i, d in enumerate(dims)}})


def cells(
    db: Database,
    *,
    signal: str,
    dims: Sequence[str],
    block_hours: int | None = None,
    condition: str = "true",
    params: Mapping[str, Any] | None = None,
) -> pl.DataFrame:
    """Live rows matching ``condition`` per combination of ``dims`` (and time block).

    Returns ``[block,] *dims, n, k``.
    """
    keys = [quote_identifier(d) for d in dims]
    if block_hours is not None:
        keys.insert(0, f"_tick // {int(block_hours)} AS block")
    select = f"{', '.join(keys)}, " if keys else ""
    group = " GROUP BY ALL" if keys else ""
    return _as_text(
        db.frame(
            f"SELECT {select}{_n_sum(db)} AS n, {_k_sum(db, signal)} AS k FROM {WORKSPACE} "
            f"WHERE {_live(signal)} AND ({condition}){group}",
            params,
        )
    )


def set_expected(db: Database, *, signal: str, dims: Sequence[str], cells: pl.DataFrame) -> None:
    """Write each row's expected probability from ``cells`` (``*dims, p``) into the workspace."""
    p = expected_column(signal)
    if not dims:
        db.execute(f"UPDATE {WORKSPACE} SET {p} = $p", {"p": float(cells["p"][0])})
        return
    db.con.register("_expected_cells", cells.select([*dims, "p"]).to_arrow())
    try:
        match = " AND ".join(
            f"{WORKSPACE}.{quote_identifier(d)} IS NOT DISTINCT FROM c.{quote_identifier(d)}"
            for d in dims
        )
        db.execute(f"UPDATE {WORKSPACE} SET {p} = c.p FROM _expected_cells c WHERE {match}")
    finally:
        db.con.unregister("_expected_cells")


def series(
    db: Database,
    *,
    signal: str,
    by: Sequence[str],
    condition: str,
    params: Mapping[str, Any],
    hours: int,
) -> pl.DataFrame:
    """Observed, expected and defined counts per time bucket and per value of each of ``by``.

    One grouping set for the total and one per dimension, over live rows matching
    ``condition``. ``hours`` is the bucket length in ticks (1 or 24 on hour-grained data).

    Returns
    -------
    pl.DataFrame
        ``t, *by, grouped, o, e, n``: ``grouped`` names the dimension the row is
        grouped by (null for the total); the other dimensions are null there.
    """
    keys = [quote_identifier(d) for d in by]
    sets = ", ".join(["(t)", *(f"(t, {k})" for k in keys)])
    which = (
        "CASE "
        + " ".join(f"WHEN grouping({k}) = 0 THEN $g{i}" for i, k in enumerate(keys))
        + " END"
        if keys
        else "CAST(NULL AS VARCHAR)"
    )
    select = ", ".join(["t", *keys])
    sql = (
        f"SELECT {select}, {which} AS grouped, {_k_sum(db, signal)} AS o, "
        f"{_e_sum(db, signal)} AS e, {_n_sum(db)} AS n FROM "
        f"(SELECT *, _tick // {int(hours)} AS t FROM {WORKSPACE} WHERE {_live(signal)} AND ({condition})) "
        f"GROUP BY GROUPING SETS ({sets})"
    )
    return _as_text(db.frame(sql, {**params, **{f"g{i}": d for i, d in enumerate(by)}}))


def mark_explained(
    db: Database, *, signals: Sequence[str], condition: str, params: Mapping[str, Any]
) -> None:
    """Flag the rows matching ``condition`` as explained for each of ``signals``."""
    sets = ", ".join(f"{explained_column(s)} = true" for s in signals)
    db.execute(f"UPDATE {WORKSPACE} SET {sets} WHERE {condition}", params)


def flags(
    db: Database,
    *,
    signal: str,
    dims: Sequence[str],
    conditions: Sequence[str],
    params: Mapping[str, Any],
) -> pl.DataFrame:
    """Rows where ``signal`` is defined, counted per ``dims`` and per flag of each condition.

    Returns ``*dims, f0, f1..., n, k`` (the design of a joint GLM).
    """
    s = quote_identifier(signal)
    items = [quote_identifier(d) for d in dims]
    items += [f"coalesce(({c}), false) AS f{i}" for i, c in enumerate(conditions)]
    return _as_text(
        db.frame(
            f"SELECT {', '.join(items)}, {_n_sum(db)} AS n, {_k_sum(db, signal)} AS k "
            f"FROM {WORKSPACE} WHERE {s} IS NOT NULL GROUP BY ALL",
            params,
        )
    )


def value_counts(
    db: Database,
    *,
    signal: str,
    column: str,
    low: float,
    high: float,
    points: int,
    condition: str,
    params: Mapping[str, Any],
) -> pl.DataFrame:
    """Live rows matching ``condition`` per own value of numeric ``column`` in [low, high).

    Values are exact when at most ``points`` distinct ones lie there, else cut on
    a grid of round steps (1, 2 or 5 times a power of ten) giving about
    ``points`` cells, each named by its lower end. ``high`` may be infinite.

    Returns ``v, o, e, n, step`` ordered by ``v`` (``step`` 0 for exact values).
    """
    v = quote_identifier(value_name(column))
    bounds = f"{v} >= $lo" + ("" if high == float("inf") else f" AND {v} < $hi")
    args = {**params, "lo": float(low)} | ({} if high == float("inf") else {"hi": float(high)})
    where = f"{_live(signal)} AND ({condition}) AND {bounds}"
    distinct, top = db.execute(
        f"SELECT count(DISTINCT {v}), max({v}) FROM {WORKSPACE} WHERE {where}", args
    )[0]
    step = 0.0
    key = v
    if distinct and distinct > points:
        span = (min(high, float(top)) if top is not None else high) - low
        step = _round_step(span / points)
        key = f"floor({v} / {step!r}) * {step!r}"
    return db.frame(
        f"SELECT {key} AS v, {_k_sum(db, signal)} AS o, {_e_sum(db, signal)} "
        f"AS e, {_n_sum(db)} AS n, {step!r} AS step FROM {WORKSPACE} WHERE {where} "
        "GROUP BY ALL ORDER BY v",
        args,
    )


def _round_step(x: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten at least ``x``.

    Examples
    --------
    >>> _round_step(196.6), _round_step(0.3), _round_step(1000)
    (200.0, 0.5, 1000.0)
    """
    if x <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(x))
    for m in (1, 2, 5, 10):
        if m * power >= x * (1 - 1e-12):
            return float(m * power)
    return float(10 * power)
