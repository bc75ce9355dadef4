"""What each value of a dimension is to a problem: hit, spared, apart, or unknown.

Several moves ask the same questions of one dimension's series (one row per
value) at a candidate's window: which values rise significantly (AFFECTED),
which form a separate problem in another window (CONFLICT), which are clearly
spared (UNAFFECTED), which have too little data (AMBIGUOUS) or no live traffic
(EMPTY); which conditions on the dimension are worth trying; and whether a
restriction would leave out values that are hit too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats as scipy_stats

from forensics.separation.predicate import Condition, Predicate
from forensics.separation.statistic import Series, Window, span

if TYPE_CHECKING:
    from forensics.separation.search import Search

__all__ = [
    "AFFECTED",
    "AMBIGUOUS",
    "CONFLICT",
    "EMPTY",
    "NEW_BEFORE_SHARE",
    "SPLIT_MIN_EVENTS",
    "UNAFFECTED",
    "UNAFFECTED_FRACTION",
    "UNAFFECTED_SHARE",
    "WINDOW_MIN_SHIFT",
    "conflicts",
    "evaluate",
    "isolated",
    "keep",
    "leaves_out_a_hit",
    "must_keep",
    "new_values",
    "options",
    "roles",
]

SPLIT_MIN_EVENTS = 3.0
"""Excess events a value needs outside a problem's window to be a problem of its own."""

WINDOW_MIN_SHIFT = 2
"""Buckets (days, or hours for short data) by which windows must differ to be apart."""

UNAFFECTED_FRACTION = 0.25
"""A value is unaffected only if its excess rate is under this share of the affected
values' (a value hit half as hard is still hit)."""

UNAFFECTED_SHARE = 0.1
"""A dimension whose clearly unaffected values hold this share of a slice's requests in
its window must be restricted (see ``moves.exclude``)."""

NEW_BEFORE_SHARE = 0.25
"""A value new with a window has fewer requests before it than this share of those in it."""

AFFECTED, UNAFFECTED, AMBIGUOUS, CONFLICT, EMPTY = 1, 2, 3, 4, 5
"""Roles of a dimension's values in a problem (see ``roles``)."""


def roles(
    search: Search, context: Predicate, name: str, values: list[Any], s: Series, window: Window
) -> np.ndarray:
    """What each value of a dimension is to the problem at ``window``.

    AFFECTED: its rate rises significantly in the window (Bonferroni over the
    values). CONFLICT: it is a separate problem in another window (see
    ``conflicts``). UNAFFECTED: not affected, its count in the window is
    significantly below its expectation plus the affected values' excess rate
    per request (an absolute rate: a bug corrupts a share of requests), and its
    own excess is under ``UNAFFECTED_FRACTION`` of that.
    AMBIGUOUS: too little data to tell. EMPTY: no live traffic in the window
    (none at all, or all explained by signatures found already). Tests are
    Bonferroni-corrected over the values and the dimensions (every dimension is
    checked at every step).
    """
    at = search.scanner.at(s, window)
    out = np.full(len(values), AMBIGUOUS, dtype=np.int8)
    affected = search.significant(at, len(values))
    out[affected] = AFFECTED
    out[conflicts(search, context, name, values, s, window)] = CONFLICT
    hit = np.flatnonzero(out == AFFECTED)
    if hit.size == 0:
        return out
    inside = slice(window.start, window.stop)
    o_in, e_in, n_in = (
        s.o[:, inside].sum(axis=1),
        s.e[:, inside].sum(axis=1),
        s.n[:, inside].sum(axis=1),
    )
    excess = max((o_in[hit].sum() - e_in[hit].sum()) / max(n_in[hit].sum(), 1.0), 0.0)
    mean = e_in + excess * n_in
    level = search.params.alpha / (len(values) * len(search.space.dims))
    below = scipy_stats.poisson.cdf(o_in, np.maximum(mean, 1e-12)) < level
    small = (o_in - e_in) < UNAFFECTED_FRACTION * excess * n_in
    out[(out == AMBIGUOUS) & below & small & (n_in > 0)] = UNAFFECTED
    out[(out == AMBIGUOUS) & (n_in == 0)] = EMPTY
    return out


def conflicts(
    search: Search, predicate: Predicate, name: str, values: list[Any], s: Series, window: Window
) -> np.ndarray:
    """Values of a categorical dimension that form a separate problem in another window.

    A value's own best window (trimmed to its traffic) must differ from
    ``window`` by at least ``WINDOW_MIN_SHIFT`` buckets at one end, and the value
    must behave differently from the dimension's other values there: affected
    where they are not (its count in its own window but outside ``window`` is
    significantly above its expectation plus their excess rate, by at least
    ``SPLIT_MIN_EVENTS``), or not affected where they are (its count in
    ``window`` but outside its own is significantly below its expectation plus
    their excess rate), each by a material share of the rate. Comparing with
    the other values, not with the model alone, keeps noise that all values
    share (a detector's occasional false alarm) from splitting a problem. Tests
    are Bonferroni-corrected over the values, and for excess outside ``window``
    also over the extensions of ``window`` it could have been found in (a few
    stray events would otherwise make a new problem).
    """
    none = np.zeros(len(values), dtype=bool)
    if search.space.is_numeric(name) or len(values) < 2:
        return none
    starts, stops, own = search.scanner.best(s)
    # An excess outside ``window`` is an extension of it at one end: 2T candidates.
    level = search.params.alpha / (len(values) * 2 * search.buckets)
    gap_level = search.params.alpha / (len(values) * len(search.space.dims))
    whole = s.total()
    affected = search.significant(search.scanner.at(s, window), len(values))
    out = none.copy()
    for i in (int(x) for x in np.flatnonzero(search.significant(own, len(values)))):
        a, b = int(starts[i]), int(stops[i])
        if abs(a - window.start) < WINDOW_MIN_SHIFT and abs(b - window.stop) < WINDOW_MIN_SHIFT:
            continue
        o, e, n = span(s, i, a, b)
        rate = (o - e) / max(n, 1.0)
        if rate <= 0:
            continue
        extra = [(a, min(b, window.start)), (max(a, window.stop), b)]
        gap = [(window.start, min(window.stop, a)), (max(window.start, b), window.stop)]
        # Where the value may be hit when the others are not, compare it with all of
        # them; where it may be spared while they are hit, with those hit in ``window``.
        peers = [int(r) for r in np.flatnonzero(affected) if r != i]
        hit = s.total(peers) if peers else None
        for lo, hi, affected_here in [(*x, True) for x in extra] + [(*x, False) for x in gap]:
            ov, ev, nv = span(s, i, lo, hi)
            if affected_here or hit is None:
                ot, et, nt = span(whole, 0, lo, hi)
                o_r, e_r, n_r = ot - ov, et - ev, nt - nv
            else:
                o_r, e_r, n_r = span(hit, 0, lo, hi)
            if nv == 0 or n_r == 0:
                continue
            rest_rate = max((o_r - e_r) / n_r, 0.0)
            mean = ev + rest_rate * nv
            if affected_here:
                material = (ov - ev) / nv >= UNAFFECTED_FRACTION * rate and (
                    ov - mean >= SPLIT_MIN_EVENTS
                )
                odd = scipy_stats.poisson.sf(ov - 1, max(mean, 1e-12)) < level
            else:
                material = (ov - ev) / nv < UNAFFECTED_FRACTION * rest_rate
                odd = scipy_stats.poisson.cdf(ov, max(mean, 1e-12)) < gap_level
            if material and odd:
                out[i] = True
    return none if out.all() else out


def must_keep(
    search: Search, others: Predicate, name: str, values: list[Any], s: Series, window: Window
) -> bool:
    """Whether dropping the condition on ``name`` is not allowed.

    It is not when that would merge another problem (see ``conflicts``), let
    in a weighty share of unaffected requests (see ``moves.exclude``), or let in
    the values with a past beside new ones that alone are hit (``isolated``).
    """
    if conflicts(search, others, name, values, s, window).any():
        return True
    if isolated(search, others, name, values, s, window) is not None:
        return True
    found = roles(search, others, name, values, s, window)
    n_in = s.n[:, window.start : window.stop].sum(axis=1)
    total = float(n_in.sum())
    return bool(total and n_in[found == UNAFFECTED].sum() / total >= UNAFFECTED_SHARE)


def keep(
    search: Search,
    name: str,
    values: list[Any],
    found: np.ndarray,
    s: Series,
    window: Window,
) -> Condition | None:
    """The condition holding the affected values and, where they fit, the ambiguous ones.

    Categorical: affected and ambiguous values (not the empty ones: a value whose
    requests in the window are all explained already belongs to another
    signature), except that a value without history (``new_values``) is never
    padded with ambiguous values that have some: the scan statistic holds a new
    value to the model, its siblings' level, but a slice mixing it with values
    measured against their own past would credit the new value's excess as a
    rise of the whole, so the padded slice would win for the padding alone.
    Numeric: the range of affected buckets, widened over ambiguous and empty
    neighbours.
    """
    if not search.space.is_numeric(name):
        new = new_values(s, window)
        hit = found == AFFECTED
        pad = (found == AMBIGUOUS) & (new if (hit & new).any() else True)
        chosen = [v for v, h, p in zip(values, hit, pad, strict=True) if h or p]
        if not chosen or len(chosen) == len(values):
            return None
        return Condition(values=frozenset(chosen))
    edges = search.space.edges[name]
    role_of = {
        edges.index(float(v)): r for v, r in zip(values, found, strict=True) if v is not None
    }
    hits = [b for b, r in role_of.items() if r == AFFECTED]
    if not hits:
        return None
    lo, hi = min(hits), max(hits)
    while lo > 0 and role_of.get(lo - 1, EMPTY) in (AMBIGUOUS, EMPTY):
        lo -= 1
    while hi < len(edges) - 1 and role_of.get(hi + 1, EMPTY) in (AMBIGUOUS, EMPTY):
        hi += 1
    if lo == 0 and hi == len(edges) - 1:
        return None
    return Condition(low=lo, high=hi)


def new_values(s: Series, window: Window) -> np.ndarray:
    """Values whose traffic begins with ``window``.

    A value that did not exist when the data begins and whose requests before
    the window are fewer than ``NEW_BEFORE_SHARE`` of those inside it (a
    release's first days ramp up slowly, and a window placed where its excess
    is clearest may start a day or two after its first request). The scan
    statistic holds such a value to the model (its siblings' level), having no
    past of its own to be measured against.
    """
    busy = s.n > 0
    first = np.where(busy.any(axis=1), np.argmax(busy, axis=1), s.n.shape[1])
    before = s.n[:, : window.start].sum(axis=1)
    inside = s.n[:, window.start : window.stop].sum(axis=1)
    return np.asarray((first > 0) & (before < NEW_BEFORE_SHARE * inside))


def isolated(
    search: Search,
    context: Predicate,
    name: str,
    names: list[Any],
    s: Series,
    window: Window,
) -> np.ndarray | None:
    """Rows of the new values a dimension's rise comes from, or None.

    Every value hit (``AFFECTED``) has its traffic begin with the window
    (``new_values``); some value with a past has traffic in the window;
    and the values with a past show no significant rise there together.
    """
    if search.space.is_numeric(name) or len(names) < 2:
        return None
    found = roles(search, context, name, names, s, window)
    hit = found == AFFECTED
    new = new_values(s, window)
    if not hit.any() or (hit & ~new).any():
        return None
    old = ~new & (s.n[:, window.start : window.stop].sum(axis=1) > 0)
    if not old.any():
        return None
    rest = search.scanner.at(s.total(np.flatnonzero(old)), window)
    if search.significant(float(rest[0]), len(names)):
        return None
    return np.flatnonzero(new & ((found == AFFECTED) | (found == AMBIGUOUS)))


def leaves_out_a_hit(
    search: Search, name: str, values: list[Any], s: Series, cond: Condition, window: Window
) -> bool:
    """Whether a restriction to ``cond`` would leave out requests that are hit too.

    The values it leaves out must not, together, show a significant rise of
    their own in ``window``: concentrating a problem in its worst part (large
    batches when small ones are hit less) would describe it wrongly, however
    much the statistic likes the concentration. A rise they show at another
    time is another matter (``conflicts`` sets such values apart).
    """
    kept = set(search.space.rows(name, values, cond))
    rest = [r for r in range(len(values)) if r not in kept]
    if not rest:
        return False
    llr = search.scanner.at(s.total(rest), window)
    return bool(search.significant(float(llr[0]), len(values)))


def options(
    search: Search, context: Predicate, name: str, values: list[Any], s: Series, window: Window
) -> list[tuple[Condition, Window, float]]:
    """Conditions on one dimension worth trying, each at its own best window.

    Categorical: the affected values, and the affected with the ambiguous.
    Numeric: the smallest range of buckets holding the affected ones, widened
    over neighbouring ambiguous buckets (so a range reaches the data's edge
    unless the data say otherwise).
    """
    found = roles(search, context, name, values, s, window)
    if not (found == AFFECTED).any():
        return []
    conditions = []
    wide = keep(search, name, values, found, s, window)
    if wide is not None:
        conditions.append(wide)
    if not search.space.is_numeric(name):
        narrow = frozenset(v for v, r in zip(values, found, strict=True) if r == AFFECTED)
        if len(narrow) < len(values) and (wide is None or narrow != wide.values):
            conditions.append(Condition(values=narrow))
    return evaluate(
        search, [(cond, search.space.rows(name, values, cond)) for cond in conditions], s
    )


def evaluate(
    search: Search, choices: list[tuple[Condition, list[int]]], s: Series
) -> list[tuple[Condition, Window, float]]:
    """Each condition (with the series rows it keeps) at its own best window, and its statistic."""
    if not choices:
        return []
    sums = Series(
        np.vstack([s.o[r].sum(axis=0) for _, r in choices]),
        np.vstack([s.e[r].sum(axis=0) for _, r in choices]),
        np.vstack([s.n[r].sum(axis=0) for _, r in choices]),
    )
    starts, stops, llr = search.scanner.best(sums)
    return [
        (cond, Window(int(a), int(b)), float(v))
        for (cond, _), a, b, v in zip(choices, starts, stops, llr, strict=True)
    ]
