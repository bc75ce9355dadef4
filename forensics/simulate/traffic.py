"""Simulated traffic: sessions, users and arrival times, and sticky keys' positions.

Sessions start following the scenario's diurnal and weekly shape; each is a
burst of requests from one user; users own sessions in proportion to a
Pareto-distributed activity, so a few heavy users send much of the traffic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from forensics.simulate.spec import Scenario

__all__ = ["HOUR", "Traffic", "make_traffic", "positions"]

HOUR = 3_600_000_000
"""One hour in microseconds."""


@dataclass(frozen=True)
class Traffic:
    """Who sends what when: one entry per request, or per session."""

    ts: np.ndarray
    """Sorted request times (µs)."""
    users: np.ndarray
    """User index per request."""
    sessions: np.ndarray
    """Session index per request (sessions numbered by start time)."""
    n_users: int
    """Number of users."""
    session_start: np.ndarray
    """Start time per session (µs)."""
    session_user: np.ndarray
    """User per session."""


def make_traffic(s: Scenario, rows: int, rng: np.random.Generator) -> Traffic:
    """Sessions start following the diurnal and weekly shape; each is a burst of requests.

    Users own sessions in proportion to a Pareto-distributed activity (heavy users);
    a session holds a geometric number of requests separated by exponential pauses.
    Exactly ``rows`` requests, all inside [start, end).
    """
    t = s.traffic
    lengths = rng.geometric(1 / t.session_requests, int(rows / t.session_requests * 1.3) + 16)
    while lengths.sum() < rows:
        lengths = np.concatenate([lengths, rng.geometric(1 / t.session_requests, len(lengths))])
    total = np.cumsum(lengths)
    last = int(np.searchsorted(total, rows))
    lengths = lengths[: last + 1]
    lengths[-1] -= int(total[last]) - rows
    n_sessions = len(lengths)

    hours = np.arange(s.start, s.end, HOUR, dtype=np.int64)
    hour_of_day = (hours // HOUR) % 24
    weekday = (hours // (24 * HOUR) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    weights = np.asarray(t.diurnal)[hour_of_day] * np.asarray(t.weekly)[weekday]
    counts = rng.multinomial(n_sessions, weights / weights.sum())
    starts = np.repeat(hours, counts) + rng.integers(0, HOUR // 1000, n_sessions) * 1000
    starts.sort()

    n_users = max(10, round(rows / t.requests_per_user))
    activity = np.minimum(rng.pareto(t.user_pareto, n_users) + 1, t.user_cap)
    session_user = rng.choice(n_users, size=n_sessions, p=activity / activity.sum()).astype(
        np.int32
    )

    session_of = np.repeat(np.arange(n_sessions), lengths)
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    gaps = np.round(rng.exponential(t.request_gap_seconds * 1000, rows)) * 1000
    gaps[first] = 0
    elapsed = np.cumsum(gaps)
    offsets = (elapsed - elapsed[first][session_of]).astype(np.int64)
    # A session that would run past the end is moved back so that it ends inside.
    duration = offsets[np.cumsum(lengths) - 1]
    starts = np.maximum(s.start, np.minimum(starts, s.end - 1000 - duration))
    ts = starts[session_of] + offsets
    ts = np.minimum(ts, s.end - 1000)
    order = np.argsort(ts, kind="stable")
    sessions = session_of[order]
    return Traffic(ts[order], session_user[sessions], sessions, n_users, starts, session_user)


def positions(counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random point of each key's segment when all requests are laid end to end on [0, 1).

    Keys are shuffled; a key's segment is as long as its share of requests. The keys
    whose point is below a threshold hold, on average, exactly that share of requests
    (a heavy key straddling the threshold is in with the matching probability).
    """
    order = rng.permutation(len(counts))
    share = counts[order] / max(1, counts.sum())
    out = np.empty(len(counts))
    out[order] = np.cumsum(share) - share + share * rng.random(len(counts))
    return out
