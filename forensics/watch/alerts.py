"""Problems and their alerts: stable keys, the matching rule, new / update / resolved.

A *problem* is what an on-call engineer acts on. It is born from a firing
slice (``detector``) refined into a minimal predicate (``refine``) whose
evidence holds (``evidence``), and gets a key, ``P`` and ten hex digits of a
hash of its first signal, predicate and onset, that never changes afterwards:
it is stored in ``watch_problems`` and every alert about it carries it.

**Matching rule** (one problem, not two). A detection D (a firing slice, or a
refined predicate) belongs to problem P when both hold:

1. they share a signal: D's signal is P's, or one of the symptoms P raised;
2. their rows overlap: over the hours both cover (at most the last 24), the
   requests meeting both predicates are at least ``match_share`` (half) of the
   requests meeting the smaller one, ``|D and P| >= 1/2 min(|D|, |P|)``.

So a later, wider signature (P's slice within D's) and a narrower one (D's
within P's) are P, while two problems on disjoint slices, or on the same
slice with other symptoms, are two. Among several matching problems, the one
with the largest overlap share wins. A firing that matches an open problem
is not refined again; a refined predicate that matches one and covers more
excess requests replaces its predicate (the key stays).

**Alerts.** ``new`` once per problem; ``update`` when its excess requests
have grown by ``update_growth`` since the last alert (at most every
``update_every_hours``), when its predicate changes, or when a problem
resolved less than ``reopen_hours`` ago is seen again and its rate since its
end is shown (lower end of the 95% interval) to be ``min_ratio`` times its
baseline or more (reopened; otherwise a window reaching back into it shows
its past, not a return); ``resolved``
when, over the last ``resolve_hours``, its rate is below ``min_ratio`` times
its baseline and the upper end of its 95% Wilson interval is below the lower
end of the interval of its rate in the last alert (a fix shown to work: the
rate is back near the baseline and shown to be below the problem's), or when
its slice has had no request for 24 hours. An alert's id,
``<key>-<n>`` (its number within the problem), is its idempotency key: it is
written to the ``alerts`` table, with one row per sink in
``alert_deliveries``, in the cycle's transaction, before any sink sees it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import polars as pl

from forensics import queries, stats
from forensics.db import Database
from forensics.queries import Where, where_sql
from forensics.signature import Signature
from forensics.watch.detector import Firing, Scan
from forensics.watch.evidence import measure_problem
from forensics.watch.params import WatchParams
from forensics.watch.refine import refine
from forensics.watch.store import Watched, hour_start

__all__ = [
    "ALERTS",
    "DELIVERIES",
    "Alert",
    "Context",
    "Problem",
    "advance",
    "alert_rows",
    "iso",
    "mark_delivered",
    "problem_key",
    "undelivered",
]

logger = logging.getLogger("forensics")

PROBLEMS = "watch_problems"
ALERTS = "alerts"
DELIVERIES = "alert_deliveries"

OVERLAP_HOURS = 24
"""Hours (the most recent) over which two predicates' rows are compared."""

QUIET_HOURS = 24
"""A problem whose slice has had no request for this long is resolved."""

AlertKind = Literal["new", "update", "resolved"]


def iso(t: datetime) -> str:
    """ISO-8601 UTC with a Z, as the signatures' JSON writes times.

    Examples
    --------
    >>> iso(datetime(2025, 1, 1, 6, tzinfo=UTC))
    '2025-01-01T06:00:00Z'
    """
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def problem_key(signal: str, predicate: Mapping[str, Any], onset: datetime) -> str:
    """The stable key of a problem from what first described it.

    Examples
    --------
    >>> problem_key("script_mix", {"model": ["a"]}, datetime(2025, 1, 1, tzinfo=UTC))
    'P8f9e74d9c2'
    """
    text = json.dumps([signal, dict(sorted(predicate.items())), iso(onset)], sort_keys=True)
    return "P" + hashlib.sha256(text.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Alert:
    """One alert about a problem."""

    id: str
    """``<problem>-<n>``: the idempotency key a receiver can drop repeats by."""
    problem: str
    """The problem key."""
    seq: int
    """Its number within the problem (1 is ``new``)."""
    kind: AlertKind
    """new, update or resolved."""
    at: datetime
    """The end of the newest data seen when it was raised (UTC)."""
    signature: dict[str, Any]
    """The problem as ``Signature.to_dict`` gives it (``forensics signatures --json``)."""

    def payload(self) -> dict[str, Any]:
        """What sinks send: ``kind``, ``at``, ``signature``, and ``problem`` and ``id``."""
        return {
            "kind": self.kind,
            "at": iso(self.at),
            "signature": self.signature,
            "problem": self.problem,
            "id": self.id,
        }


@dataclass
class Problem:
    """What the watch knows of one problem between cycles (a row of ``watch_problems``)."""

    key: str
    status: Literal["open", "resolved"]
    signal: str
    predicate: dict[str, Any]
    signals: list[str]
    onset_hour: int
    onset_range: list[int]
    baseline: list[int]
    """(n, k) of the primary signal in its baseline when it was first measured."""
    alerted_excess: float
    last_alert_hour: int
    seq: int
    resolved_hour: int | None = None
    ended_hour: int | None = None
    """When resolved, the first of the quiet hours that showed it (its signature's end)."""
    signature: dict[str, Any] = field(default_factory=dict)


def _ensure(db: Database) -> None:
    db.execute(
        f"CREATE TABLE IF NOT EXISTS {PROBLEMS} (key VARCHAR PRIMARY KEY, status VARCHAR, "
        "state VARCHAR)"
    )
    db.execute(
        f"CREATE TABLE IF NOT EXISTS {ALERTS} (id VARCHAR PRIMARY KEY, problem VARCHAR NOT NULL, "
        'seq INTEGER NOT NULL, kind VARCHAR NOT NULL, "at" TIMESTAMPTZ NOT NULL, '
        "created_at TIMESTAMPTZ NOT NULL, payload VARCHAR NOT NULL)"
    )
    db.execute(
        f"CREATE TABLE IF NOT EXISTS {DELIVERIES} (alert_id VARCHAR NOT NULL, sink VARCHAR NOT "
        "NULL, delivered_at TIMESTAMPTZ, attempts INTEGER NOT NULL DEFAULT 0, last_error VARCHAR, "
        "PRIMARY KEY (alert_id, sink))"
    )


def _load(db: Database) -> list[Problem]:
    _ensure(db)
    return [Problem(**json.loads(s)) for (s,) in db.execute(f"SELECT state FROM {PROBLEMS}")]


def _save(db: Database, problem: Problem) -> None:
    db.execute(
        f"INSERT OR REPLACE INTO {PROBLEMS} VALUES ($k, $s, $state)",
        {"k": problem.key, "s": problem.status, "state": json.dumps(asdict(problem))},
    )


def _record(db: Database, alert: Alert, sinks: Sequence[str]) -> None:
    db.execute(
        f"INSERT OR IGNORE INTO {ALERTS} VALUES ($id, $p, $seq, $kind, $at, now(), $payload)",
        {
            "id": alert.id,
            "p": alert.problem,
            "seq": alert.seq,
            "kind": alert.kind,
            "at": alert.at,
            "payload": json.dumps(alert.payload()),
        },
    )
    for sink in sinks:
        db.execute(
            f"INSERT OR IGNORE INTO {DELIVERIES} (alert_id, sink) VALUES ($id, $sink)",
            {"id": alert.id, "sink": sink},
        )


def _overlap(
    db: Database, a: Mapping[str, Any], b: Mapping[str, Any], since: datetime, until: datetime
) -> float:
    """Requests meeting both predicates over the smaller one's, in [since, until) (0 if empty)."""
    columns = db.columns("requests")
    params: dict[str, Any] = {"since": since, "until": until}
    fa = where_sql(Where.parse(dict(a)), columns=columns, params=params)
    fb = where_sql(Where.parse(dict(b)), columns=columns, params=params)
    na, nb, both = db.execute(
        f"SELECT count(*) FILTER (WHERE {fa}), count(*) FILTER (WHERE {fb}), "
        f"count(*) FILTER (WHERE ({fa}) AND ({fb})) FROM requests "
        "WHERE ts >= $since AND ts < $until",
        params,
    )[0]
    smaller = min(int(na), int(nb))
    return int(both) / smaller if smaller else 0.0


def _matching(
    db: Database,
    problems: Sequence[Problem],
    predicate: Mapping[str, Any],
    signal: str,
    now: datetime,
    params: WatchParams,
) -> Problem | None:
    """The problem ``predicate`` (on ``signal``) belongs to by the matching rule, if any."""
    best: tuple[float, Problem] | None = None
    for p in problems:
        if signal != p.signal and signal not in p.signals:
            continue
        since = max(hour_start(p.onset_hour), now - timedelta(hours=OVERLAP_HOURS))
        if p.status == "resolved" and p.resolved_hour is not None:
            since = min(since, hour_start(p.resolved_hour) - timedelta(hours=OVERLAP_HOURS))
        share = _overlap(db, predicate, p.predicate, since, now)
        if share >= params.match_share and (best is None or share > best[0]):
            best = (share, p)
    return None if best is None else best[1]


@dataclass(frozen=True)
class Context:
    """What a cycle knows that alerting needs."""

    newest_hour: int
    """The newest hour of data."""
    signals: Sequence[str]
    """Every watched signal."""
    dims: Sequence[Watched]
    """The watched dimensions."""
    models: Mapping[str, Mapping[str, Any]]
    """Each signal's baseline model (stored form)."""
    sinks: Sequence[str]
    """The sinks each new alert is queued for."""
    p_value: Callable[[float], float]
    """A firing statistic's calibrated p-value."""


def advance(db: Database, scan: Scan, context: Context, params: WatchParams) -> list[Alert]:
    """Turn one cycle's scan into alerts; record problems, alerts and deliveries.

    The caller holds the transaction.
    """
    problems = _load(db)
    now = hour_start(context.newest_hour + 1)
    recent = [
        p
        for p in problems
        if p.status == "open"
        or (
            p.resolved_hour is not None
            and context.newest_hour - p.resolved_hour <= params.reopen_hours
        )
    ]
    alerts: list[Alert] = []
    touched: set[str] = set()

    def emit(p: Problem, kind: AlertKind, signature: Signature) -> None:
        p.seq += 1
        p.last_alert_hour = context.newest_hour
        p.signature = signature.to_dict()
        if kind != "resolved":
            p.alerted_excess = signature.excess_requests
        alert = Alert(f"{p.key}-{p.seq}", p.key, p.seq, kind, now, p.signature)
        alerts.append(alert)
        touched.add(p.key)
        _save(db, p)
        _record(db, alert, context.sinks)

    for p in [p for p in recent if p.status == "open"]:
        quiet = _resolution(db, p, now, params)
        if quiet is not None:
            end = quiet
            sig = _measure(db, p, context, params, end=end)
            if sig is not None:
                p.status, p.resolved_hour = "resolved", context.newest_hour
                p.ended_hour = int(end.timestamp() // 3600)
                emit(p, "resolved", sig)

    kinds = {d.name: d.kind for d in context.dims}
    refined = 0
    for firing in scan.firings:
        slice_predicate = firing.slice.predicate(kinds)
        opened = [p for p in recent if p.status == "open"]
        if _matching(db, opened, slice_predicate, firing.signal, now, params) is not None:
            continue
        past = [p for p in recent if p.status == "resolved" and not _back(db, p, now, params)]
        if _matching(db, past, slice_predicate, firing.signal, now, params) is not None:
            continue  # a window reaching back into a resolved problem: its past, not a return
        if refined >= params.max_firings:
            break
        refined += 1
        found = _refine(db, firing, slice_predicate, context, params, now, scan)
        if found is None:
            continue
        predicate, sig = found
        home = _matching(db, recent, predicate, firing.signal, now, params)
        if home is None:
            key = problem_key(firing.signal, predicate, sig.start)
            if any(p.key == key for p in problems):
                continue  # the same problem, found again the same way: already known
            p = Problem(
                key=key,
                status="open",
                signal=firing.signal,
                predicate=predicate,
                signals=list(sig.signals),
                onset_hour=firing.start_hour,
                onset_range=list(firing.onset_range),
                baseline=_baseline(sig),
                alerted_excess=0.0,
                last_alert_hour=context.newest_hour,
                seq=0,
            )
            problems.append(p)
            recent.append(p)
            emit(p, "new", replace(sig, id=key))
        elif home.status == "resolved":
            if not _back(db, home, now, params):
                continue  # its past, still in the window
            home.status, home.resolved_hour = "open", None
            _adopt(home, predicate, sig)
            emit(home, "update", replace(sig, id=home.key))
        elif (
            home.key not in touched
            and sig.excess_requests > home.alerted_excess
            and (predicate != home.predicate)
        ):
            _adopt(home, predicate, sig)
            emit(home, "update", replace(sig, id=home.key))

    for p in recent:
        if p.status != "open" or p.key in touched:
            continue
        if context.newest_hour - p.last_alert_hour < params.update_every_hours:
            continue
        sig = _measure(db, p, context, params, end=None)
        if sig is not None and sig.excess_requests >= params.update_growth * max(
            p.alerted_excess, params.min_excess
        ):
            p.signals = sorted(set(p.signals) | set(sig.signals))
            emit(p, "update", sig)
    return alerts


def _baseline(sig: Signature) -> list[int]:
    primary = next(s for s in sig.symptoms if s.signal == sig.signal)
    return [primary.n_baseline, primary.k_baseline]


def _adopt(p: Problem, predicate: dict[str, Any], sig: Signature) -> None:
    """A wider or narrower predicate found for ``p`` becomes its own (the key stays)."""
    p.predicate = predicate
    p.signals = sorted(set(p.signals) | set(sig.signals))


def _refine(
    db: Database,
    firing: Firing,
    predicate: dict[str, Any],
    context: Context,
    params: WatchParams,
    now: datetime,
    scan: Scan,
) -> tuple[dict[str, Any], Signature] | None:
    """The firing's minimal predicate and its signature, None when the evidence fails."""
    refined = refine(
        db,
        predicate=predicate,
        signal=firing.signal,
        start=hour_start(firing.start_hour),
        until=now,
        dims=context.dims,
        model=context.models.get(firing.signal),
        scale=scan.dispersion.get(firing.signal, 1.0),
        params=params,
    )
    found = refined.predicate or predicate
    sig = measure_problem(
        db,
        key="",
        predicate=found,
        signal=firing.signal,
        start=hour_start(firing.start_hour),
        onset_range=(hour_start(firing.onset_range[0]), hour_start(firing.onset_range[1])),
        end=None,
        signals=context.signals,
        statistic=firing.statistic,
        p_value=context.p_value(firing.statistic),
        params=params,
    )
    if sig is None:
        return None
    primary = next(s for s in sig.symptoms if s.signal == sig.signal)
    if not primary.elevated or sig.excess_requests < params.min_excess:
        return None
    return found, sig


def _measure(
    db: Database, p: Problem, context: Context, params: WatchParams, *, end: datetime | None
) -> Signature | None:
    sig = measure_problem(
        db,
        key=p.key,
        predicate=p.predicate,
        signal=p.signal,
        start=hour_start(p.onset_hour),
        onset_range=(hour_start(p.onset_range[0]), hour_start(p.onset_range[1])),
        end=end,
        signals=context.signals,
        statistic=float(p.signature.get("log_likelihood_ratio") or 0.0),
        p_value=float(p.signature.get("p_value") or 1.0),
        params=params,
    )
    return sig


def _resolution(db: Database, p: Problem, now: datetime, params: WatchParams) -> datetime | None:
    """When ``p`` is shown over: the start of its quiet hours, else None (see the module)."""
    quiet_since = now - timedelta(hours=params.resolve_hours)
    if hour_start(p.onset_hour) >= quiet_since:
        return None
    empty_since = now - timedelta(hours=QUIET_HOURS)
    frame = queries.slice_counts(
        db,
        p.predicate,
        (empty_since, None),
        [p.signal],
        use_cubes=False,
        since=empty_since,
    )
    window = frame.filter(frame["period"] == 1)
    if int(window["requests"].sum()) == 0 and hour_start(p.onset_hour) < empty_since:
        return empty_since
    n, k = _counts_since(db, p, quiet_since)
    if n == 0:
        return None
    rate0 = _baseline_rate(p)
    _, high = stats.wilson_interval([k], [n], alpha=params.alpha)
    low_inside = _problem_rate_low(p)
    if k / n < params.min_ratio * rate0 and float(high[0]) < low_inside:
        return quiet_since
    return None


def _counts_since(db: Database, p: Problem, since: datetime) -> tuple[int, int]:
    """(n, k) of ``p``'s signal in its slice from ``since`` on (a time-pruned read)."""
    frame = queries.slice_counts(
        db, p.predicate, (since, None), [p.signal], use_cubes=False, since=since
    )
    inside = frame.filter(frame["period"] == 1)
    for f in [c for c in frame.columns if c.startswith("c")]:
        inside = inside.filter(inside[f])
    return int(inside[f"n__{p.signal}"].sum()), int(inside[f"k__{p.signal}"].sum())


def _baseline_rate(p: Problem) -> float:
    n0, k0 = p.baseline
    return max(k0 / n0 if n0 else 0.0, 0.5 / (n0 + 1))


def _back(db: Database, p: Problem, now: datetime, params: WatchParams) -> bool:
    """Whether resolved ``p`` is back: its rate since its end shown to be ``min_ratio`` x baseline.

    Shown: the lower end of the 95% Wilson interval.
    """
    if p.ended_hour is None:
        return True
    n, k = _counts_since(db, p, min(hour_start(p.ended_hour), now))
    if n == 0:
        return False
    low, _ = stats.wilson_interval([k], [n], alpha=params.alpha)
    return float(low[0]) >= params.min_ratio * _baseline_rate(p)


def _problem_rate_low(p: Problem) -> float:
    """The lower end of the 95% interval of ``p``'s rate while it was alerted (0 if unknown)."""
    symptom = p.signature.get("symptoms", {}).get(p.signal, {})
    interval = symptom.get("ci_inside") or [0.0, 0.0]
    return float(interval[0])


def undelivered(db: Database, sinks: Sequence[str]) -> list[tuple[str, Alert]]:
    """(sink, alert) pairs still to deliver, oldest first."""
    if DELIVERIES not in db.tables() or not sinks:
        return []
    rows = db.execute(
        f'SELECT d.sink, a.id, a.problem, a.seq, a.kind, a."at", a.payload FROM {DELIVERIES} d '
        f"JOIN {ALERTS} a ON a.id = d.alert_id WHERE d.delivered_at IS NULL "
        "AND list_contains($sinks, d.sink) ORDER BY a.created_at, a.problem, a.seq",
        {"sinks": list(sinks)},
    )
    out = []
    for sink, aid, problem, seq, kind, at, payload in rows:
        signature = json.loads(payload)["signature"]
        out.append((sink, Alert(aid, problem, int(seq), kind, at.astimezone(UTC), signature)))
    return out


def mark_delivered(db: Database, results: Sequence[tuple[str, str, str | None]]) -> None:
    """Record delivery attempts: (sink, alert id, error or None when delivered)."""
    for sink, aid, error in results:
        db.execute(
            f"UPDATE {DELIVERIES} SET attempts = attempts + 1, last_error = $e, "
            "delivered_at = CASE WHEN $e IS NULL THEN now() ELSE delivered_at END "
            "WHERE alert_id = $id AND sink = $sink",
            {"e": error, "id": aid, "sink": sink},
        )


def alert_rows(db: Database) -> pl.DataFrame:
    """Every alert the watch raised, newest first, one row each (empty when none).

    Columns: ``id, problem, seq, kind, at`` (the newest data it had seen),
    ``signal, where`` (the predicate as text), ``start, end`` (the signature's
    window, ISO), ``excess_requests`` and ``delivered`` (the sinks it reached,
    comma-separated).
    """
    from forensics.signature import describe_predicate

    schema = pl.Schema(
        {
            "id": pl.String(),
            "problem": pl.String(),
            "seq": pl.Int64(),
            "kind": pl.String(),
            "at": pl.Datetime("us", "UTC"),
            "signal": pl.String(),
            "where": pl.String(),
            "start": pl.String(),
            "end": pl.String(),
            "excess_requests": pl.Float64(),
            "delivered": pl.String(),
        }
    )
    if ALERTS not in db.tables():
        return pl.DataFrame(schema=schema)
    joined = DELIVERIES in db.tables()
    delivered = (
        f"(SELECT string_agg(d.sink, ', ' ORDER BY d.sink) FROM {DELIVERIES} d "
        "WHERE d.alert_id = a.id AND d.delivered_at IS NOT NULL)"
        if joined
        else "NULL"
    )
    rows = db.execute(
        f'SELECT a.id, a.problem, a.seq, a.kind, a."at", a.payload, {delivered} FROM {ALERTS} a '
        'ORDER BY a."at" DESC, a.problem, a.seq DESC'
    )
    records = []
    for aid, problem, seq, kind, at, payload, sinks in rows:
        sig = json.loads(payload)["signature"]
        records.append(
            {
                "id": aid,
                "problem": problem,
                "seq": int(seq),
                "kind": kind,
                "at": at.astimezone(UTC),
                "signal": sig.get("signal"),
                "where": describe_predicate(sig.get("predicate") or {}),
                "start": sig.get("start"),
                "end": sig.get("end"),
                "excess_requests": float(sig.get("excess_requests") or 0.0),
                "delivered": sinks,
            }
        )
    return pl.DataFrame(records, schema=schema)
