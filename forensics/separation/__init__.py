"""Signature separation: find each distinct problem hidden in overlapping symptoms.

``find_signatures`` searches every signal (but ``degraded``, their union) over
every dimension the data has, on a temporary workspace
(``workspace.create``), in five steps:

1. **Baseline** (``baseline``, ``model.fit_model``). Each request's expected
   probability of the signal comes from a multiplicative main-effects model
   over the dimensions whose effect is significant and stable in time (a
   difference that comes and goes is what the search looks for, not what the
   baseline should absorb), with factors estimated robustly over time blocks
   and without the windows that stand out strongly; counts are scaled by a
   robust dispersion estimate (quasi-Poisson). A traffic-mix shift changes the
   expected counts along with the observed ones and does not look like a
   problem.
2. **Scan** (``statistic``). For every value of every dimension, and for all
   requests, the series of observed and expected counts is scanned over every
   window (days; hours for data shorter than a week; finer steps for data of a
   few hours at a finer grain, ``grain.search_step``). The statistic compares
   the count inside a window with the expectation times the slice's own level
   outside it, a level held to the model when the slice has little history
   (so traffic that only exists in the window, misrouted requests say, is
   measured against the model, and a slice that is always a bit worse is not
   a problem). The strongest (slice, window) pairs seed the search.
3. **Minimal predicate** (``search``, ``moves``). A local search over (predicate, window)
   adds, replaces, swaps or drops one condition at a time, maximising the
   statistic minus the predicate's description cost (which dimension, which
   of its values or which range of fine power-of-two buckets), so that a
   condition stays only if it earns more than the freedom it adds. Two rules
   come before the statistic: values that peak in another window are a
   separate problem and are set apart, and values that are clearly not hit,
   when they weigh, are left out; a restriction may never leave out values
   that are hit themselves.
4. **Evidence** (``evidence``). The window is placed to the database's grain
   (the hour, or the minute for minute-dense data: ``forensics.grain``) with profile
   ranges for onset and end; every signal's rate inside is compared with a
   baseline (the same slice outside the window, or, for traffic that only
   exists in it, the rest of a wider slice), with Wilson intervals and score
   tests; the excess rate gets a Newcombe interval; requests, users and the
   nearest change events are counted. A signature needs a p-value below
   ``false_alarm``: Bonferroni over the windows, the signals and the
   predicates of its shape, calibrated on the search's maximum over bug-free
   data (``calibration``), so that it holds after the search; and odds
   ``min_ratio`` times the baseline's (the rate, for a rare symptom) and
   ``min_excess`` requests above it.
5. **Explain away.** A signature's rows are set aside for every signal it
   raises and the search repeats until nothing significant remains, so a
   problem is never reported twice under a wider or narrower name.
6. **One problem, one signature** (``merge``). A signature whose windows and
   rows mostly coincide with another's is the same problem found again on
   another signal: the one covering more requests stays.
7. **Own symptoms** (``symptoms``). Every signature's symptoms are measured
   again with the rows of the other signatures that own a signal left out, so
   a symptom borrowed from an overlapping problem is not listed.

Finally, one binomial GLM per signal (statsmodels) estimates the odds ratio of
each signature jointly with the others and the baseline's main effects.

Ideas borrowed, code our own: Kulldorff's space-time scan statistic,
multi-dimensional root-cause search (Adtributor, HotSpot, Squeeze, RiskLoc:
search over attribute combinations, explanatory power, minimal descriptions),
and "what is different about the bad requests".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from threadpoolctl import threadpool_limits

from forensics import queries
from forensics.db import Database
from forensics.errors import QueryError, UnknownNameError
from forensics.grain import grain_us, search_step
from forensics.queries.engine import Engine
from forensics.schema import quote_identifier
from forensics.separation import workspace
from forensics.separation.evidence import evidence, joint_effects, tick_of
from forensics.separation.merge import duplicates
from forensics.separation.model import fit_model
from forensics.separation.moves.seed import seeds as seeds_of
from forensics.separation.params import SeparationParams
from forensics.separation.predicate import Candidate, Space
from forensics.separation.search import Search
from forensics.separation.series import SeriesStore
from forensics.separation.statistic import Scanner
from forensics.separation.symptoms import Cover, disentangle
from forensics.signature import Signature

__all__ = ["SeparationParams", "find_signatures"]


def find_signatures(
    db: Database,
    *,
    signals: Sequence[str] | None = None,
    params: SeparationParams | None = None,
    progress: Callable[[str], None] | None = None,
    grain: str | None = None,
    everything: Engine | None = None,
) -> list[Signature]:
    """Find the distinct problems in the requests: slice, window, symptoms, confidence.

    Parameters
    ----------
    signals
        Signals to search (default: every signal but ``degraded``, which is
        their union).
    params
        Thresholds of the search.
    progress
        Called with a short message at each step (the CLI prints them).
    grain
        The finest time grain windows are placed to (``"minute"``, ``"5m"``, ``"hour"``...);
        default: the database's (``queries.data_grain``, chosen from the timestamps).
        A grain finer than the timestamps' own grid is refused.
    everything
        Where every request is, when ``db`` holds a sample of them (the cache
        of a Spark table, ``forensics.spark``): each signature's final counts
        (its slice inside and outside its window, its requests and users) are
        read there; the search itself runs on ``db``.

    Returns
    -------
    list[Signature]
        In order of discovery, strongest first.
    """
    params = params or SeparationParams()
    say = progress or (lambda _m: None)
    names = queries.signal_names(db)
    available = [s for s in names if s != "degraded"]
    chosen = list(signals) if signals is not None else available
    for s in chosen:
        if s not in names:
            raise UnknownNameError.for_name("signal", s, names)
    if "requests" not in db.tables() or not db.scalar("SELECT count(*) FROM requests"):
        raise QueryError("the database holds no requests yet; run `forensics ingest FILE` first")
    # Every array the search handles is small: BLAS threads only contend with DuckDB's
    # (and each other's spinning) for the cores, tens of times slower under load.
    tick = queries.checked_grain(db, grain) if grain is not None else queries.data_grain(db)
    with threadpool_limits(limits=1, user_api="blas"):
        return _find(db, params, chosen, available, say, tick, everything)


def _find(
    db: Database,
    params: SeparationParams,
    chosen: Sequence[str],
    available: Sequence[str],
    say: Callable[[str], None],
    grain: str = "hour",
    everything: Engine | None = None,
) -> list[Signature]:
    clock = time.perf_counter()
    search = _prepare(db, params, available, grain)
    search.everything = everything
    unit = "counted rows" if queries.count_column(db) is not None else "requests"
    sampled = (
        f"a sample of {search.rows:,} of {search.total_rows:,} {unit}"
        if search.rows < search.total_rows
        else f"{search.rows:,} {unit}"
    )
    say(
        f"workspace ready: {sampled}, {len(search.space.dims)} dimensions, "
        f"windows to the {grain}, "
        f"baseline models fitted in {time.perf_counter() - clock:.1f} s"
    )
    try:
        found = _search(search, chosen, available, say)
        if len(found) > 1:
            cover = Cover.read(db, found, available)
            _, data_end = queries.time_range(db)
            kept = duplicates(cover, found, data_end or found[-1].start)
            if len(kept) < len(found):
                say(f"{len(found) - len(kept)} signature(s) repeated another and were merged")
            found = _renumbered([found[i] for i in kept])
            found = disentangle(cover.keep(kept), found, available, params)
        return joint_effects(search, found)
    finally:
        workspace.drop(db)


def _prepare(
    db: Database, params: SeparationParams, signals: Sequence[str], grain: str = "hour"
) -> Search:
    dims = {d.name: d for d in queries.dimensions(db)}
    edges: dict[str, tuple[float, ...]] = {}
    ranged = [d.name for d in dims.values() if d.kind == "numeric" and not d.by_value]
    # Requests, not rows: on counted rows the sample thins the counts (workspace.create).
    total = queries.requests_and_users(db, queries.Where())[0]
    if ranged:
        items = ", ".join(f"min({_q(c)}), max({_q(c)})" for c in ranged)
        bounds = db.execute(f"SELECT {items} FROM requests")[0]
    for d in dims.values():
        if d.kind != "numeric":
            continue
        if d.by_value:
            edges[d.name] = d.edges
        else:
            i = ranged.index(d.name)
            lo, hi = bounds[2 * i], bounds[2 * i + 1]
            edges[d.name] = queries.power_of_two_edges(
                float(lo), float(hi), max_buckets=params.search_buckets
            )
    fraction = min(1.0, params.search_rows / total) if total else 1.0
    tick_us = grain_us(grain)
    rows = workspace.create(
        db, dims=list(dims.values()), edges=edges, signals=signals, fraction=fraction,
        tick_us=tick_us,
    )  # fmt: skip
    first_ts, end_ts = queries.time_range(db)
    if first_ts is None or end_ts is None or rows == 0:
        raise QueryError("the database holds no requests yet; run `forensics ingest FILE` first")
    first_tick, last_tick = tick_of(first_ts, tick_us), tick_of(end_ts, tick_us) - 1
    hours = search_step(grain, first_tick, last_tick)  # ticks per searched bucket
    first = first_tick // hours
    buckets = last_tick // hours - first + 1
    space = Space(dims=dims, edges=edges)
    search = Search(
        db=db,
        params=params,
        space=space,
        signals=list(signals),
        hours=hours,
        first=first,
        buckets=buckets,
        scanner=Scanner(buckets, params),
        store=SeriesStore(
            db=db,
            space=space,
            columns=workspace.columns(db),
            first=first,
            buckets=buckets,
            hours=hours,
        ),
        rows=rows,
        total_rows=total,
        tick_us=tick_us,
    )
    for s in signals:
        fit_model(search, s)
    return search


def _q(name: str) -> str:
    return quote_identifier(name)


def _search(
    search: Search, chosen: Sequence[str], signals: Sequence[str], say: Callable[[str], None]
) -> list[Signature]:
    params = search.params
    found: list[Signature] = []
    seeds: dict[str, list[Candidate]] = {}
    while len(found) < params.max_signatures:
        for s in chosen:
            if s not in seeds:
                seeds[s] = seeds_of(search, s)
        pool = sorted(
            (c for s in chosen for c in seeds[s] if _key(search, c) not in search.tried),
            key=lambda c: -c.llr,
        )
        accepted = None
        attempts: dict[str, int] = {}
        for seed in pool:
            if attempts.get(seed.signal, 0) >= params.seeds_per_signal:
                continue
            attempts[seed.signal] = attempts.get(seed.signal, 0) + 1
            search.tried.add(_key(search, seed))
            cand = search.refine(seed)
            search.tried.add(_key(search, cand))
            sig = evidence(search, cand, signals, len(found) + 1)
            if sig is not None:
                accepted = (cand, sig)
                break
        if accepted is None:
            break
        cand, sig = accepted
        say(f"{sig.id}: {sig.describe()}")
        found.append(sig)
        explained = sorted({cand.signal, *sig.signals} & set(signals))
        start_h = tick_of(sig.start, search.tick_us)
        end_h = None if sig.end is None else tick_of(sig.end, search.tick_us)
        search.explain(explained, cand.predicate, start_h, end_h)
        for s in explained:
            seeds.pop(s, None)
    return found


def _renumbered(found: Sequence[Signature]) -> list[Signature]:
    """The signatures with ids S1, S2... in their order."""
    return [
        sig if sig.id == f"S{i}" else replace(sig, id=f"S{i}") for i, sig in enumerate(found, 1)
    ]


def _key(search: Search, c: Candidate) -> tuple[str, str]:
    return (c.signal, search.space.state(c.predicate))
