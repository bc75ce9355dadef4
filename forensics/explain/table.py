"""The counts an explanation reads, checked and encoded once.

Input: a Polars frame with ``t`` (bucket start), one column per dimension and
``n`` (requests) and ``k`` (requests showing the signal), one row per bucket
and combination of values (several rows of one bucket and combination add
up). Buckets lie on a regular grid whose step, the grain, is the smallest gap
between two times; a bucket without rows has no requests. Dimension values
become integer codes (in sorted order, a missing value last), counts become
float arrays, so that every later step is numpy over rows or leaves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from forensics.errors import QueryError

__all__ = ["COUNT_COLUMNS", "CountsTable", "encode_counts"]

COUNT_COLUMNS = ("t", "n", "k")
"""The columns every counts frame has besides its dimensions."""


@dataclass(frozen=True)
class CountsTable:
    """A counts frame as arrays: rows with a bucket, a code per dimension, ``n`` and ``k``."""

    dims: tuple[str, ...]
    """Dimension names, in the frame's order."""
    values: tuple[tuple[Any, ...], ...]
    """Per dimension, the value of each code."""
    start: datetime
    """Start of the first bucket (UTC)."""
    grain: timedelta
    """Bucket length."""
    buckets: int
    """How many buckets, from the first time to the last."""
    bucket: np.ndarray
    """Per row, its bucket's index."""
    codes: np.ndarray
    """Rows x dimensions: each row's value code per dimension."""
    n: np.ndarray
    """Per row, requests."""
    k: np.ndarray
    """Per row, requests showing the signal."""

    def time(self, index: int) -> datetime:
        """Start of bucket ``index``."""
        return self.start + index * self.grain

    def index_of(self, at: datetime) -> int:
        """The bucket holding ``at``; a ``QueryError`` when it is outside the data."""
        offset = (at - self.start) // self.grain
        if not 0 <= offset < self.buckets:
            last = self.time(self.buckets - 1) + self.grain
            raise QueryError(
                f"at={at.isoformat()} is outside the data ({self.start.isoformat()} to "
                f"{last.isoformat()}); give a time inside it, or none to find the most "
                "anomalous moment"
            )
        return int(offset)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _codes(series: pl.Series) -> tuple[np.ndarray, tuple[Any, ...]]:
    """Dense codes in sorted value order (missing last) and the value of each code."""
    present = series.drop_nulls().unique().sort()
    values: tuple[Any, ...] = tuple(present.to_list())
    codes = present.search_sorted(series.fill_null(present[0]) if len(present) else series)
    out = codes.to_numpy().astype(np.int32)
    if series.null_count():
        out[series.is_null().to_numpy()] = len(values)
        values = (*values, None)
    return out, values


def encode_counts(
    frame: pl.DataFrame, dims: Sequence[str] | None = None, *, grain: timedelta | None = None
) -> CountsTable:
    """Check a counts frame and encode it (see the module docstring).

    ``grain`` is the bucket length when the caller knows it (default: the
    smallest gap between two times).

    Raises
    ------
    QueryError
        A column is missing, ``t`` is not a time, ``n`` or ``k`` is not a whole
        number, is missing or negative, ``k`` exceeds ``n``, or there are no rows.
    """
    missing = [c for c in COUNT_COLUMNS if c not in frame.columns]
    if dims is None:
        dims = [c for c in frame.columns if c not in COUNT_COLUMNS]
    missing += [d for d in dims if d not in frame.columns]
    if missing:
        raise QueryError(
            f"the counts frame lacks column(s) {', '.join(missing)}; it needs t (bucket start), "
            f"n (requests), k (requests showing the signal) and the dimensions; it has "
            f"{', '.join(frame.columns) or '(none)'}"
        )
    if not dims:
        raise QueryError("the counts frame has no dimension column to explain by")
    if frame.height == 0:
        raise QueryError("the counts frame has no rows: there is nothing to explain")
    if not isinstance(frame.schema["t"], pl.Datetime):
        raise QueryError(f"column t must hold times (bucket starts), not {frame.schema['t']}")
    for column in ("n", "k"):
        dtype = frame.schema[column]
        if not dtype.is_integer():
            raise QueryError(f"column {column} must hold whole counts, not {dtype}")
    problems = frame.select(
        t=pl.col("t").is_null(),
        missing=pl.col("n").is_null() | pl.col("k").is_null(),
        wrong=(pl.col("n") < 0) | (pl.col("k") < 0) | (pl.col("k") > pl.col("n")),
    )
    for column, what in (
        ("t", "t is missing; every row needs its bucket's start"),
        ("missing", "n or k is missing"),
        ("wrong", "n or k is negative, or k exceeds n"),
    ):
        rows = problems[column].arg_true()
        if rows.len():
            row = int(rows[0])
            raise QueryError(
                f"row {row}: {what} (n = {frame['n'][row]}, k = {frame['k'][row]}); "
                "n counts requests and k those showing the signal, 0 <= k <= n"
            )
    times = frame["t"]
    first, last = _utc(times.min()), _utc(times.max())  # type: ignore[arg-type]
    distinct = np.unique(times.dt.epoch("us").to_numpy())
    gaps = np.diff(distinct)
    if grain is None:
        grain = timedelta(microseconds=int(gaps.min())) if gaps.size else timedelta(hours=1)
    step = grain // timedelta(microseconds=1)
    offsets = times.dt.epoch("us").to_numpy() - distinct[0]
    if np.any(offsets % step):
        raise QueryError(
            f"the times in t are not on one grid (steps of {grain}): each row's t must be "
            "the start of its bucket"
        )
    encoded = [_codes(frame[d]) for d in dims]
    codes = np.column_stack([c for c, _ in encoded]) if encoded else np.zeros((frame.height, 0))
    return CountsTable(
        dims=tuple(dims),
        values=tuple(v for _, v in encoded),
        start=first,
        grain=grain,
        buckets=int((last - first) // grain) + 1,
        bucket=(offsets // step).astype(np.int64),
        codes=codes.astype(np.int32),
        n=frame["n"].to_numpy().astype(float),
        k=frame["k"].to_numpy().astype(float),
    )
