"""What sets a selection of requests apart: every dimension, selection vs baseline.

BubbleUp's question. Given a selection (a signature's slice and window, a
brushed time window, a brushed region of the heatmap) and a baseline (by
default everything else in scope), each dimension's values are shown as two
distributions side by side: the share of the signal's true requests each value
holds in the selection and in the baseline. A value whose share jumps (a pool
that holds 80% of the bad requests in the selection and 5% in the baseline)
explains the selection; dimensions are ranked by how far their two
distributions lie apart (total variation distance), and within one, values by
how much their share rose.

Shares are of the true requests of one side, so over a dimension's values
(missing included) each side sums to 100%. Long tails (a ``server_id`` with
hundreds of values) keep their ``top`` values with the largest share on either
side and fold the rest into one "other" row.

Counts come from ``queries.counts_in_subsets``: one grouping-sets query per
source, a cube when one answers every dimension exactly, else ``requests``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from forensics import stats
from forensics.db import Database
from forensics.queries import (
    Subset,
    Where,
    bucket_label,
    check_signal,
    counts_in_subsets,
    dimensions,
    groupable_columns,
)

__all__ = ["ALPHA", "CONTRAST_COLUMNS", "TOP_VALUES", "contrast", "contrast_subsets"]

ALPHA = 0.05
"""A dimension's two distributions differ significantly when its BH-adjusted p is below this."""

TOP_VALUES = 8
"""Values kept per dimension; the rest are folded into one "other" row."""

OTHER = "other"
"""Label of the folded long tail (followed by how many values it holds)."""

CONTRAST_COLUMNS: dict[str, Any] = {
    "dimension": pl.Utf8,
    "value": pl.Utf8,
    "key": pl.Utf8,
    "k_selection": pl.Int64,
    "n_selection": pl.Int64,
    "k_baseline": pl.Int64,
    "n_baseline": pl.Int64,
    "share_selection": pl.Float64,
    "share_baseline": pl.Float64,
    "difference": pl.Float64,
    "rate_selection": pl.Float64,
    "rate_baseline": pl.Float64,
    "distance": pl.Float64,
    "p_value": pl.Float64,
    "p_adjusted": pl.Float64,
    "folded": pl.Int64,
}
"""The columns of ``contrast``'s frame and their types."""

WhereLike = Mapping[str, Any] | Where | None


def contrast_subsets(
    *,
    selection: WhereLike,
    scope: WhereLike = None,
    baseline: WhereLike = None,
    leave_out: Sequence[WhereLike] = (),
) -> tuple[Subset, Subset]:
    """The two sets of requests ``contrast`` compares.

    The selection is ``selection`` within ``scope``. The baseline is, without
    ``baseline``, everything else in ``scope``; with it, the requests it
    selects (it is not cut to ``scope``: a baseline a week earlier lies outside
    the date range). Either way the rows of ``leave_out`` (other signatures, an
    already bad period) are not in the baseline.

    Examples
    --------
    >>> sel, base = contrast_subsets(selection={"model": "a"}, leave_out=[{"region": "eu"}])
    >>> len(sel.within), len(base.without)
    (2, 2)
    """
    chosen = Where.parse(selection)
    within = Where.parse(scope)
    left_out = tuple(Where.parse(w) for w in leave_out)
    if baseline is None:
        base = Subset(within=(within,), without=(chosen, *left_out))
    else:
        base = Subset(within=(Where.parse(baseline),), without=left_out)
    return Subset(within=(within, chosen)), base


def contrast(
    db: Database,
    signal: str = "degraded",
    *,
    selection: WhereLike,
    scope: WhereLike = None,
    baseline: WhereLike = None,
    leave_out: Sequence[WhereLike] = (),
    dims: Sequence[str] | None = None,
    top: int = TOP_VALUES,
) -> pl.DataFrame:
    """Each dimension's values: share of the signal's true requests, selection vs baseline.

    Parameters
    ----------
    selection
        The requests selected (filter form of ``Where``).
    scope
        Where both sides live (the filters and date range); default all requests.
    baseline
        The requests to compare with; default everything else in ``scope``.
    leave_out
        Rows kept out of the baseline, e.g. other signatures' ``sig.where``.
    dims
        Dimensions (default every one, high-cardinality ones too, read from the
        raw rows when no cube holds them); outcomes named here are compared too.
    top
        Values kept per dimension, the rest folded into "other (N values)".

    Returns
    -------
    pl.DataFrame
        ``CONTRAST_COLUMNS``: per dimension and value, ``value`` (a label:
        numeric buckets as ranges, "(missing)", "other (N values)"), ``key``
        (the value as the filter takes it, as text: a bucket's lower edge; null
        for missing and "other"), the counts on each side (``k`` true, ``n``
        defined; ``n`` and the rates are null for a dimension no cube answers,
        of which only the true requests are read), ``share_selection`` and ``share_baseline`` (of the side's true
        requests; null when the side has none), ``difference`` (selection -
        baseline), each side's rate, ``distance`` (the dimension's total
        variation distance, 0 to 1), ``p_value`` (chi-square test that the two
        sides' true requests spread alike over its values) and ``p_adjusted``
        (Benjamini-Hochberg over the dimensions), ``folded`` (values in an
        "other" row). Dimensions with one value on both sides are left out;
        dimensions that differ significantly come first, each group by
        distance, and values by difference, descending.

    Examples
    --------
    ``contrast(wb.db, "script_mix", selection=sig.where, leave_out=[s.where for s in others])``
    """
    check_signal(db, signal)
    known = {d.name: d for d in dimensions(db)} if dims is None else groupable_columns(db, dims)
    chosen, base = contrast_subsets(
        selection=selection, scope=scope, baseline=baseline, leave_out=leave_out
    )
    if not known:
        return pl.DataFrame(schema=CONTRAST_COLUMNS)
    counts = counts_in_subsets(
        db,
        dims=list(known),
        signal=signal,
        subsets={"selection": chosen, "baseline": base},
        raw_true_only=True,
    )
    rows: list[dict[str, Any]] = []
    for name, d in known.items():
        part = counts.filter(pl.col("dimension") == name)
        if part.height == 0:
            continue
        keys = part[name].to_list()
        labels = [
            bucket_label(d.edges, v)
            if d.kind == "numeric"
            else "(missing)"
            if v is None
            else str(v)
            for v in keys
        ]
        frame = part.select(
            pl.Series("value", labels, dtype=pl.Utf8),
            pl.Series(
                "key",
                [
                    None if v is None else (f"{v:g}" if d.kind == "numeric" else str(v))
                    for v in keys
                ],
                dtype=pl.Utf8,
            ),
            pl.col("k_selection"),
            pl.col("n_selection"),
            pl.col("k_baseline"),
            pl.col("n_baseline"),
        )
        # a value without bad requests on either side has no share to show (and a
        # source that reads the bad requests only does not see it at all)
        present = frame.filter((pl.col("k_selection") > 0) | (pl.col("k_baseline") > 0))
        if present.height < 2:
            continue  # one value on both sides: it cannot set the selection apart
        rows += _one_dimension(name, present, top)
    if not rows:
        return pl.DataFrame(schema=CONTRAST_COLUMNS)
    out = pl.DataFrame(rows, schema=CONTRAST_COLUMNS, orient="row")
    # One test per dimension (do the selection's bad requests spread over its values as
    # the baseline's do?), adjusted over the dimensions: with few bad requests a
    # dimension of many values lies apart by chance, and must not rank first for it.
    tests = (
        out.group_by("dimension", maintain_order=True)
        .agg("p_value")
        .with_columns(pl.col("p_value").list.first())
    )
    adjusted = dict(
        zip(
            tests["dimension"],
            stats.fdr_bh(tests["p_value"].fill_null(float("nan")).to_numpy()),
            strict=True,
        )
    )
    out = out.with_columns(
        pl.col("dimension")
        .replace_strict(adjusted, return_dtype=pl.Float64)
        .fill_nan(None)
        .alias("p_adjusted")
    )
    significant = (pl.col("p_adjusted") < ALPHA).fill_null(False)
    return out.sort(
        [significant, "distance", "dimension", "difference"],
        descending=[True, True, False, True],
        nulls_last=True,
        maintain_order=True,
    )


def _one_dimension(name: str, frame: pl.DataFrame, top: int) -> list[dict[str, Any]]:
    """One dimension's rows: shares, the long tail folded, its distance."""
    k1, k0 = frame["k_selection"].sum(), frame["k_baseline"].sum()
    with_shares = frame.with_columns(
        (pl.col("k_selection") / k1 if k1 else pl.lit(None, pl.Float64)).alias("share_selection"),
        (pl.col("k_baseline") / k0 if k0 else pl.lit(None, pl.Float64)).alias("share_baseline"),
    )
    weight = pl.max_horizontal(
        pl.col("share_selection").fill_null(0), pl.col("share_baseline").fill_null(0)
    )
    size = pl.col("n_selection").fill_null(0) + pl.col("n_baseline").fill_null(0)
    ranked = with_shares.sort([weight, size], descending=True)
    kept, tail = ranked.head(top), ranked.slice(top)
    if tail.height == 1:  # folding one value into "other" hides it for nothing
        kept, tail = ranked, ranked.clear()
    records = [dict(r, folded=0) for r in kept.iter_rows(named=True)]
    if tail.height:
        sums: dict[str, int | None] = {
            c: None if tail[c].null_count() else int(tail[c].sum())
            for c in ("n_selection", "n_baseline")
        }
        k_selection, k_baseline = int(tail["k_selection"].sum()), int(tail["k_baseline"].sum())
        records.append(
            {
                "value": f"{OTHER} ({tail.height} values)",
                "key": None,
                "k_selection": k_selection,
                "k_baseline": k_baseline,
                **sums,
                "share_selection": k_selection / k1 if k1 else None,
                "share_baseline": k_baseline / k0 if k0 else None,
                "folded": tail.height,
            }
        )
    differences = [
        None
        if r["share_selection"] is None or r["share_baseline"] is None
        else r["share_selection"] - r["share_baseline"]
        for r in records
    ]
    known = [d for d in differences if d is not None]
    distance = 0.5 * sum(abs(d) for d in known) if known else None
    p_value = stats.homogeneity_pvalue(
        [r["k_selection"] for r in records], [r["k_baseline"] for r in records]
    )
    return [
        {
            "dimension": name,
            **{k: r[k] for k in ("value", "key", "k_selection", "n_selection")},
            "k_baseline": r["k_baseline"],
            "n_baseline": r["n_baseline"],
            "share_selection": r["share_selection"],
            "share_baseline": r["share_baseline"],
            "difference": diff,
            "rate_selection": r["k_selection"] / r["n_selection"] if r["n_selection"] else None,
            "rate_baseline": r["k_baseline"] / r["n_baseline"] if r["n_baseline"] else None,
            "distance": distance,
            "p_value": None if p_value != p_value else p_value,
            "p_adjusted": None,
            "folded": r["folded"],
        }
        for r, diff in zip(records, differences, strict=True)
    ]
