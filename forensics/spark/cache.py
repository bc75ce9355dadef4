"""The local cache of an investigation whose requests live in Spark.

A DuckDB file like any other forensics database, except that ``requests``
holds a uniform sample of the requests (all of them up to
``SeparationParams.search_rows``), chosen by ``md5(request_id)`` (see
``sample_condition``), and ``forensics_meta`` says where the whole table is
(``spark.table``, ``spark.location``, ``spark.rows``). What must read every
request was computed by Spark from the same query definitions: the
dimensions and the cubes (``queries.discover_dimensions``,
``queries.cube_sql`` through ``SparkEngine``). The registry (files, signals,
roles, privacy settings) and the rejected rows are copied; change events
already in the cache are kept. The cubes are recorded as summarising the
cache's state, so reads use them instead of the sample.

The cache is written to a new file and moved over the old one at the end: a
failure leaves the previous cache as it was.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from forensics.db import Database
from forensics.queries import cube as cube_module
from forensics.queries.dims import discover_dimensions
from forensics.separation.params import SeparationParams
from forensics.spark.engine import SparkEngine
from forensics.spark.ingest import HIDDEN, REGISTRY, SparkTable, copy_rows

__all__ = [
    "SAMPLE_RESOLUTION",
    "SPARK_LOCATION",
    "SPARK_ROWS",
    "SPARK_TABLE",
    "fill_cache",
    "holds_sample",
    "sample_condition",
]

SPARK_TABLE = "spark.table"
"""``forensics_meta`` key: the name of the Spark table holding every request."""
SPARK_LOCATION = "spark.location"
"""``forensics_meta`` key: the folder of that table."""
SPARK_ROWS = "spark.rows"
"""``forensics_meta`` key: how many requests it held when the cache was filled."""

SAMPLE_RESOLUTION = 2**32
"""The sample key is the first 32 bits of ``md5(request_id)``: a request is kept when
``key < fraction * SAMPLE_RESOLUTION``."""


def holds_sample(db: Database) -> bool:
    """Whether ``db`` is the cache of a Spark table holding fewer requests than the table.

    False for an ordinary database and for a cache holding every request (at
    most ``search_rows`` of them): those answer every question locally.
    """
    stored = db.meta(SPARK_ROWS)
    if db.meta(SPARK_TABLE) is None or stored is None:
        return False
    local = db.scalar("SELECT count(*) FROM requests") if "requests" in db.tables() else 0
    return int(stored) > int(local or 0)


def sample_condition(fraction: float) -> str:
    """Spark SQL: whether a request is in the uniform sample of ``fraction`` of them.

    The key is the first 8 hex digits of ``md5(request_id)`` read as a number
    (DuckDB: ``('0x' || left(md5(request_id), 8))::UBIGINT``), so any engine
    keeps the same requests; a row without an id is keyed by its file and row.

    Examples
    --------
    >>> sample_condition(1.0)
    'true'
    """
    if fraction >= 1.0:
        return "true"
    threshold = int(fraction * SAMPLE_RESOLUTION)
    key = "md5(coalesce(request_id, concat_ws('/', _source_file_id, _source_row)))"
    return f"CAST(conv(substr({key}, 1, 8), 16, 10) AS BIGINT) < {threshold}"


def fill_cache(
    spark: Any,
    table: SparkTable,
    cache_path: str | Path,
    *,
    search_rows: int = SeparationParams().search_rows,
) -> dict[str, int]:
    """Fill (or refill) the cache at ``cache_path`` from the Spark table.

    Returns
    -------
    dict[str, int]
        ``requests`` (in Spark), ``sampled`` (in the cache), ``cube_rows``.
    """
    views = table.register(spark)
    final = Path(cache_path)
    building = final.with_name(final.name + ".filling")
    for leftover in (building, building.with_name(building.name + ".wal")):
        leftover.unlink(missing_ok=True)
    cache = Database(building)
    try:
        if final.exists():
            old = Database(final, read_only=True)
            try:
                copy_rows(cache, "events", old.con.sql("SELECT * FROM events").to_arrow_table())
            finally:
                old.close()
        for name in REGISTRY:
            copy_rows(cache, name, table.registry(spark, name))
        if "rejected_rows" in views:
            copy_rows(cache, "rejected_rows", spark.table(views["rejected_rows"]).toArrow())
        total, sampled = _copy_sample(spark, table, cache, search_rows)
        cache.forget()
        cache.set_meta(SPARK_TABLE, table.name)
        cache.set_meta(SPARK_LOCATION, table.location)
        cache.set_meta(SPARK_ROWS, str(total))
        cube_rows = _cubes_from_spark(spark, cache, views, table.location, total)
        cache.execute("CHECKPOINT")
    finally:
        cache.close()
    os.replace(building, final)
    return {"requests": total, "sampled": sampled, "cube_rows": cube_rows}


def _copy_sample(
    spark: Any, table: SparkTable, cache: Database, search_rows: int
) -> tuple[int, int]:
    """Copy the sample into the cache's ``requests``, a few days at a time; (requests, sampled).

    Each piece is brought to the driver as Arrow and appended: collecting the whole
    sample at once (2M rows with their text) ran the driver out of heap at 3M requests.
    Days are read by the table's ``_day`` partitions, so each piece reads only its days.
    """
    stored = spark.read.parquet(table.part("requests"))
    per_day = [(r[0], int(r[1])) for r in stored.groupBy("_day").count().orderBy("_day").collect()]
    total = sum(n for _, n in per_day)
    fraction = min(1.0, search_rows / total) if total else 1.0
    cache.con.register(
        "_columns", stored.drop(*HIDDEN).limit(0).toArrow()
    )  # the table's, in its order
    try:
        cache.execute("CREATE TABLE requests AS SELECT * FROM _columns")
    finally:
        cache.con.unregister("_columns")
    condition = sample_condition(fraction)
    sampled = 0
    for days in _pieces(per_day, fraction):
        day = stored["_day"].isNull() if days == [None] else stored["_day"].isin(days)
        piece = stored.where(day).where(condition).drop(*HIDDEN).toArrow()
        cache.con.register("_piece", piece)
        try:
            cache.execute("INSERT INTO requests SELECT * FROM _piece")
        finally:
            cache.con.unregister("_piece")
        sampled += piece.num_rows
    return total, sampled


SAMPLE_PIECE_ROWS = 250_000
"""About how many sampled requests the driver holds at once while the cache is filled."""


def _pieces(per_day: list[tuple[Any, int]], fraction: float) -> list[list[Any]]:
    """Consecutive days grouped so each group's sample holds about ``SAMPLE_PIECE_ROWS``.

    Examples
    --------
    >>> _pieces([(1, 200_000), (2, 200_000), (3, 900_000), (None, 5)], 1.0)
    [[1], [2], [3], [None]]
    >>> _pieces([(1, 200_000), (2, 200_000), (3, 900_000)], 0.1)
    [[1, 2, 3]]
    """
    pieces: list[list[Any]] = []
    size = 0.0
    for day, n in per_day:
        if day is None:  # a null partition is read on its own (isin never matches null)
            pieces.append([None])
            continue
        if pieces and pieces[-1] != [None] and size + n * fraction <= SAMPLE_PIECE_ROWS:
            pieces[-1].append(day)
            size += n * fraction
        else:
            pieces.append([day])
            size = n * fraction
    return pieces


def _cubes_from_spark(
    spark: Any, cache: Database, views: dict[str, str], location: str, total: int
) -> int:
    """The dimensions and the default cube, counted by Spark over every request."""
    engine = SparkEngine(spark, cache, views, location=location)
    found = discover_dimensions(engine)
    cube_module._record_dimensions(cache, found)
    known = {d.name: d for d in found}
    # The grain as DuckDB chooses it (``queries.data_grain``), from every request's time.
    grain = cube_module._chosen_grain(engine)
    dims = cube_module._default_cube_dims(engine, list(known.values()), total, grain)
    sql = cube_module.cube_sql(engine, [known[d] for d in dims], grain)
    frame = engine.frame(sql)
    cache.execute(cube_module._CATALOG)
    cache.execute(cube_module._CATALOG_STATE)
    cache.con.register("_cube", frame.to_arrow())
    try:
        cache.execute("CREATE OR REPLACE TABLE cube_default AS SELECT * FROM _cube")
    finally:
        cache.con.unregister("_cube")
    cache.forget()
    state, _ = cube_module._source_state(cache)
    cache.execute(
        "INSERT OR REPLACE INTO cube_catalog "
        "(name, dims, grain, rows, source_rows, auto, built_at, source_state) "
        "VALUES ('cube_default', $d, $g, $r, $s, true, now(), $state)",
        {"d": list(dims), "g": grain, "r": frame.height, "s": total, "state": state},
    )
    return frame.height
