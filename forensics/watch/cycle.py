"""One watch cycle, and the loop that runs them: open, ingest, cubes, detect, alert, close, deliver.

A cycle opens the database, ingests the complete new files of the source
(each file in its own transaction, request ids checked within
``duplicate_horizon``), updates the cubes for the hours the new rows touch
(``queries.update_cubes``), then, in one transaction, recounts the series of
those hours, scans for problems whose window reaches the newest hour and turns
them into alerts (``alerts.advance``), queued in ``alert_deliveries`` for every
sink. It closes the database, sends what is pending (``sinks.deliver``: a
failing sink is logged and retried next cycle) and opens it again only to
record what was delivered. Between cycles the file is closed: the dashboard
and other readers can open it.

Crash safety: the alerts are committed before any sink sees them, with ids
that are their idempotency keys; the detection's transaction also records
the last file it accounted for, so a cycle killed before its commit is done
again, whole, by the next one (the same data give the same problem keys), and
a cycle killed after it sends what the killed one had queued, under the same
ids. No alert is lost and none is sent under a new key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from forensics import queries
from forensics.db import Database
from forensics.errors import ConfigError
from forensics.ingest import FileSummary, ingest_events, ingest_files
from forensics.schema import EventMapping
from forensics.schema import Mapping as ColumnMapping
from forensics.watch import alerts as alerting
from forensics.watch import calibration, store
from forensics.watch.alerts import Alert, Context
from forensics.watch.detector import Scan
from forensics.watch.engine import detect, watched_signals
from forensics.watch.model import load_models
from forensics.watch.params import WatchParams
from forensics.watch.sinks import Sink, deliver
from forensics.watch.source import FolderSource, record_read
from forensics.watch.store import HOUR_US

__all__ = ["CycleReport", "run_cycle", "watch"]

logger = logging.getLogger("forensics")


@dataclass(frozen=True)
class CycleReport:
    """What one cycle did."""

    files: tuple[FileSummary, ...] = ()
    """Per file read: status and counts."""
    cubes: str = ""
    """What became of the cubes (updated, rebuilt and why, unchanged)."""
    newest: datetime | None = None
    """The end of the newest hour of data."""
    firings: int = 0
    """Slices over the threshold this cycle."""
    alerts: tuple[Alert, ...] = ()
    """Alerts raised this cycle."""
    delivered: int = 0
    """Deliveries that succeeded (this cycle's alerts and older pending ones)."""
    failed: int = 0
    """Deliveries that failed (left pending)."""
    error: str | None = None
    """What stopped the detection, if anything did (ingestion is kept)."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time of each step."""


def run_cycle(
    db_path: str | Path,
    source: FolderSource,
    *,
    sinks: Mapping[str, Sink],
    params: WatchParams | None = None,
    mapping: ColumnMapping | None = None,
    events: Path | None = None,
    event_mapping: EventMapping | None = None,
) -> CycleReport:
    """Run one cycle on the database at ``db_path`` (opened here, closed before returning)."""
    params = params or WatchParams()
    threshold = params.threshold or calibration.threshold(params.false_alarms_per_30_days)
    clock: dict[str, float] = {}
    tick = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal tick
        now = time.perf_counter()
        clock[name] = round(now - tick, 4)
        tick = now

    db = Database(db_path)
    report: dict = {}
    try:
        _refuse_counted(db, mapping)
        ready = source.ready(db)
        lap("poll")
        before = int(db.scalar("SELECT coalesce(max(file_id), 0) FROM ingested_files"))
        files: tuple[FileSummary, ...] = ()
        if ready:
            summary = ingest_files(
                db,
                [p for p, _ in ready],
                mapping=mapping,
                errors="collect",
                duplicate_horizon=params.duplicate_horizon,
            )
            files = summary.files
            record_read(
                db, [(p, f.status, look) for (p, look), f in zip(ready, files, strict=True)]
            )
        if events is not None and events.is_file():
            ingest_events(db, events, mapping=event_mapping)
        lap("ingest")
        cubes = queries.update_cubes(db) if "requests" in db.tables() else None
        lap("cubes")
        report = {
            "files": files,
            "cubes": "" if cubes is None else f"{cubes.action} {cubes.reason}".strip(),
        }
        try:
            report.update(_detect_and_alert(db, before, params, threshold, list(sinks)))
        except Exception as exc:  # ingestion is kept; the next cycle tries again
            logger.exception("watch: detection failed")
            report["error"] = f"{type(exc).__name__}: {exc}"
        lap("detect")
        pending = alerting.undelivered(db, list(sinks))
    finally:
        db.close()
    results = deliver(pending, sinks) if pending else []
    lap("deliver")
    if results:
        db = Database(db_path)
        try:
            alerting.mark_delivered(db, results)
        finally:
            db.close()
    lap("record")
    return CycleReport(
        **report,
        delivered=sum(e is None for _, _, e in results),
        failed=sum(e is not None for _, _, e in results),
        seconds=clock,
    )


def _refuse_counted(db: Database, mapping: ColumnMapping | None) -> None:
    """Refuse counted rows (``[counts]``): the watch's series and models count request rows.

    Raises
    ------
    ConfigError
        When the mapping declares counts or the database already holds counted rows.
    """
    counted = (mapping is not None and mapping.counts is not None) or (
        "requests" in db.tables() and queries.count_column(db) is not None
    )
    if counted:
        raise ConfigError(
            f"{db.path}: forensics watch reads one row per request; counted rows "
            "([counts] in the mapping) are not watched yet. Use `forensics explain` "
            "on counted data, or watch a per-request log"
        )


def _detect_and_alert(
    db: Database, before: int, params: WatchParams, threshold: float, sinks: list[str]
) -> dict:
    """Series, scan and alerts for the rows of files after ``before``, in one transaction."""
    if "requests" not in db.tables():
        return {}
    last_file = store.state(db, "last_file_id")
    if last_file is None:
        last_file = before  # history loaded before the watch: not new, the first fit reads it
    newest = store.state(db, "newest_hour")
    hours = [
        int(h)
        for (h,) in db.execute(
            f"SELECT DISTINCT epoch_us(ts) // {HOUR_US} FROM requests WHERE _source_file_id > $f",
            {"f": last_file},
        )
    ]
    if newest is None:
        found = db.scalar(f"SELECT max(epoch_us(ts)) // {HOUR_US} FROM requests")
        if found is None:
            return {}
        newest = int(found)
    elif not hours:
        return {"newest": store.hour_start(int(newest) + 1)}
    newest = max([int(newest), *hours])
    files_now = int(db.scalar("SELECT coalesce(max(file_id), 0) FROM ingested_files"))
    db.execute("BEGIN TRANSACTION")
    try:
        scan: Scan = detect(db, hours=hours, newest_hour=newest, params=params, threshold=threshold)
        context = Context(
            newest_hour=newest,
            signals=watched_signals(db),
            dims=store.watched_dimensions(db, max_values=params.max_values),
            models=load_models(db),
            sinks=sinks,
            p_value=calibration.cycle_p_value if calibration.TABLE.exists() else _no_p_value,
        )
        raised = alerting.advance(db, scan, context, params)
        store.set_state(db, "newest_hour", newest)
        store.set_state(db, "last_file_id", files_now)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return {
        "newest": store.hour_start(newest + 1),
        "firings": len(scan.firings),
        "alerts": tuple(raised),
    }


def watch(
    db_path: str | Path,
    source: FolderSource,
    *,
    sinks: Mapping[str, Sink],
    every: float,
    params: WatchParams | None = None,
    mapping: ColumnMapping | None = None,
    events: Path | None = None,
    once: bool = False,
    on_cycle: Callable[[CycleReport], None] | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Run cycles every ``every`` seconds (start to start) until ``stop()``, or one with ``once``."""
    while True:
        started = time.monotonic()
        report = run_cycle(
            db_path, source, sinks=sinks, params=params, mapping=mapping, events=events
        )
        if on_cycle is not None:
            on_cycle(report)
        if once or stop():
            return
        while time.monotonic() - started < every:
            if stop():
                return
            time.sleep(min(1.0, every - (time.monotonic() - started)))


def _no_p_value(statistic: float) -> float:
    """Without the calibration table (a threshold given by hand) there is no p-value."""
    return float("nan")
