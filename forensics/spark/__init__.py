"""The Spark engine: requests in a Spark table, the investigation's cache in a local DuckDB.

``ingest_with_spark`` checks and loads files into a Spark table (``ingest``:
the DuckDB ingest itself, run per file in Spark's tasks) and fills the cache
(``cache``); ``SparkEngine`` (``engine``) answers the query layer's statements
on the whole table; ``session`` builds the SparkSession from options or
``FORENSICS_SPARK_*`` variables. Importing this package does not import
pyspark: nothing here runs until Spark is asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forensics.db import Database
from forensics.errors import ConfigError
from forensics.ingest import IngestSummary
from forensics.schema import Mapping
from forensics.signals import SignalParams
from forensics.spark.cache import SPARK_LOCATION, SPARK_TABLE, fill_cache
from forensics.spark.engine import SparkEngine
from forensics.spark.ingest import SparkTable, ingest_to_spark
from forensics.spark.session import SparkSettings, spark_session

__all__ = [
    "SparkEngine",
    "SparkSettings",
    "SparkTable",
    "engine_for_cache",
    "ingest_with_spark",
    "spark_session",
]


def ingest_with_spark(
    paths: Any,
    *,
    table: str,
    cache: str | Path,
    spark: Any = None,
    master: str | None = None,
    conf_file: str | Path | None = None,
    location: str | None = None,
    mapping: Mapping | None = None,
    privacy: bool = False,
    salt: str | None = None,
    params: SignalParams | None = None,
) -> tuple[IngestSummary, dict[str, int]]:
    """Ingest files into the Spark table ``table``, then fill the cache at ``cache``.

    Parameters
    ----------
    table
        The table's name: a folder under ``location`` (default: Spark's
        ``spark.sql.warehouse.dir``), shown to Spark as a view of that name.
    spark
        A SparkSession; else one is built from ``master``/``conf_file`` or the
        ``FORENSICS_SPARK_MASTER``/``FORENSICS_SPARK_CONF`` variables.

    Returns
    -------
    tuple[IngestSummary, dict[str, int]]
        Per file as ``ingest_files`` reports it; and what the cache holds
        (``requests`` in Spark, ``sampled``, ``cube_rows``).
    """
    if mapping is not None and mapping.counts is not None:
        raise ConfigError(
            "counted rows ([counts] in the mapping) are not supported by the Spark engine "
            "yet; ingest them into a DuckDB database (without --engine spark)"
        )
    if spark is None:
        spark = spark_session(SparkSettings.resolve(master=master, conf_file=conf_file))
    target = SparkTable.under(spark, table, location)
    db = Database(cache)
    try:
        summary = ingest_to_spark(
            spark,
            paths,
            table=target,
            cache=db,
            mapping=mapping,
            privacy=privacy,
            salt=salt,
            params=params,
        )
    finally:
        db.close()
    if not target.exists(spark):
        return summary, {"requests": 0, "sampled": 0, "cube_rows": 0}
    filled = fill_cache(spark, target, cache)
    return summary, filled


def engine_for_cache(db: Database, spark: Any) -> SparkEngine | None:
    """The ``SparkEngine`` over the table a cache names, or None for an ordinary database.

    Raises
    ------
    ConfigError
        The cache names a Spark table and ``spark`` is None, or the table is gone.
    """
    name = db.meta(SPARK_TABLE)
    if name is None:
        return None
    location = db.meta(SPARK_LOCATION) or ""
    if spark is None:
        raise ConfigError(
            f"{db.path} is the cache of Spark table {name!r} ({location}): its requests "
            "live in Spark; open it with forensics.open(path, spark=session)"
        )
    table = SparkTable(name, location)
    if not table.exists(spark):
        raise ConfigError(
            f"Spark table {name!r} is missing: nothing at {table.part('requests')}; "
            "re-ingest with `forensics ingest --engine spark FILES --table "
            f"{name} --db {db.path}`, or set --spark-location to where it lives"
        )
    return SparkEngine(spark, db, table.register(spark), location=location)
