"""One detection step: refit the baselines when a day begins, recount the series, scan.

``detect`` is what a watch cycle runs after its ingest, and what the
benchmark's replay runs hour by hour: the same code on the same tables.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from forensics import queries
from forensics.db import Database
from forensics.watch import store
from forensics.watch.detector import Scan, scan
from forensics.watch.model import fit_models, load_models
from forensics.watch.params import WatchParams
from forensics.watch.store import HOUR_US

__all__ = ["detect", "watched_signals"]

logger = logging.getLogger("forensics")


def watched_signals(db: Database) -> list[str]:
    """Every signal but ``degraded`` (their union)."""
    return [s for s in queries.signal_names(db) if s != "degraded"]


def detect(
    db: Database,
    *,
    hours: Sequence[int],
    newest_hour: int,
    params: WatchParams,
    threshold: float,
) -> Scan:
    """Bring the series up to date for ``hours`` (epoch hours new rows touch) and scan.

    The baseline models are fitted again when the newest data enters a UTC day
    they were not fitted for (on the ``fit_days`` before it; the first time, on
    whatever there is); then every hour of the horizon is counted again with
    the new models, so that all the expectations a scan compares come from one
    model. No alert before the series span ``warmup_hours``.
    """
    signals = watched_signals(db)
    dims = store.watched_dimensions(db, max_values=params.max_values)
    models = load_models(db)
    day = newest_hour // 24
    first_data = store.state(db, "first_hour")
    if first_data is None:
        first_data = _first_hour(db, hours)
        store.set_state(db, "first_hour", first_data)
    todo = set(hours)
    fitted_day = store.state(db, "fitted_day")
    if fitted_day != day or set(signals) - set(models):
        until = day * 24 if day * 24 - first_data >= 24 else newest_hour + 1
        models = fit_models(db, dims=dims, signals=signals, until_hour=until, params=params)
        store.set_state(db, "fitted_day", day)
        logger.info("watch: baseline models fitted on hours before %s", store.hour_start(until))
        todo |= _hours_with_data(
            db, max(first_data, newest_hour - params.horizon_hours + 1), newest_hour
        )
    store.update_series(db, hours=sorted(todo), dims=dims, signals=signals, models=models)
    if newest_hour - first_data + 1 < params.warmup_hours:
        return Scan(newest_hour, (), 0.0)
    frame = store.read_series(
        db,
        first_hour=newest_hour - params.horizon_hours + 1,
        last_hour=newest_hour,
        signals=signals,
    )
    kinds = {d.name: d.kind for d in dims}
    return scan(
        frame,
        signals=signals,
        newest_hour=newest_hour,
        kinds=kinds,
        params=params,
        threshold=threshold,
    )


def _first_hour(db: Database, hours: Sequence[int]) -> int:
    """The first hour of data: the earliest of the new rows', or of all rows at the first cycle."""
    first = db.scalar(f"SELECT min(epoch_us(ts)) // {HOUR_US} FROM requests")
    return int(first) if first is not None else min(hours)


def _hours_with_data(db: Database, since: int, until: int) -> set[int]:
    """The hours in [since, until] that hold requests (a time-pruned read)."""
    rows = db.execute(
        f"SELECT DISTINCT epoch_us(ts) // {HOUR_US} FROM requests WHERE ts >= $lo AND ts < $hi",
        {"lo": store.hour_start(since), "hi": store.hour_start(until + 1)},
    )
    return {int(r[0]) for r in rows}
