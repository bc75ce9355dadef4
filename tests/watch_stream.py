"""A small synthetic request stream with one bug, cut into files, for the watch's tests.

Three models on two platforms in two regions, 240 requests an hour. The bug:
from ``BUG_START`` to ``BUG_END``, greedy requests of model ``m-b`` on platform
``gpu`` use a non-argmax token (argmax_violation) 40% of the time, against
about 1% elsewhere. With ``weekend`` set, Saturday and Sunday (UTC) traffic
comes from other users whose symptom rate is ``weekend``, in every model and
platform alike: a weekly cycle the other dimensions do not explain.
Everything comes from one seed: the same call writes the same bytes.

Run as a script it writes files into a folder: ``python tests/watch_stream.py
OUT FIRST LAST`` writes the history file and hourly files FIRST..LAST.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

START = datetime(2025, 3, 3, tzinfo=UTC)
"""First hour of the stream (a Monday)."""
HISTORY_HOURS = 96
"""Hours in the first file (the watch's warm-up needs 72)."""
BUG_START = START + timedelta(hours=HISTORY_HOURS + 4)
BUG_END = START + timedelta(hours=HISTORY_HOURS + 30)
PER_HOUR = 240


def hour_frame(
    h: int,
    *,
    seed: int = 5,
    bug: bool = True,
    returns_at: int | None = None,
    weekend: float | None = None,
    bug_hours: range | None = None,
) -> pl.DataFrame:
    """The requests of hour ``h`` of the stream; the bug is back from hour ``returns_at`` on.

    ``bug_hours`` replaces the bug's hours (``BUG_START`` to ``BUG_END``) by these.
    """
    rng = np.random.default_rng([seed, h])
    n = PER_HOUR
    t0 = START + timedelta(hours=h)
    weekend_day = weekend is not None and t0.weekday() >= 5
    model = rng.choice(["m-a", "m-b", "m-c"], n, p=[0.5, 0.3, 0.2])
    platform = rng.choice(["tpu", "gpu"], n, p=[0.6, 0.4])
    region = rng.choice(["us", "eu"], n)
    greedy = rng.random(n) < 0.7
    p_bad = np.full(n, weekend if weekend_day and weekend is not None else 0.01)
    back = returns_at is not None and h >= returns_at
    during = h in bug_hours if bug_hours is not None else BUG_START <= t0 < BUG_END
    if bug and (during or back):
        p_bad = np.where((model == "m-b") & (platform == "gpu"), 0.4, p_bad)
    rank = np.where(rng.random(n) < p_bad, 3, 1)
    seconds = np.sort(rng.integers(0, 3600, n))
    return pl.DataFrame(
        {
            "request_id": [f"r{h:05d}-{i:03d}" for i in range(n)],
            "ts": [t0 + timedelta(seconds=int(s)) for s in seconds],
            "model": model,
            "platform": platform,
            "routing_pool": "standard",
            "region": region,
            "user_id": [f"{'w' if weekend_day else 'u'}{u}" for u in rng.integers(0, 400, n)],
            "temperature": np.where(greedy, 0.0, 0.7),
            "max_token_rank": rank.astype(np.int64),
        }
    )


def write_history(folder: Path, *, seed: int = 5) -> Path:
    """The first ``HISTORY_HOURS`` hours in one file."""
    path = folder / "history.parquet"
    pl.concat([hour_frame(h, seed=seed) for h in range(HISTORY_HOURS)]).write_parquet(path)
    return path


def write_hour(folder: Path, h: int, *, seed: int = 5, returns_at: int | None = None) -> Path:
    """Hour ``h`` in its own file, written then renamed (the completeness convention)."""
    path = folder / f"hour-{h:04d}.parquet"
    tmp = folder / f"hour-{h:04d}.parquet.tmp"
    hour_frame(h, seed=seed, returns_at=returns_at).write_parquet(tmp)
    tmp.rename(path)
    return path


if __name__ == "__main__":
    out, first, last = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    out.mkdir(parents=True, exist_ok=True)
    write_history(out)
    for hour in range(first, last + 1):
        write_hour(out, hour)
