"""The Spark engine: requests in a Spark table, the investigation's cache in a local DuckDB.

``ingest_with_spark`` checks and loads files into a Spark table (``ingest``:
the DuckDB ingest itself, run per file in Spark's tasks) and fills the cache
(``cache``); ``SparkEngine`` (``engine``) answers the query layer's statements
on the whole table; ``session`` builds the SparkSession from options or
``FORENSICS_SPARK_*`` variables; ``engine_for_environment`` does so for a
cache opened without a session (the CLI's ``--spark-master`` and
``--spark-conf`` set those variables). Importing this package does not import
pyspark: nothing here runs until Spark is asked for.
"""

from __future__ import annotations

import os
from collections.abc import Mapping as MappingABC
from pathlib import Path
from typing import Any

from forensics.db import Database
from forensics.errors import ConfigError
from forensics.ingest import IngestSummary
from forensics.schema import Mapping
from forensics.signals import SignalParams
from forensics.spark.cache import SPARK_LOCATION, SPARK_ROWS, SPARK_TABLE, fill_cache
from forensics.spark.engine import SparkEngine
from forensics.spark.ingest import SparkTable, ingest_to_spark
from forensics.spark.session import SparkSettings, spark_session

__all__ = [
    "SPARK_VARIABLES",
    "SparkEngine",
    "SparkSettings",
    "SparkTable",
    "engine_for_cache",
    "engine_for_environment",
    "ingest_with_spark",
    "spark_needed",
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
        raise spark_needed(db)
    table = SparkTable(name, location)
    if not table.exists(spark):
        raise ConfigError(
            f"Spark table {name!r} is missing: nothing at {table.part('requests')}; "
            "re-ingest with `forensics ingest --engine spark FILES --table "
            f"{name} --db {db.path}`, or set --spark-location to where it lives"
        )
    return SparkEngine(spark, db, table.register(spark), location=location)


SPARK_VARIABLES = ("FORENSICS_SPARK_MASTER", "FORENSICS_SPARK_CONF")
"""The variables that say where Spark is (``SparkSettings.resolve`` reads them)."""


def spark_needed(db: Database) -> ConfigError:
    """The refusal for a cache whose requests live in Spark when no Spark is given: what to set."""
    name = db.meta(SPARK_TABLE)
    location = db.meta(SPARK_LOCATION) or ""
    rows = int(db.meta(SPARK_ROWS) or 0)
    return ConfigError(
        f"{db.path} is the cache of Spark table {name!r} ({location}) and holds a sample of "
        f"its {rows:,} requests: counting them all needs Spark; set FORENSICS_SPARK_MASTER "
        "(e.g. local[2], or spark://host:7077 for a cluster) or FORENSICS_SPARK_CONF (a "
        "spark-defaults.conf-style file with spark.master), give --spark-master/--spark-conf "
        "to the command, or in Python forensics.open(path, spark=session)"
    )


def engine_for_environment(db: Database, *, env: MappingABC[str, str] | None = None) -> SparkEngine:
    """The ``SparkEngine`` over a cache's table, the session built from the environment.

    ``FORENSICS_SPARK_MASTER`` and ``FORENSICS_SPARK_CONF`` give the master and
    configuration (``SparkSettings.resolve``); the active session is reused.

    Raises
    ------
    ConfigError
        Neither variable is set (the message names them), the master is
        unreachable, or the table is missing.
    """
    env = os.environ if env is None else env
    if not any(env.get(v) for v in SPARK_VARIABLES):
        raise spark_needed(db)
    engine = engine_for_cache(db, spark_session(SparkSettings.resolve(env=env)))
    if engine is None:  # an ordinary database: the caller asks only for a cache's
        raise ConfigError(f"{db.path} names no Spark table (no {SPARK_TABLE!r} in forensics_meta)")
    return engine
