"""The baseline model of a signal: choose its dimensions, fit it robustly, store expectations.

``fit_model`` writes each workspace row's expected probability of a signal
(``workspace.expected_column``) and the signal's dispersion, from the pieces in
``baseline``: a multiplicative main-effects model over the dimensions whose
effect is significant and stable in time, fitted once on every live row and
again without the long single-value windows that then stand out.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import polars as pl
from scipy import stats as scipy_stats

from forensics.separation import baseline, workspace
from forensics.separation.baseline import MODEL_BLOCKS, MODEL_MIN_PRESENCE, MODEL_P
from forensics.separation.moves.seed import seeds
from forensics.separation.series import Extra

if TYPE_CHECKING:
    from forensics.separation.search import Search

__all__ = ["MASK_MAX_SHARE", "MASK_SEEDS", "fit_model"]

MASK_SEEDS = 12
"""Strongest single-value windows considered for leaving out of the baseline fit."""

MASK_MAX_SHARE = 0.75
"""Windows longer than this share of the data are not left out of the baseline fit."""


def fit_model(search: Search, signal: str) -> None:
    """Fit the baseline model of ``signal`` on quiet live rows and store expectations.

    Fitted once on every live row; the single-value windows that then stand
    out, significant over the whole seed search and shorter than
    ``MASK_MAX_SHARE`` of the data (longer ones are how a slice always is, not
    a problem), are set aside and the model is fitted again without them, so
    that a long problem does not teach the baseline to expect itself. Only
    those: leaving out a chance excursion would fit the baseline to the rest
    and make the excursion look real. Shorter problems are handled by the
    robust factors (see ``baseline.main_effects``).
    """
    _fit(search, signal, "true", {})
    masks = _masks(search, signal)
    if masks is not None:
        # The same dimensions, their factors measured without the windows set aside:
        # which dimensions move the rate is a question for all the data (what is left
        # after masking holds too few rows per time block to show it).
        _fit(search, signal, *masks, dims=search.model_dims[signal])


def _masks(search: Search, signal: str) -> Extra:
    """The condition leaving out the windows that stand out (see ``fit_model``)."""
    space = search.space
    slices = 1 + sum(
        len(space.edges[n]) if d.kind == "numeric" else d.cardinality + 1
        for n, d in space.dims.items()
    )
    masks = [
        c
        for c in seeds(search, signal)[:MASK_SEEDS]
        if c.predicate
        and search.significant(c.llr, slices)
        and c.window.stop - c.window.start <= MASK_MAX_SHARE * search.buckets
    ]
    if not masks:
        return None
    params: dict[str, Any] = {}
    parts = []
    for i, c in enumerate(masks):
        condition, found = search.store.condition(c.predicate, c.window)
        parts.append(f"({renamed(condition, found, f'm{i}_', params)})")
    return f"NOT ({' OR '.join(parts)})", params


def _fit(
    search: Search,
    signal: str,
    condition: str,
    params: dict[str, Any],
    *,
    dims: list[str] | None = None,
) -> None:
    """Choose the model's dimensions on live rows matching ``condition``, fit, store.

    With ``dims``, those are the model's dimensions and only the fit is done.

    A dimension enters when its values' rates differ (G test, p < MODEL_P) and
    the differences are stable over time: they show in most time blocks
    (``MODEL_MIN_PRESENCE``), or their interaction with time blocks is not
    significant. A difference that comes and goes is what the search looks
    for, not what the baseline should absorb.
    """
    space = search.space
    levels = {
        name: (len(space.edges[name]) if d.kind == "numeric" else d.cardinality)
        for name, d in space.dims.items()
    }
    candidates = (
        list(dims)
        if dims is not None
        else [n for n, v in levels.items() if 1 < v <= search.params.model_max_levels]
    )
    block_hours = max(search.buckets * search.hours // MODEL_BLOCKS, 1)  # in ticks
    margins = workspace.margins(
        search.db,
        signal=signal,
        dims=candidates,
        block_hours=block_hours,
        condition=condition,
        params=params,
    )
    chosen = list(dims) if dims is not None else _choose(search, margins, candidates)
    if dims is not None and signal in search.model_transient:
        # Which values are present only part of the time is, like the dimensions, a
        # question for all the data: with windows set aside, a value of every day
        # can look transient, and pinning it to its siblings' level breaks the fit.
        transient = search.model_transient[signal]
    else:
        blocks = margins["block"].n_unique() if margins.height else 0
        transient = {
            name: set(
                margins.filter((pl.col("dimension") == name) & (pl.col("n") > 0))
                .group_by("value")
                .agg(pl.len().alias("blocks"))
                .filter(pl.col("blocks") < MODEL_MIN_PRESENCE * blocks)["value"]
                .to_list()
            )
            for name in chosen
        }
        search.model_transient[signal] = transient
    cells = workspace.cells(
        search.db,
        signal=signal,
        dims=chosen,
        block_hours=block_hours,
        condition=condition,
        params=params,
    )
    if cells.height == 0:
        cells = pl.DataFrame({"block": [0], "n": [0], "k": [0]})
    fitted = baseline.main_effects(cells, chosen, fixed=transient)
    # Every live row gets its expectation, also those the fit left out.
    combos = (
        cells
        if condition == "true" or not chosen
        else workspace.cells(search.db, signal=signal, dims=chosen)
    )
    workspace.set_expected(
        search.db,
        signal=signal,
        dims=chosen,
        cells=fitted.predict(combos.select(chosen))
        if chosen
        else pl.DataFrame({"p": [fitted.base]}),
    )
    search.store.forget(signal)
    search.model_dims[signal] = chosen
    # The dispersion of the fitted counts: from the raw (unscaled) series.
    _, by = search.store.raw(signal, {}, list(space.dims), (condition, params))
    search.store.dispersion[signal] = baseline.dispersion([s for _, s in by.values()])


def _choose(search: Search, margins: pl.DataFrame, candidates: list[str]) -> list[str]:
    """The dimensions whose effect is significant and persistent, strongest first."""
    swings = baseline.swings(margins)
    strength = []
    for name in candidates:
        part = margins.filter(pl.col("dimension") == name)
        main, main_df, interaction, interaction_df, presence = baseline.stability(part)
        steady = interaction_df == 0 or scipy_stats.chi2.sf(interaction, interaction_df) >= MODEL_P
        # A persistent effect stays even when it drifts: on many requests any drift
        # makes the interaction significant, and leaving out the dimension that moves
        # the rate most (max_tokens for length-limit hits) would turn every slice of it
        # into a problem.
        stable = presence >= MODEL_MIN_PRESENCE or (not swings and steady)
        if main_df > 0 and scipy_stats.chi2.sf(main, main_df) < MODEL_P and stable:
            strength.append((main, name))
    return [name for _, name in sorted(strength, reverse=True)[: search.params.model_dims]]


def renamed(condition: str, params: dict[str, Any], prefix: str, into: dict[str, Any]) -> str:
    """``condition`` with its parameters renamed ``prefix + name``, added to ``into``.

    Examples
    --------
    >>> into = {}
    >>> renamed("a = $w1 AND b = $w10", {"w1": 1, "w10": 2}, "m0_", into)
    'a = $m0_w1 AND b = $m0_w10'
    >>> into
    {'m0_w1': 1, 'm0_w10': 2}
    """
    for key, value in params.items():
        condition = re.sub(rf"\${re.escape(key)}\b", f"${prefix}{key}", condition)
        into[prefix + key] = value
    return condition
