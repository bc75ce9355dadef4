"""The counts behind a signature's evidence, read from all requests.

The signature search works on its workspace (``separation.workspace``: a
temporary table, a sample above ``search_rows``); a signature's final numbers
(its slice and parents before, inside and after its window, its requests and
users, its overlap with others) are counted here, on ``requests`` itself or on
an hourly cube that answers exactly. These are the counts another engine
holding every request must answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import polars as pl

from forensics.db import Database
from forensics.errors import UnknownNameError
from forensics.queries.counts import _Source, _source
from forensics.queries.cube import _BUCKET_US, _catalog
from forensics.queries.engine import Engine
from forensics.queries.measures import (
    _requests_sum,
    _requests_where,
    _signal_sums,
    count_column,
    signal_names,
)
from forensics.queries.where import Where, _bind, _epoch_us, where_sql
from forensics.schema import quote_identifier

__all__ = ["cover_counts", "overlap_counts", "requests_and_users", "slice_counts"]


def overlap_counts(
    db: Engine, reference: Where, candidates: Sequence[Where], *, defined: Sequence[str]
) -> tuple[int, list[tuple[int, int]]]:
    """How many requests a reference filter and each candidate cover, and both.

    Counted on requests where at least one of the ``defined`` signals is not
    null (on counted rows, the requests they stand for). Returns (reference size, [(candidate size, overlap) per candidate]).
    """
    columns = db.columns("requests")
    params: dict[str, Any] = {}
    ref = where_sql(reference, columns=columns, params=params)
    items = [_requests_where(db, ref)]
    for c in candidates:
        sql = where_sql(c, columns=columns, params=params)
        items += [_requests_where(db, sql), _requests_where(db, f"({ref}) AND ({sql})")]
    scope = " OR ".join(f"{quote_identifier(s)} IS NOT NULL" for s in defined) or "true"
    row = db.execute(f"SELECT {', '.join(items)} FROM requests WHERE {scope}", params)[0]
    pairs = [(int(row[1 + 2 * i]), int(row[2 + 2 * i])) for i in range(len(candidates))]
    return int(row[0]), pairs


def slice_counts(
    db: Engine,
    predicate: Mapping[str, Any],
    window: tuple[datetime, datetime | None],
    signals: Sequence[str],
    *,
    settle: tuple[datetime | None, datetime | None] = (None, None),
    use_cubes: bool = True,
    since: datetime | None = None,
) -> pl.DataFrame:
    """A slice and its parents before, inside and after a window, in one scan.

    ``predicate`` is the mapping form of ``Where`` (one condition per column).
    Rows meeting all conditions but at most one are counted per flag of each
    condition (``c0``, ``c1``... in the predicate's order) and ``period`` (0
    before the window, 1 inside, 2 after; with ``settle``, the earliest onset
    and latest end the window's edges may have, 3 between the earliest onset
    and the start and 4 between the end and the latest end, neither inside nor
    clearly outside); the slice is where every flag holds,
    its parent without a condition where the others do. Reads an hourly cube
    when one holds every condition's column and every signal and the window
    falls on its hours; ``use_cubes=False`` forces ``requests`` (same answer).
    ``since`` leaves out every request before it (the scan then reads only the
    row groups from that time on).

    Returns ``c0.., period, requests, n__<signal>, k__<signal>...``.

    Examples
    --------
    >>> from datetime import UTC
    >>> from forensics.db import Database
    >>> db = Database(":memory:")
    >>> _ = db.execute("CREATE TABLE requests (ts TIMESTAMPTZ, model VARCHAR, bad BOOLEAN)")
    >>> _ = db.execute("INSERT INTO requests VALUES ('2025-01-01', 'a', true), "
    ...     "('2025-01-02', 'b', NULL), ('2025-01-03', 'a', false)")
    >>> day2 = datetime(2025, 1, 2, tzinfo=UTC)
    >>> slice_counts(db, {"model": ["a"]}, (day2, None), ["bad"]).rows()
    [(False, 1, 1, 0, 0), (True, 0, 1, 1, 1), (True, 1, 1, 1, 0)]
    """
    columns = db.columns("requests")
    for signal in signals:
        if signal not in columns:
            raise UnknownNameError.for_name("signal", signal, signal_names(db))
    source = _Source("requests", None, columns)
    # Cubes live beside DuckDB's requests; another engine reads its table itself.
    catalog = _catalog(db) if use_cubes and signals and isinstance(db, Database) else None
    if catalog is not None and catalog.cubes and isinstance(db, Database):
        found = _source(
            db,
            set(predicate),
            "hour",
            signals[0],
            Where.parse(dict(predicate)),
            times=(*window, since),
            catalog=catalog,
        )
        if all(f"n__{s}" in found.columns for s in signals):
            source = found
    params: dict[str, Any] = {}
    if source.cube is None:
        time, unit = "ts", None
        measures = [f"{_requests_sum(db)} AS requests"]
        for signal in signals:
            n, k = _signal_sums(db, signal)
            measures.append(f"{n} AS {quote_identifier('n__' + signal)}")
            measures.append(f"{k} AS {quote_identifier('k__' + signal)}")
    else:
        time, unit = "bucket", _BUCKET_US[source.cube.grain]
        measures = ["CAST(sum(requests) AS BIGINT) AS requests"]
        for signal in signals:
            for part in ("n__", "k__"):
                q = quote_identifier(part + signal)
                measures.append(f"CAST(sum({q}) AS BIGINT) AS {q}")
    flags = [
        "coalesce("
        + where_sql(
            Where.parse({c: v}),
            columns=source.columns,
            params=params,
            time_column=time,
            time_unit_us=unit,
        )
        + ", false)"
        for c, v in predicate.items()
    ]
    period = _period_sql(time, unit, window, settle, params)
    keys = [f"{f} AS c{i}" for i, f in enumerate(flags)]
    held = " + ".join(f"CAST({f} AS INTEGER)" for f in flags) if flags else "0"
    after = ""
    if since is not None:
        after = (
            f" AND {time} >= {_bind(params, since if unit is None else _epoch_us(since) // unit)}"
        )
    sql = (
        f"SELECT {', '.join([*keys, f'{period} AS period', *measures])} "
        f"FROM {quote_identifier(source.table)} "
        f"WHERE {held} >= {max(len(flags) - 1, 0)}{after} GROUP BY ALL ORDER BY ALL"
    )
    return db.frame(sql, params)


def _period_sql(
    time: str,
    unit: int | None,
    window: tuple[datetime, datetime | None],
    settle: tuple[datetime | None, datetime | None],
    params: dict[str, Any],
) -> str:
    """0 before, 1 inside, 2 after a window; 3 and 4 in its settling ranges (see slice_counts)."""

    def at(t: datetime) -> str:
        return _bind(params, t if unit is None else _epoch_us(t) // unit)

    (start, end), (early, late) = window, settle
    parts = []
    if early is not None and early < start:
        parts.append(f"WHEN {time} < {at(early)} THEN 0")
    parts.append(f"WHEN {time} < {at(start)} THEN {3 if parts else 0}")
    if end is None:
        return f"CASE {' '.join(parts)} ELSE 1 END"
    parts.append(f"WHEN {time} < {at(end)} THEN 1")
    if late is not None and late > end:
        parts.append(f"WHEN {time} < {at(late)} THEN 4")
    return f"CASE {' '.join(parts)} ELSE 2 END"


def requests_and_users(db: Engine, where: Where) -> tuple[int, int | None]:
    """Requests matching a filter and their distinct users.

    0 users without a user_id column; None on counted rows (which name no users).
    """
    columns = db.columns("requests")
    params: dict[str, Any] = {}
    condition = where_sql(where, columns=columns, params=params)
    counted = count_column(db) is not None
    users = "count(DISTINCT user_id)" if "user_id" in columns and not counted else "0"
    row = db.execute(
        f"SELECT {_requests_sum(db)}, {users} FROM requests WHERE {condition}", params
    )[0]
    return int(row[0]), None if counted else int(row[1])


def cover_counts(
    db: Engine,
    slices: Sequence[
        tuple[
            Mapping[str, Any],
            tuple[datetime, datetime | None],
            tuple[datetime | None, datetime | None],
        ]
    ],
    signals: Sequence[str],
) -> pl.DataFrame:
    """Several slices with their windows, counted together in one scan of ``requests``.

    Slice ``i`` is (predicate, window, settle) as ``slice_counts`` takes them:
    its conditions (the mapping form of ``Where``, one per column) give flags
    ``c<i>_<j>`` and its window ``p<i>`` (0 before, 1 inside, 2 after, 3 and 4
    in the settling ranges); rows are counted per combination of every flag and period, so that
    any slice, its parents, its window and any other slice's rows can be added
    up or left out afterwards. Only rows meeting all conditions but at most one
    of some slice are read.

    Returns ``c<i>_<j>..., p<i>..., n__<signal>, k__<signal>...``.

    Examples
    --------
    >>> from datetime import UTC
    >>> from forensics.db import Database
    >>> db = Database(":memory:")
    >>> _ = db.execute("CREATE TABLE requests (ts TIMESTAMPTZ, model VARCHAR, bad BOOLEAN)")
    >>> _ = db.execute("INSERT INTO requests VALUES ('2025-01-01', 'a', true), "
    ...     "('2025-01-02', 'b', NULL), ('2025-01-03', 'a', false)")
    >>> day2 = datetime(2025, 1, 2, tzinfo=UTC)
    >>> slices = [({"model": ["a"]}, (day2, None), (None, None))]
    >>> cover_counts(db, slices, ["bad"]).sort(["p0", "c0_0"]).rows()
    [(True, 0, 1, 1), (False, 1, 0, 0), (True, 1, 1, 0)]
    """
    columns = db.columns("requests")
    for signal in signals:
        if signal not in columns:
            raise UnknownNameError.for_name("signal", signal, signal_names(db))
    params: dict[str, Any] = {}
    keys, near = [], []
    for i, (predicate, window, settle) in enumerate(slices):
        flags = [
            "coalesce("
            + where_sql(Where.parse({c: v}), columns=columns, params=params)
            + ", false)"
            for c, v in predicate.items()
        ]
        keys += [f"{f} AS c{i}_{j}" for j, f in enumerate(flags)]
        keys.append(f"{_period_sql('ts', None, window, settle, params)} AS p{i}")
        held = " + ".join(f"CAST({f} AS INTEGER)" for f in flags) if flags else "0"
        near.append(f"{held} >= {max(len(flags) - 1, 0)}")
    measures = []
    for signal in signals:
        n, k = _signal_sums(db, signal)
        measures.append(f"{n} AS {quote_identifier('n__' + signal)}")
        measures.append(f"{k} AS {quote_identifier('k__' + signal)}")
    sql = (
        f"SELECT {', '.join(keys + measures)} FROM requests "
        f"WHERE {' OR '.join(near) or 'true'} GROUP BY ALL"
    )
    return db.frame(sql, params)
