"""``SparkEngine``: the query layer's ``Engine`` over requests that live in Spark.

The query functions (``forensics.queries``) write DuckDB SQL with ``$name``
parameters. A statement that reads ``requests`` or ``rejected_rows`` is
transpiled by SQLGlot to Spark SQL (DuckDB's ``epoch_us`` and
``make_timestamptz`` become ``unix_micros`` and ``timestamp_micros``) and run
by Spark on the whole table; any other statement (the signal registry, the
column roles, ``forensics_meta``) is answered by the local cache, which holds
those tables. So one definition of every count runs on either engine.

Approximate distinct counts (``approx_count_distinct``) are Spark's HLL sketch
(``hll_sketch_agg`` with ``2**APPROX_DISTINCT_LG_K`` registers over ``xxhash64``
of the value: about 0.8% relative error), not DuckDB's: a column's recorded
cardinality above
``2 * CUBE_MAX_VALUES`` (where the query layer counts exactly) may differ by
that much between engines; nothing is decided by it but whether a text column
with about ``DIMENSION_MAX_VALUES`` values is a dimension.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, TypeVar

import polars as pl

from forensics.db import Database, remember
from forensics.errors import ConfigError

__all__ = ["SPARK_TABLES", "SparkEngine", "duckdb_type", "to_spark_sql"]

T = TypeVar("T")

SPARK_TABLES = ("requests", "rejected_rows")
"""Tables that live in Spark; every other table is read from the cache."""

APPROX_DISTINCT_LG_K = 14
"""log2 of the registers of Spark's approximate distinct counts (relative error about
``1.04 / 2**(LG_K / 2)``, 0.8%). Spark's own ``approx_count_distinct`` at a 1% error
(HyperLogLog++, 1,639 buffer words per count) ran about 7 times slower than this sketch
on 300k rows (``bench/README.md``, Spark section), so it is not used."""


def duckdb_type(spark_type: str) -> str:
    """DuckDB's name for a Spark SQL type (``simpleString``), as the query layer expects.

    Examples
    --------
    >>> duckdb_type("bigint"), duckdb_type("timestamp"), duckdb_type("array<string>")
    ('BIGINT', 'TIMESTAMP WITH TIME ZONE', 'VARCHAR[]')
    """
    t = spark_type.lower()
    if t.startswith("array<") and t.endswith(">"):
        return duckdb_type(t[6:-1]) + "[]"
    if t.startswith("decimal"):
        return t.upper()
    return {
        "string": "VARCHAR",
        "bigint": "BIGINT",
        "int": "INTEGER",
        "smallint": "SMALLINT",
        "tinyint": "TINYINT",
        "double": "DOUBLE",
        "float": "FLOAT",
        "boolean": "BOOLEAN",
        "timestamp": "TIMESTAMP WITH TIME ZONE",
        "timestamp_ntz": "TIMESTAMP",
        "date": "DATE",
        "binary": "BLOB",
    }.get(t, t.upper())


def to_spark_sql(sql: str, views: Mapping[str, str]) -> str:
    """Transpile one DuckDB statement to Spark SQL, tables renamed to their views.

    Examples
    --------
    >>> to_spark_sql("SELECT epoch_us(ts) // 10 AS b, count(*) FILTER (WHERE x) FROM requests "
    ...     "WHERE list_contains($w0, m) GROUP BY ALL", {"requests": "r"})
    'SELECT UNIX_MICROS(ts) DIV 10 AS b, COUNT(*) FILTER(WHERE x) FROM r WHERE ARRAY_CONTAINS(:w0, m) GROUP BY ALL'
    >>> to_spark_sql("SELECT approx_count_distinct(epoch_us(ts)) FROM requests", {"requests": "r"})
    'SELECT HLL_SKETCH_ESTIMATE(HLL_SKETCH_AGG(CASE WHEN UNIX_MICROS(ts) IS NULL THEN NULL ELSE XXHASH64(UNIX_MICROS(ts)) END, 14)) FROM r'
    >>> to_spark_sql("SELECT make_timestamptz(epoch_us(ts) // $g * $g) AS t FROM requests", {})
    'SELECT TIMESTAMP_MICROS(UNIX_MICROS(ts) DIV :g * :g) AS t FROM requests'
    """
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, read="duckdb")

    def rewrite(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Anonymous):
            name = node.name.lower()
            # Renamed in place, not replaced: a new node would not be visited, so an
            # epoch_us inside make_timestamptz(...) would reach Spark untranslated.
            if name == "epoch_us":
                node.set("this", "UNIX_MICROS")
            elif name == "make_timestamptz" and len(node.expressions) == 1:
                node.set("this", "TIMESTAMP_MICROS")
        if isinstance(node, exp.Table) and node.name in views and not node.args.get("db"):
            return exp.to_table(views[node.name])
        return node

    def approx(node: exp.Expression) -> exp.Expression:
        # A second pass: a replaced node's children are not visited again.
        if isinstance(node, exp.ApproxDistinct) and node.args.get("accuracy") is None:
            return _approx_distinct(node.this)
        return node

    return tree.transform(rewrite).transform(approx).sql(dialect="spark")


def _approx_distinct(value: Any) -> Any:
    """Spark SQL counting the distinct non-null values of ``value`` with an HLL sketch."""
    from sqlglot import exp

    hashed = exp.Case(
        ifs=[exp.If(this=exp.Is(this=value.copy(), expression=exp.Null()), true=exp.Null())],
        default=exp.Anonymous(this="XXHASH64", expressions=[value.copy()]),
    )
    sketch = exp.Anonymous(
        this="HLL_SKETCH_AGG", expressions=[hashed, exp.Literal.number(APPROX_DISTINCT_LG_K)]
    )
    return exp.Anonymous(this="HLL_SKETCH_ESTIMATE", expressions=[sketch])


def _tables_read(sql: str) -> set[str]:
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError:
        return set()
    return {t.name for t in tree.find_all(exp.Table)}


class SparkEngine:
    """The query layer's ``Engine``: ``requests`` and ``rejected_rows`` in Spark, the rest local.

    Parameters
    ----------
    spark
        The SparkSession.
    cache
        The local cache (a ``Database``) holding the small tables.
    views
        Spark view (or table) name for each of ``SPARK_TABLES`` that exists.
    location
        Where the table lives (shown in messages).
    """

    read_only = True

    def __init__(
        self, spark: Any, cache: Database, views: Mapping[str, str], *, location: str
    ) -> None:
        self.spark = spark
        self.cache = cache
        self.views = dict(views)
        self.path = location
        self._memo: dict[Hashable, Any] = {}

    # -- statements -----------------------------------------------------------------

    def _on_spark(self, sql: str) -> bool:
        return bool(_tables_read(sql) & set(self.views))

    def _run(self, sql: str, params: Mapping[str, Any] | Sequence[Any] | None) -> Any:
        if params is not None and not isinstance(params, Mapping):
            raise TypeError("SparkEngine binds named parameters only ($name)")
        query = to_spark_sql(sql, self.views)
        return self.spark.sql(query, args=dict(params) if params else None)

    def execute(
        self, sql: str, params: Mapping[str, Any] | Sequence[Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """Run one statement and fetch all its rows."""
        if not self._on_spark(sql):
            return self.cache.execute(sql, params)
        return [tuple(row) for row in self._run(sql, params).collect()]

    def frame(self, sql: str, params: Mapping[str, Any] | None = None) -> pl.DataFrame:
        """Run a query and return its result as a Polars DataFrame."""
        if not self._on_spark(sql):
            return self.cache.frame(sql, params)
        result = pl.from_arrow(self._run(sql, params).toArrow())
        assert isinstance(result, pl.DataFrame)
        return result

    def scalar(self, sql: str, params: Mapping[str, Any] | Sequence[Any] | None = None) -> Any:
        """Run a query that returns one value."""
        rows = self.execute(sql, params)
        return rows[0][0] if rows else None

    # -- catalog --------------------------------------------------------------------

    def tables(self) -> set[str]:
        """The cache's tables, with ``requests``/``rejected_rows`` those in Spark."""
        return (self.cache.tables() - set(SPARK_TABLES)) | set(self.views)

    def columns(self, table: str) -> dict[str, str]:
        """Column name -> type (DuckDB's names), in table order; {} if none."""
        if table not in self.views:
            return {} if table in SPARK_TABLES else self.cache.columns(table)

        def lookup() -> dict[str, str]:
            schema = self.spark.table(self.views[table]).schema
            return {f.name: duckdb_type(f.dataType.simpleString()) for f in schema.fields}

        return dict(self.memo(("columns", table), lookup))

    def meta(self, key: str) -> str | None:
        """A value of the cache's ``forensics_meta``."""
        return self.cache.meta(key)

    def memo(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()``, remembered under ``key`` for this engine's life."""
        return remember(self._memo, key, compute)

    def forget(self) -> None:
        """Drop every remembered value."""
        self._memo.clear()


def require_table(spark: Any, name: str, location: str) -> None:
    """Raise ``ConfigError`` unless Spark can read the table ``name`` (a view over ``location``)."""
    if not spark.catalog.tableExists(name):
        raise ConfigError(
            f"Spark has no table {name!r} (expected at {location}); ingest it with "
            f"`forensics ingest --engine spark FILES --table {name} --db CACHE`, or point "
            "--table / FORENSICS_SPARK_WAREHOUSE at where it lives"
        )
