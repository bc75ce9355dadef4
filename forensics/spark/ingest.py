"""Ingest into Spark: every file checked by the DuckDB ingest itself, in Spark's tasks.

One definition of every row-level rule: each file goes to a Spark task that
runs ``ingest.ingest_files`` on a DuckDB of its own (typing, checks,
quarantine with the same reasons, duplicates within the file, the signals:
the same SQL and the same Python detectors), so the verdicts are those of the
DuckDB path by construction. The task writes its accepted rows, with a digest
of their content (``_content``, as ``ingest._settle_duplicates`` compares
rows), and its rejected rows as Parquet in a staging folder. Spark then does
what needs every file at once:

* request ids seen in an earlier file (or already in the table): a row equal
  to the first one is a duplicate, a different one a ``duplicate_conflict``
  (the first occurrence, by file then row, is kept, as in DuckDB);
* the table, rejected rows and registry (``ingested_files``, the signal
  registry, column roles, ``forensics_meta``) are written to a staging
  location, requests partitioned by UTC day (``_day``), and swapped in with
  two renames: a failure before the swap leaves the old table as it was.

Re-ingesting a file whose sha256 is in the registry adds nothing (the task's
DuckDB is given the registry, so ``ingest_files`` skips it itself).

The staging folder must be storage every executor can write and the driver
read (a local folder in local mode; a shared mount on a cluster).
"""

from __future__ import annotations

import io
import shutil
import tempfile
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from forensics.config import Config
from forensics.db import Database
from forensics.ingest import FileSummary, IngestSummary, _absolute, ingest_files
from forensics.privacy import DROPPED_COLUMNS, privacy_settings
from forensics.readers import resolve_paths
from forensics.schema import Mapping, quote_identifier
from forensics.signals import DETECTORS, SignalParams

__all__ = ["REGISTRY", "SparkTable", "copy_rows", "ingest_to_spark"]

REGISTRY = ("forensics_meta", "signal_definitions", "column_roles", "ingested_files")
"""Small tables kept beside the Spark table (and copied into the cache)."""

HIDDEN = ("_day", "_content")
"""Columns of the stored table that are not columns of ``requests``."""


@dataclass(frozen=True)
class SparkTable:
    """Where a request table lives: a folder of Parquet folders, shown to Spark as views."""

    name: str
    """The table's name (its folder, and the view over its requests)."""
    location: str
    """Its folder (any URI Spark's file systems read: a path, hdfs://, s3a://)."""

    @classmethod
    def under(cls, spark: Any, name: str, root: str | None = None) -> SparkTable:
        """The table ``name`` in ``root``, or in Spark's warehouse folder."""
        base = root or spark.conf.get("spark.sql.warehouse.dir")
        base = base.removeprefix("file:")
        return cls(name, f"{base.rstrip('/')}/{name}")

    def part(self, what: str) -> str:
        """Folder of one part: ``requests``, ``rejected_rows``, or a registry table."""
        return f"{self.location}/{what}"

    @property
    def rejected_view(self) -> str:
        """Name of the view over the rejected rows."""
        return f"{self.name}__rejected_rows"

    def exists(self, spark: Any) -> bool:
        """Whether the table's requests are there."""
        return _fs_exists(spark, self.part("requests"))

    def register(self, spark: Any) -> dict[str, str]:
        """Create (or replace) the views; returns table -> view for ``SparkEngine``."""
        requests = spark.read.parquet(self.part("requests")).drop(*HIDDEN)
        requests.createOrReplaceTempView(self.name)
        views = {"requests": self.name}
        if _fs_exists(spark, self.part("rejected_rows")):
            spark.read.parquet(self.part("rejected_rows")).createOrReplaceTempView(
                self.rejected_view
            )
            views["rejected_rows"] = self.rejected_view
        return views

    def registry(self, spark: Any, name: str) -> pa.Table | None:
        """One registry table as Arrow, or None when the table has none yet."""
        if not _fs_exists(spark, self.part(name)):
            return None
        return spark.read.parquet(self.part(name)).toArrow()


# -- storage ------------------------------------------------------------------------


def _fs(spark: Any, path: str) -> tuple[Any, Any]:
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hpath


def _fs_exists(spark: Any, path: str) -> bool:
    fs, hpath = _fs(spark, path)
    return bool(fs.exists(hpath))


def _swap(spark: Any, staging: str, final: str) -> None:
    """Put ``staging`` in place of ``final``: two renames, the old folder removed after."""
    fs, target = _fs(spark, final)
    _, source = _fs(spark, staging)
    old = None
    if fs.exists(target):
        _, old = _fs(spark, f"{final}.old-{uuid.uuid4().hex[:8]}")
        if not fs.rename(target, old):
            raise OSError(f"cannot move {final} aside")
    if not fs.rename(source, target):
        if old is not None:
            fs.rename(old, target)
        raise OSError(f"cannot move {staging} to {final}")
    if old is not None:
        fs.delete(old, True)


def _remove(spark: Any, path: str) -> None:
    fs, hpath = _fs(spark, path)
    if fs.exists(hpath):
        fs.delete(hpath, True)


# -- the task -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """What every task needs (pickled to the executors with the task)."""

    stage: str
    mapping: Mapping | None
    privacy: bool
    salt: str | None
    params: SignalParams | None
    carried: dict[str, bytes]
    """Registry tables (Arrow IPC) the task's DuckDB starts with."""


def _ipc(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(io.BytesIO(data)).read_all()


def copy_rows(db: Database, name: str, table: pa.Table | None) -> None:
    """Insert an Arrow table's rows into the table ``name`` (by column name; meta by key)."""
    if table is None or table.num_rows == 0:
        return
    db.con.register("_copied", table)
    try:
        if name == "forensics_meta":
            db.execute("INSERT OR REPLACE INTO forensics_meta SELECT key, value FROM _copied")
        else:
            db.execute(f"INSERT INTO {quote_identifier(name)} BY NAME SELECT * FROM _copied")
    finally:
        db.con.unregister("_copied")
    db.forget()


def _carry_in(db: Database, carried: dict[str, bytes]) -> None:
    """Fill the task's registry tables (created empty by ``Database``) with the table's."""
    for name, data in carried.items():
        copy_rows(db, name, _from_ipc(data))


def _content_sql(db: Database) -> str:
    """A row's content digest, as ``ingest._settle_duplicates`` computes it."""
    signals = {d.name for d in DETECTORS} | {
        r[0] for r in db.execute("SELECT name FROM signal_definitions")
    }
    compared = [
        c
        for c in db.columns("requests")
        if c not in signals and not c.startswith("_source_") and c not in DROPPED_COLUMNS
    ]
    items = [f"CAST({quote_identifier(c)} AS VARCHAR)" for c in compared]
    return f"md5(CAST(to_json([{', '.join(items)}]) AS VARCHAR))"


def _ingest_task(job: _Job, index: int, path: str) -> dict[str, Any]:
    """Ingest one file with the DuckDB ingest into a DuckDB of the task's own; stage its rows."""
    folder = Path(job.stage) / f"f{index}"
    folder.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="forensics-task-"))
    try:
        db = Database(work / "task.duckdb", config=replace(Config.from_env(), threads=1))
        _carry_in(db, job.carried)
        summary = ingest_files(
            db,
            [path],
            mapping=job.mapping,
            privacy=job.privacy,
            salt=job.salt,
            params=job.params,
            errors="collect",
        )
        out: dict[str, Any] = {"summary": summary.files[0], "notes": summary.notes}
        if summary.files[0].status == "ingested":
            target = folder / "requests.parquet"
            db.execute(
                f"COPY (SELECT *, {_content_sql(db)} AS _content FROM requests) "
                f"TO '{target}' (FORMAT parquet)"
            )
            db.execute(
                f"COPY (SELECT * FROM rejected_rows) TO '{folder / 'rejected.parquet'}' "
                "(FORMAT parquet)"
            )
            for name in REGISTRY:
                out[name] = _ipc(db.con.sql(f"SELECT * FROM {name}").to_arrow_table())
        db.close()
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- the driver ---------------------------------------------------------------------


def _carried(spark: Any, table: SparkTable, cache: Database) -> dict[str, bytes]:
    """The registry the tasks start from: the table's, with the cache's privacy settings."""
    carried = {}
    for name in REGISTRY:
        stored = table.registry(spark, name)
        if stored is None:
            stored = (
                cache.con.sql(f"SELECT * FROM {name}").to_arrow_table()
                if (name in cache.tables())
                else pa.table({})
            )
        carried[name] = _ipc(stored)
    return carried


def ingest_to_spark(
    spark: Any,
    paths: Any,
    *,
    table: SparkTable,
    cache: Database,
    mapping: Mapping | None = None,
    privacy: bool = False,
    salt: str | None = None,
    params: SignalParams | None = None,
) -> IngestSummary:
    """Ingest files into the Spark table (see the module docstring); the cache is not touched.

    Returns
    -------
    IngestSummary
        Per file, as ``ingest.ingest_files`` reports it.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.window import Window

    files = [str(_absolute(f)) for f in resolve_paths(paths)]
    salt = salt or cache.config.salt
    if table.registry(spark, "forensics_meta") is None:
        # The first ingest's key is drawn once, here, so every task hashes with it.
        privacy_settings(cache, privacy, salt)
    carried = _carried(spark, table, cache)
    stored_files = _from_ipc(carried["ingested_files"])
    base_id = (
        max(stored_files.column("file_id").to_pylist(), default=0) if (stored_files.num_rows) else 0
    )
    stage = f"{table.location}.stage-{uuid.uuid4().hex[:8]}"
    local_stage = Path(stage.removeprefix("file:"))
    job = _Job(str(local_stage / "tasks"), mapping, privacy, salt, params, carried)
    try:
        tasks = spark.sparkContext.parallelize(list(enumerate(files)), max(len(files), 1))
        results = tasks.map(lambda item: _ingest_task(job, item[0], item[1])).collect()
        return _settle(spark, table, stage, local_stage, results, base_id, F, Window)
    finally:
        _remove(spark, stage)
        shutil.rmtree(local_stage, ignore_errors=True)


def _settle(
    spark: Any,
    table: SparkTable,
    stage: str,
    local_stage: Path,
    results: list[dict[str, Any]],
    base_id: int,
    F: Any,
    Window: Any,
) -> IngestSummary:
    """Number the files, settle duplicates across files, write and swap in the table."""
    summaries: list[FileSummary] = []
    ingested: list[tuple[int, int, dict[str, Any]]] = []  # (order, file_id, result)
    seen: dict[str, int] = {}
    next_id = base_id
    for order, result in enumerate(results):
        summary: FileSummary = result["summary"]
        if summary.status == "ingested" and summary.sha256 in seen:
            summary = replace(
                summary,
                status="already ingested",
                rows_read=0,
                accepted=0,
                rejected={},
                duplicates=0,
                message=f"same content as file #{seen[summary.sha256]} in this ingest; nothing added",
            )
        elif summary.status == "ingested":
            next_id += 1
            seen[str(summary.sha256)] = next_id
            ingested.append((order, next_id, result))
        summaries.append(summary)
    if not ingested:
        return IngestSummary(files=tuple(summaries), db=table.location)

    ids = spark.createDataFrame(
        [
            (str(local_stage / "tasks" / f"f{o}" / "requests.parquet"), o, fid)
            for o, fid, _ in ingested
        ],
        "path string, _order int, _file_id int",
    )
    staged = [str(local_stage / "tasks" / f"f{o}" / "requests.parquet") for o, _, _ in ingested]
    new = (
        spark.read.option("mergeSchema", "true")
        .parquet(*staged)
        .withColumn("_path", F.col("_metadata.file_path"))
    )
    new = new.withColumn("_path", F.regexp_replace("_path", "^file:(//)?", ""))
    new = new.join(F.broadcast(ids.withColumnRenamed("path", "_path")), "_path").drop("_path")
    new = new.withColumn("_source_file_id", F.col("_file_id").cast("int")).drop("_file_id")

    had = table.exists(spark)
    stored = spark.read.parquet(table.part("requests")).drop("_day") if had else None

    # First occurrence of each request id (stored rows first, then by file and row) is kept.
    keys = new.select("request_id", "_content", "_order", "_source_row").where(
        F.col("request_id").isNotNull()
    )
    if stored is not None:
        old = stored.select(
            "request_id", "_content", F.lit(-1).alias("_order"), "_source_row"
        ).join(keys.select("request_id").distinct(), "request_id", "left_semi")
        keys = old.unionByName(keys)
    w = Window.partitionBy("request_id").orderBy("_order", "_source_row")
    verdicts = (
        keys.withColumn("_rank", F.row_number().over(w))
        .withColumn("_first", F.first("_content").over(w))
        .where((F.col("_rank") > 1) & (F.col("_order") >= 0))
        .select(
            "_order",
            "_source_row",
            "request_id",
            F.when(F.col("_content") == F.col("_first"), F.lit("duplicate"))
            .otherwise(F.lit("duplicate_conflict"))
            .alias("_verdict"),
        )
    )
    verdict_rows = verdicts.collect()  # request ids repeated across files: few
    dropped = spark.createDataFrame(
        [(r["_order"], r["_source_row"]) for r in verdict_rows] or [(-1, -1)],
        "_order int, _source_row bigint",
    )
    kept = (
        new.join(
            F.broadcast(dropped.withColumn("_drop", F.lit(True))), ["_order", "_source_row"], "left"
        )
        .where(F.col("_drop").isNull())
        .drop("_drop", "_order")
    )
    final = kept if stored is None else stored.unionByName(kept, allowMissingColumns=True)
    final = final.withColumn("_day", F.to_date("ts"))

    staging = f"{stage}/table"
    final.write.partitionBy("_day").parquet(f"{staging}/requests")

    # Rejected rows: the tasks', renumbered, and the conflicts found here.
    now = datetime.now(UTC)
    by_order = {o: (fid, res) for o, fid, res in ingested}
    conflicts = [r for r in verdict_rows if r["_verdict"] == "duplicate_conflict"]
    rejected_parts = [
        str(local_stage / "tasks" / f"f{o}" / "rejected.parquet") for o, _, _ in ingested
    ]
    rejected = spark.read.parquet(*rejected_parts)
    file_ids = spark.createDataFrame(
        [(str(by_order[o][1]["summary"].path), fid) for o, fid, _ in ingested],
        "source_file string, _fid int",
    )
    rejected = (
        rejected.join(F.broadcast(file_ids), "source_file")
        .withColumn("file_id", F.col("_fid").cast(rejected.schema["file_id"].dataType))
        .drop("_fid")
    )
    columns = rejected.columns
    if conflicts:
        extra = spark.createDataFrame(
            [
                (
                    str(by_order[r["_order"]][1]["summary"].path),
                    by_order[r["_order"]][0],
                    int(r["_source_row"]),
                    "request_id",
                    "duplicate_conflict",
                    r["request_id"],
                    None,
                    now,
                )
                for r in conflicts
            ],
            rejected.select(*columns).schema,
        )
        rejected = rejected.select(*columns).unionByName(extra)
    if had and _fs_exists(spark, table.part("rejected_rows")):
        rejected = spark.read.parquet(table.part("rejected_rows")).unionByName(
            rejected.select(*columns)
        )
    rejected.select(*columns).write.parquet(f"{staging}/rejected_rows")

    # Each file's counts, with the duplicates across files moved out of "accepted".
    moved: dict[int, Counter[str]] = {}
    for r in verdict_rows:
        moved.setdefault(r["_order"], Counter())[r["_verdict"]] += 1
    for i, (order, fid, result) in enumerate(ingested):
        counts = moved.get(order, Counter())
        s: FileSummary = summaries[order]
        rejected_by = dict(s.rejected)
        if counts["duplicate_conflict"]:
            rejected_by["duplicate_conflict"] = (
                rejected_by.get("duplicate_conflict", 0) + counts["duplicate_conflict"]
            )
        summaries[order] = replace(
            s,
            accepted=s.accepted - counts["duplicate"] - counts["duplicate_conflict"],
            duplicates=s.duplicates + counts["duplicate"],
            rejected=rejected_by,
        )
        ingested[i] = (order, fid, result)
    _write_registry(spark, table, staging, ingested, summaries)
    _swap(spark, staging, table.location)
    return IngestSummary(files=tuple(summaries), db=table.location)


def _write_registry(
    spark: Any,
    table: SparkTable,
    staging: str,
    ingested: list[tuple[int, int, dict[str, Any]]],
    summaries: list[FileSummary],
) -> None:
    """The registry beside the table: the stored one with this ingest's files and signals."""
    import polars as pl

    for name in REGISTRY:
        stored = table.registry(spark, name)
        frames = [pl.from_arrow(stored)] if stored is not None and stored.num_rows else []
        for order, fid, result in ingested:
            part = pl.from_arrow(_from_ipc(result[name]))
            assert isinstance(part, pl.DataFrame)
            if name == "ingested_files":
                s = summaries[order]
                part = part.tail(1).with_columns(
                    pl.lit(fid).cast(part.schema["file_id"]).alias("file_id"),
                    pl.lit(s.accepted).cast(part.schema["accepted"]).alias("accepted"),
                    pl.lit(sum(s.rejected.values()))
                    .cast(part.schema["rejected"])
                    .alias("rejected"),
                    pl.lit(s.duplicates).cast(part.schema["duplicates"]).alias("duplicates"),
                )
            frames.append(part)
        frame = pl.concat(
            [f for f in frames if isinstance(f, pl.DataFrame)], how="diagonal_relaxed"
        )
        key = {"forensics_meta": "key", "signal_definitions": "name", "column_roles": "column"}
        if name in key:
            frame = frame.unique(subset=[key[name]], keep="first", maintain_order=True)
        spark.createDataFrame(frame.to_arrow()).coalesce(1).write.parquet(f"{staging}/{name}")
