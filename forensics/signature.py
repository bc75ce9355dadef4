"""What the separation engine finds: a Signature, and its JSON contract.

A signature is one distinct problem: the slice it lives in (a predicate), its
time window, its symptoms (each signal's rate inside vs a baseline, with
intervals), its size (requests, users, excess) and how sure we are.

``forensics signatures --json`` writes ``{"signatures": [...]}`` with each
entry shaped by ``Signature.to_dict`` (a contract other tools rely on):
``id``, ``predicate`` (column -> list of values, or ``{"gte": x, "lt": y}``),
``start``, ``end`` (ISO-8601 UTC; end exclusive; null = still active),
``signals`` (the elevated signals), ``excess_rate``, ``ci``, ``requests``,
``users``, ``p_value``, ``events``, and more detail (``symptoms``,
``onset_range``, ``odds_ratio``...); and ``{"root_causes": [...]}``, the
signatures grouped by the change that explains them (``forensics.rootcause``).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl

from forensics.queries import Where
from forensics.stats import format_p_value

__all__ = [
    "Signature",
    "SymptomRate",
    "describe_predicate",
    "signatures_frame",
    "signatures_to_json",
    "users_text",
]


@dataclass(frozen=True)
class SymptomRate:
    """One signal's rate inside a signature vs its baseline."""

    signal: str
    """The signal."""
    n_inside: int
    """Requests inside (slice and window) where the signal is defined."""
    k_inside: int
    """...and where it is true."""
    rate_inside: float
    """k_inside / n_inside."""
    ci_inside: tuple[float, float]
    """Wilson 95% interval of rate_inside."""
    n_baseline: int
    """Baseline requests where the signal is defined (see ``Signature.baseline``)."""
    k_baseline: int
    """...and where it is true."""
    rate_baseline: float
    """k_baseline / n_baseline."""
    ci_baseline: tuple[float, float]
    """Wilson 95% interval of rate_baseline."""
    p_value: float
    """One-sided score test that the rate is higher inside."""
    elevated: bool
    """Significantly higher inside (Bonferroni over the signals), with odds at least the
    separation's ``min_ratio`` times the baseline's."""
    baseline: str = ""
    """What this signal is compared with (see ``Signature.baseline``): the same slice
    outside the window, or, when that has too few requests where the signal is
    defined, the rest of a wider slice in the window."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "rate_inside": _num(self.rate_inside),
            "ci_inside": [_num(v) for v in self.ci_inside],
            "n_inside": self.n_inside,
            "k_inside": self.k_inside,
            "rate_baseline": _num(self.rate_baseline),
            "ci_baseline": [_num(v) for v in self.ci_baseline],
            "n_baseline": self.n_baseline,
            "k_baseline": self.k_baseline,
            "p_value": _num(self.p_value),
            "elevated": self.elevated,
            "baseline": self.baseline,
        }


def describe_predicate(
    predicate: dict[str, Any], edge_ranges: dict[str, dict[str, list[float]]] | None = None
) -> str:
    """A predicate as text; with ``edge_ranges``, each placed edge's range in brackets.

    Examples
    --------
    >>> describe_predicate({"model": ["a", "b"], "batch_size": {"gte": 64}})
    'model in {a, b} and batch_size >= 64'
    >>> describe_predicate({"batch_size": {"gte": 96}}, {"batch_size": {"gte": [94, 97]}})
    'batch_size >= 96 [94, 97]'
    """
    parts = []
    for column, spec in predicate.items():
        if isinstance(spec, dict):
            bounds = []
            ranges = (edge_ranges or {}).get(column, {})
            for key, op in (("gte", ">="), ("lt", "<")):
                if spec.get(key) is None:
                    continue
                where = ranges.get(key)
                shown = f" [{where[0]:g}, {where[1]:g}]" if where else ""
                bounds.append(f"{op} {spec[key]:g}{shown}")
            parts.append(f"{column} {' and '.join(bounds)}")
        else:
            shown = ", ".join("(missing)" if v is None else str(v) for v in spec)
            parts.append(f"{column} in {{{shown}}}")
    return " and ".join(parts) if parts else "all requests"


@dataclass(frozen=True)
class Signature:
    """One distinct problem: where, when, which symptoms, how big, how sure."""

    id: str
    """S1, S2... in order of discovery (strongest first)."""
    predicate: dict[str, Any]
    """Column -> list of values, or {"gte": x, "lt": y} for numeric columns."""
    start: datetime
    """Onset (UTC)."""
    end: datetime | None
    """End, exclusive (UTC); None when still active at the end of the data."""
    signal: str
    """The signal the signature was found on."""
    signals: tuple[str, ...]
    """Every signal significantly elevated inside it."""
    symptoms: tuple[SymptomRate, ...]
    """Each signal's rate inside vs the baseline."""
    baseline: str
    """What the rates are compared with: the same slice outside the window, or (for
    traffic that exists only in the window) the rest of a wider slice in the window.
    This is the baseline of ``signal``; each symptom names its own."""
    excess_rate: float
    """rate_inside - rate_baseline of ``signal``."""
    ci: tuple[float, float]
    """Newcombe 95% interval of excess_rate."""
    excess_requests: float
    """Requests with the signal above what the baseline rate predicts."""
    requests: int
    """Requests in the slice during the window."""
    users: int | None
    """Distinct users among them (0 when the data has no user_id; None on counted rows,
    which name no users)."""
    p_value: float
    """Valid after the search: the Bonferroni bound over every (slice, window, signal)
    the search could have chosen, calibrated on bug-free data (the share of bug-free
    searches whose best candidate looks at least as strong; ``separation.calibration``)."""
    log_likelihood_ratio: float
    """Strength of the scan statistic."""
    onset_range: tuple[datetime, datetime]
    """Profile-likelihood 95% range for the onset."""
    end_range: tuple[datetime, datetime] | None
    """Profile-likelihood 95% range for the end (None when still active)."""
    events: tuple[dict[str, Any], ...]
    """Change events nearest the onset and the end: near, hours_away, ts, kind, description, scope."""
    odds_ratio: float = float("nan")
    """Odds ratio of the signature from a binomial GLM fitted jointly with the others
    found on the same signal and the baseline's main effects."""
    odds_ratio_ci: tuple[float, float] = (float("nan"), float("nan"))
    """95% interval of odds_ratio."""
    edge_ranges: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    """Per numeric condition placed on the data, where each edge lies:
    ``{"batch_size": {"gte": [lo, hi]}}`` (a profile-likelihood 95% range; the
    predicate's edge is the roundest number in it)."""

    @property
    def where(self) -> Where:
        """The predicate and window as a filter for the query helpers."""
        return Where.parse({**self.predicate, "ts": (self.start, self.end)})

    def describe(self) -> str:
        """One line: slice, window, symptoms."""
        end = self.end.strftime("%Y-%m-%d %H:%M") if self.end else "still active"
        return (
            f"{describe_predicate(self.predicate, self.edge_ranges)}, "
            f"{self.start:%Y-%m-%d %H:%M} -> {end}: {', '.join(self.signals)}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``forensics signatures --json`` (a contract)."""
        return {
            "id": self.id,
            "predicate": self.predicate,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "signal": self.signal,
            "signals": list(self.signals),
            "symptoms": {s.signal: s.to_dict() for s in self.symptoms},
            "baseline": self.baseline,
            "excess_rate": _num(self.excess_rate),
            "ci": [_num(v) for v in self.ci],
            "excess_requests": _num(self.excess_requests),
            "requests": self.requests,
            "users": self.users,
            "p_value": _num(self.p_value),
            "log_likelihood_ratio": _num(self.log_likelihood_ratio),
            "onset_range": [_iso(t) for t in self.onset_range],
            "end_range": [_iso(t) for t in self.end_range] if self.end_range else None,
            "odds_ratio": _num(self.odds_ratio),
            "odds_ratio_ci": [_num(v) for v in self.odds_ratio_ci],
            "edge_ranges": self.edge_ranges,
            "events": [
                {**e, "ts": _iso(e["ts"])} if isinstance(e.get("ts"), datetime) else e
                for e in self.events
            ],
        }

    def symptoms_frame(self) -> pl.DataFrame:
        """Each signal's rate inside vs the baseline, one row per signal.

        Columns: ``signal, rate_inside, ci_low, ci_high, rate_baseline, baseline_low,
        baseline_high, n_inside, k_inside, n_baseline, k_baseline, p_value, elevated``.
        """
        return pl.DataFrame(
            [
                (
                    s.signal,
                    s.rate_inside,
                    *s.ci_inside,
                    s.rate_baseline,
                    *s.ci_baseline,
                    s.n_inside,
                    s.k_inside,
                    s.n_baseline,
                    s.k_baseline,
                    s.p_value,
                    s.elevated,
                )
                for s in self.symptoms
            ],
            schema=[
                "signal",
                "rate_inside",
                "ci_low",
                "ci_high",
                "rate_baseline",
                "baseline_low",
                "baseline_high",
                "n_inside",
                "k_inside",
                "n_baseline",
                "k_baseline",
                "p_value",
                "elevated",
            ],
            orient="row",
        ).with_columns(pl.col(pl.Float64).fill_nan(None))

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(s.signal)}</td><td>{s.rate_inside:.4f} "
            f"[{s.ci_inside[0]:.4f}, {s.ci_inside[1]:.4f}]</td><td>{s.rate_baseline:.4f} "
            f"[{s.ci_baseline[0]:.4f}, {s.ci_baseline[1]:.4f}]</td>"
            f"<td>{'yes' if s.elevated else ''}</td></tr>"
            for s in self.symptoms
        )
        return (
            f"<div><b>{html.escape(self.id)}</b> {html.escape(self.describe())}<br>"
            f"{self.requests:,} requests, {users_text(self.users)}, excess rate "
            f"{self.excess_rate:.4f} [{self.ci[0]:.4f}, {self.ci[1]:.4f}], "
            f"p = {format_p_value(self.p_value)}"
            f"<br>baseline: {html.escape(self.baseline)}"
            "<table><tr><th>signal</th><th>inside</th><th>baseline</th><th>elevated</th></tr>"
            f"{rows}</table></div>"
        )


def users_text(users: int | None) -> str:
    """A signature's users in words: a count, or why there is none (counted rows).

    Examples
    --------
    >>> users_text(1234), users_text(None)
    ('1,234 users', 'users not known (counted rows)')
    """
    return "users not known (counted rows)" if users is None else f"{users:,} users"


def _iso(t: datetime | None) -> str | None:
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _num(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def signatures_frame(signatures: Sequence[Signature]) -> pl.DataFrame:
    """One row per signature: what, when, how big, how sure.

    Columns: ``id, slice, start, end`` (null: still active), ``signals,
    requests, users, excess_rate, ci_low, ci_high, p_value``.

    Examples
    --------
    >>> signatures_frame([]).columns[:4]
    ['id', 'slice', 'start', 'end']
    """
    return pl.DataFrame(
        [
            (
                s.id,
                describe_predicate(s.predicate),
                s.start,
                s.end,
                ", ".join(s.signals),
                s.requests,
                s.users,
                s.excess_rate,
                *s.ci,
                s.p_value,
            )
            for s in signatures
        ],
        schema={
            "id": pl.Utf8,
            "slice": pl.Utf8,
            "start": pl.Datetime("us", "UTC"),
            "end": pl.Datetime("us", "UTC"),
            "signals": pl.Utf8,
            "requests": pl.Int64,
            "users": pl.Int64,
            "excess_rate": pl.Float64,
            "ci_low": pl.Float64,
            "ci_high": pl.Float64,
            "p_value": pl.Float64,
        },
        orient="row",
    )


def signatures_to_json(
    signatures: Sequence[Signature], *, root_causes: Sequence[Any] | None = None
) -> str:
    """``{"signatures": [...]}`` as written by ``forensics signatures --json``.

    With ``root_causes`` (``forensics.rootcause.RootCause``; the CLI always passes them), also ``"root_causes":
    [...]``, each entry its ``to_dict()``: ``id``, ``signatures`` (ids),
    ``shared_conditions``, ``events`` (the matched ones), ``why``, and more.
    """
    data: dict[str, Any] = {"signatures": [s.to_dict() for s in signatures]}
    if root_causes is not None:
        data["root_causes"] = [c.to_dict() for c in root_causes]
    return json.dumps(data, indent=2)
