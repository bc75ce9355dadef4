"""Cubes brought up to date in place: the hours new files touch, counted again.

``update_cubes`` is what a watch cycle calls after an ingest: incremental while
the cubes' layout holds, a full rebuild (``cube.refresh_cubes``) with its reason
logged when it must change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from forensics.db import Database
from forensics.queries.cube import (
    _BUCKET_US,
    _STATE,
    CUBE_MAX_ROWS,
    _cube_measures,
    _recorded_cubes,
    _recorded_dimensions,
    _source_parts,
    _state_text,
    logger,
    refresh_cubes,
)
from forensics.queries.dims import (
    CUBE_MAX_VALUES,
    NUMERIC_DISTINCT_AS_VALUES,
    _candidate_columns,
    _key_sql,
    power_of_two_edges,
)
from forensics.queries.measures import signal_names
from forensics.schema import quote_identifier

__all__ = ["CubeUpdate", "update_cubes"]


@dataclass(frozen=True)
class CubeUpdate:
    """What ``update_cubes`` did."""

    action: Literal["updated", "rebuilt", "unchanged"]
    """Buckets recomputed in place, every cube rebuilt, or nothing to do."""
    reason: str
    """Why the cubes were rebuilt ("" otherwise)."""
    hours: int
    """Hours the new rows touch (recomputed in every hourly cube)."""


def update_cubes(db: Database) -> CubeUpdate:
    """Bring the cubes up to date with the files ingested since they were built.

    Incremental while their layout holds: the hours (days, for a daily cube) the
    new files' rows fall in are deleted from each cube and counted again from
    ``requests``, reading those hours only, and the catalog records the new
    state (its provenance checksum is the old one plus the new rows', so no
    statement reads the whole history). Every cube is rebuilt from scratch
    instead (``refresh_cubes``), and the reason logged, when the layout must
    change or the cubes cannot be trusted to hold everything but the new files:

    - no cubes yet, or cubes recorded from different states of ``requests``;
    - ``requests`` changed other than by files appended since (rows deleted or
      inserted by hand, a file's rows missing);
    - the signal registry changed, or a column became a candidate dimension;
    - a numeric dimension needs new bucket edges (a value beyond its last
      power-of-two bucket, or a new value of one bucketed value by value);
    - a text dimension's values cross ``CUBE_MAX_VALUES`` (it no longer fits a cube);
    - the default cube holds more than twice ``CUBE_MAX_ROWS`` rows.

    A text dimension no cube can hold (more values than ``CUBE_MAX_VALUES``) is
    not counted again: its recorded cardinality stays as the last rebuild found it.
    One transaction: a crash leaves the old state recorded, and the next read
    rebuilds.
    """
    if "requests" not in db.tables():
        return CubeUpdate("unchanged", "", 0)
    plan = _incremental_plan(db)
    if isinstance(plan, str):
        logger.info("cubes rebuilt: %s", plan)
        refresh_cubes(db)
        return CubeUpdate("rebuilt", plan, 0)
    if plan is None:
        return CubeUpdate("unchanged", "", 0)
    db.execute("BEGIN TRANSACTION")
    try:
        hours = _update_buckets(db, plan)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return CubeUpdate("updated", "", hours)


@dataclass(frozen=True)
class _Increment:
    """What an incremental cube update needs: the new files and the state to record."""

    after_file: int
    """Files with a larger id are new."""
    state: str
    """The state of ``requests`` once the new rows are counted."""
    rows: int
    """Rows of ``requests``."""
    values: dict[str, list[str]]
    """Cubable text dimensions whose values the new rows extend: all their values."""


def _incremental_plan(db: Database) -> _Increment | str | None:
    """The increment to apply, the reason to rebuild instead, or None when up to date."""
    recorded = _recorded_cubes(db)
    if not recorded or "cube_dimensions" not in db.tables():
        return "no cubes yet"
    states = {r.state for r in recorded}
    parsed = _STATE.fullmatch(next(iter(states)) or "") if len(states) == 1 else None
    if parsed is None:
        return "the cubes were built from different states of requests"
    rows_old, files_old, signals_old, check_old = parsed.groups()
    (rows, files, signals), _ = _source_parts(db)
    if str(signals) != signals_old:
        return "the signal registry changed"
    old = [int(f) for f in files_old.split("/")] if files_old != "-" else [0, 0, 0]
    now = list(files) or [0, 0, 0]
    if (rows, now) == (int(rows_old), old):
        return None
    added = db.execute(
        "SELECT count(*), coalesce(sum(accepted), 0) FROM ingested_files WHERE file_id > $f",
        {"f": old[1]},
    )[0]
    if (
        {"_source_file_id", "_source_row"} - set(db.columns("requests"))
        or now[0] - old[0] != added[0]
        or now[2] - old[2] != added[1]
        or rows - int(rows_old) != added[1]
    ):
        return "requests changed other than by files appended since the cubes were built"
    why = _layout_change(db, old[1])
    if isinstance(why, str):
        return why
    check = int(check_old) + int(
        db.scalar(
            "SELECT coalesce(sum(hash(_source_file_id, _source_row)), 0) FROM requests "
            "WHERE _source_file_id > $f",
            {"f": old[1]},
        )
    )
    return _Increment(old[1], _state_text((rows, files, signals), check), rows, why)


def _layout_change(db: Database, after_file: int) -> str | dict[str, list[str]]:
    """Why the new rows need another cube layout, else the text values they extend.

    Reads the new files' rows only (``_source_file_id`` greater than ``after_file``).
    """
    known = db.meta("cube_columns")
    if known is None or "values" not in db.columns("cube_dimensions"):
        return "the cubes were recorded by an older version"
    candidates = set(_candidate_columns(db))
    if candidates != set(json.loads(known)):
        changed = sorted(candidates ^ set(json.loads(known)))
        return f"the columns to slice by changed: {', '.join(changed)}"
    for r in _recorded_cubes(db):
        if r.cube.auto and r.cube.rows > 2 * CUBE_MAX_ROWS:
            return f"the default cube outgrew its row budget ({r.cube.rows:,} rows)"
    recorded = db.execute(
        'SELECT name, kind, cardinality, cubable, edges, "values" FROM cube_dimensions '
        "ORDER BY position"
    )
    dims = [r for r in recorded if r[0] in candidates]
    items = []
    for name, kind, cardinality, cubable, _, _ in dims:
        q = quote_identifier(name)
        if kind == "numeric":
            items.append(f"max(CAST({q} AS DOUBLE))")
            items.append(
                f"list(DISTINCT CAST({q} AS DOUBLE)) FILTER (WHERE {q} IS NOT NULL)"
                if cardinality <= NUMERIC_DISTINCT_AS_VALUES
                else "NULL"
            )
        elif cubable:
            items.append(f"list(DISTINCT {q}) FILTER (WHERE {q} IS NOT NULL)")
    if not items:
        return {}
    found = iter(
        db.execute(
            f"SELECT {', '.join(items)} FROM requests WHERE _source_file_id > $f",
            {"f": after_file},
        )[0]
    )
    extended: dict[str, list[str]] = {}
    for name, kind, _, cubable, edge_list, values in dims:
        edges = tuple(float(e) for e in edge_list or ())
        if kind == "numeric":
            top, distinct = next(found), next(found)
            unseen = sorted(set(distinct or ()) - set(edges))
            if unseen:
                return f"{name} has a value it was not bucketed by ({unseen[0]:g})"
            ranged = distinct is None and top is not None and edges
            if ranged and power_of_two_edges(0.0, max(float(top), edges[-1])) != edges:
                return f"{name} needs new bucket edges (a value of {top:g})"
        elif cubable:
            new = set(next(found) or ()) - set(values or ())
            if not new:
                continue
            every = sorted(set(values or ()) | new)
            if len(every) > CUBE_MAX_VALUES:
                return (
                    f"{name} now has {len(every)} values, more than a cube holds "
                    f"({CUBE_MAX_VALUES})"
                )
            extended[name] = every
    return extended


def _update_buckets(db: Database, plan: _Increment) -> int:
    """Recount the buckets the new files touch in every cube; record the new state."""
    recorded = _recorded_cubes(db)
    # Ticks of the finest cube grain (every grain's buckets are whole ticks of it).
    tick = min([_BUCKET_US[e.cube.grain] for e in recorded] + [_BUCKET_US["hour"]])
    ticks = [
        int(t[0])
        for t in db.execute(
            f"SELECT DISTINCT epoch_us(ts) // {tick} FROM requests "
            "WHERE _source_file_id > $f ORDER BY 1",
            {"f": plan.after_file},
        )
    ]
    hours = {t * tick // _BUCKET_US["hour"] for t in ticks}
    known = {d.name: d for d in _recorded_dimensions(db)}
    signals = signal_names(db)
    for entry in recorded:
        cube = entry.cube
        unit = _BUCKET_US[cube.grain]
        per = unit // tick
        buckets = sorted({t // per for t in ticks})
        if buckets:
            table = quote_identifier(cube.name)
            # The range lets DuckDB skip the row groups of other times (both tables
            # grow in time order); the list picks the buckets within it.
            bounds = {
                "b": buckets,
                "first": buckets[0],
                "last": buckets[-1],
                "lo": datetime.fromtimestamp(buckets[0] * unit / 1e6, UTC),
                "hi": datetime.fromtimestamp((buckets[-1] + 1) * unit / 1e6, UTC),
            }
            db.execute(
                f"DELETE FROM {table} WHERE bucket BETWEEN $first AND $last "
                "AND list_contains($b, bucket)",
                bounds,
            )
            select = ", ".join(
                [
                    f"epoch_us(ts) // {unit} AS bucket",
                    *(_key_sql(known[d]) for d in cube.dims),
                    *_cube_measures(db, signals),
                ]
            )
            db.execute(
                f"INSERT INTO {table} BY NAME SELECT {select} FROM requests "
                f"WHERE ts >= $lo AND ts < $hi AND list_contains($b, epoch_us(ts) // {unit}) "
                "GROUP BY ALL",
                bounds,
            )
        db.execute(
            "UPDATE cube_catalog SET rows = (SELECT count(*) FROM "
            f"{quote_identifier(cube.name)}), source_rows = $s, built_at = now(), "
            "source_state = $state WHERE name = $n",
            {"s": plan.rows, "state": plan.state, "n": cube.name},
        )
    for name, values in plan.values.items():
        db.execute(
            'UPDATE cube_dimensions SET cardinality = $c, "values" = $v WHERE name = $n',
            {"c": len(values), "v": values, "n": name},
        )
    return len(hours)
