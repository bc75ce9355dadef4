"""What ``explain`` returns: ranked candidates, each a set of elements with its numbers.

``Explanation.to_dict()`` is the ``forensics explain --json`` contract::

    {"at": ISO time, "signal": name,
     "candidates": [{"elements": [{column: value or {"gte": x, "lt": y}, ...}, ...],
                     "share": ..., "rate": ..., "baseline_rate": ..., "ci": [lo, hi],
                     "score": ...}, ...]}

An element is one conjunction (a value per column, or a range for a numeric
column as in signature predicates); a candidate holds one or more elements
that fail together.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from forensics.explain.params import ExplainParams

__all__ = ["Candidate", "Explanation", "describe_elements", "describe_grain", "describe_where"]


def _describe_value(column: str, value: Any) -> str:
    if isinstance(value, dict):
        parts = []
        if value.get("gte") is not None:
            parts.append(f"{column} >= {value['gte']:g}")
        if value.get("lt") is not None:
            parts.append(f"{column} < {value['lt']:g}")
        return " & ".join(parts) or f"{column} (any)"
    if value is None:
        return f"{column} is missing"
    return f"{column} = {value}"


def describe_elements(elements: tuple[dict[str, Any], ...]) -> str:
    """One line: conjunctions joined by ``&``, elements by ``;``; the whole traffic is ``(all)``.

    Examples
    --------
    >>> describe_elements(({"region": "eu", "pool": "p7"}, {"batch": {"gte": 32.0}}))
    'region = eu & pool = p7; batch >= 32'
    """
    if not elements:
        return "(nothing)"
    return "; ".join(
        " & ".join(_describe_value(c, v) for c, v in element.items()) or "(all)"
        for element in elements
    )


def _num(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


@dataclass(frozen=True)
class Candidate:
    """One candidate explanation."""

    elements: tuple[dict[str, Any], ...]
    """Its conjunctions, each column -> value (or ``{"gte": x, "lt": y}``); ``{}`` is all traffic."""
    share: float
    """Share of the moment's excess it explains: its excess over its own plus the rest's (>= 0)."""
    rate: float
    """Its signal rate at the moment."""
    baseline_rate: float
    """The rate its baseline expects (own recent past, times the rest of the traffic's rise)."""
    ci: tuple[float, float]
    """Wilson 95% interval of ``rate``."""
    score: float
    """Evidence that its elements are raised: log-likelihood ratios over dispersion, summed (nats)."""
    requests: int
    """Requests it covers at the moment."""
    signal_count: int
    """...showing the signal."""
    expected: float
    """...expected by the baseline."""
    role: str
    """``explanation``, ``coarser``/``finer`` (nested), ``wider`` (one more element), ``other``."""

    @property
    def description(self) -> str:
        """``region = eu & pool = p7; region = us``."""
        return describe_elements(self.elements)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (see the module docstring)."""
        return {
            "elements": [dict(e) for e in self.elements],
            "share": _num(self.share),
            "rate": _num(self.rate),
            "baseline_rate": _num(self.baseline_rate),
            "ci": [_num(self.ci[0]), _num(self.ci[1])],
            "score": _num(self.score),
        }


@dataclass(frozen=True)
class Explanation:
    """The ranked explanations of one moment."""

    at: datetime
    """Start of the bucket explained (UTC)."""
    signal: str | None
    """The signal explained (None when the counts did not say)."""
    items: tuple[Candidate, ...]
    """The candidates, best first."""
    grain: timedelta
    """Bucket length."""
    baseline_buckets: int
    """Buckets of recent past the baselines come from."""
    found: bool
    """Whether the moment was found from the data (no ``at`` given)."""
    evidence: float | None
    """When found: the evidence of the most anomalous moment (nats)."""
    factor: float
    """The rest of the traffic's rise at the moment, in every baseline (>= 1)."""
    within: tuple[datetime, datetime] | None = None
    """When found: the window it was looked for in (None: the whole data)."""
    where: dict[str, Any] | None = None
    """The filter the counts were read under (``Where.parse`` form; None: every request)."""

    @property
    def candidates(self) -> pl.DataFrame:
        """The candidates as a table, best first.

        Columns: ``rank, candidate, elements, share, rate, baseline_rate, ci_low,
        ci_high, score, requests, signal_count, expected, role``.
        """
        rows = [
            {
                "rank": i,
                "candidate": c.description,
                "elements": len(c.elements),
                "share": c.share,
                "rate": c.rate,
                "baseline_rate": c.baseline_rate,
                "ci_low": c.ci[0],
                "ci_high": c.ci[1],
                "score": c.score,
                "requests": c.requests,
                "signal_count": c.signal_count,
                "expected": c.expected,
                "role": c.role,
            }
            for i, c in enumerate(self.items, start=1)
        ]
        schema = {
            "rank": pl.Int64, "candidate": pl.String, "elements": pl.Int64, "share": pl.Float64,
            "rate": pl.Float64, "baseline_rate": pl.Float64, "ci_low": pl.Float64,
            "ci_high": pl.Float64, "score": pl.Float64, "requests": pl.Int64,
            "signal_count": pl.Int64, "expected": pl.Float64, "role": pl.String,
        }  # fmt: skip
        return pl.DataFrame(rows, schema=schema)

    def to_dict(self) -> dict[str, Any]:
        """``{"at", "signal", "candidates": [...]}`` (see the module docstring)."""
        return {
            "at": self.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "signal": self.signal,
            "candidates": [c.to_dict() for c in self.items],
        }

    def to_json(self) -> str:
        """``to_dict()`` as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)

    def call(self) -> str:
        """The ``wb.explain`` call that explains this moment again (its bucket, grain, filter).

        Examples
        --------
        >>> from datetime import UTC
        >>> e = Explanation(datetime(2025, 8, 29, 14, 32, tzinfo=UTC), "failed", (),
        ...                 timedelta(minutes=1), 60, True, 9.0, 1.0, where={"region": ["eu"]})
        >>> e.call()
        "wb.explain('2025-08-29T14:32Z', signal='failed', grain='minute', where={'region': ['eu']})"
        """
        seconds = int(self.grain.total_seconds())
        grain = _GRAIN_BY_SECONDS.get(seconds)
        args = [repr(f"{self.at:%Y-%m-%dT%H:%MZ}"), f"signal={self.signal or 'degraded'!r}"]
        args.append(f"grain={grain!r}" if grain else f"grain=timedelta(seconds={seconds})")
        if self.baseline_buckets != ExplainParams().baseline:
            args.append(f"baseline={self.baseline_buckets}")
        if self.where:
            args.append(f"where={self.where!r}")
        return f"wb.explain({', '.join(args)})"

    def describe(self) -> str:
        """A few lines: the moment, then one line per candidate."""
        how = "most anomalous moment found" if self.found else "moment asked"
        if self.found and self.within is not None:
            how = (
                f"most anomalous moment in {self.within[0]:%Y-%m-%d %H:%M} – "
                f"{self.within[1]:%Y-%m-%d %H:%M}"
            )
        if self.where:
            how += f"; requests with {describe_where(self.where)}"
        head = (
            f"{self.signal or 'signal'} at {self.at:%Y-%m-%d %H:%M} UTC ({how}; baseline: "
            f"the {self.baseline_buckets} buckets of {describe_grain(self.grain)} before"
            + (
                f", times the rest of the traffic's rise x{self.factor:.2f})"
                if self.factor > 1
                else ")"
            )
        )
        lines = [head]
        for i, c in enumerate(self.items, start=1):
            lines.append(
                f"{i:>2}. {c.description}\n"
                f"    share {c.share:.0%}  rate {c.rate:.4f} [{c.ci[0]:.4f}, {c.ci[1]:.4f}] vs "
                f"baseline {c.baseline_rate:.4f}  score {c.score:.1f}  "
                f"({c.signal_count:,} of {c.requests:,}; {c.role})"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Explanation {self.at:%Y-%m-%d %H:%M} UTC: {len(self.items)} candidates>"


def describe_where(where: dict[str, Any]) -> str:
    """A filter in words, as an element: ``model = a & batch >= 32``; a list as ``in {..}``.

    Examples
    --------
    >>> describe_where({"region": ["eu", "us"], "batch": {"gte": 32}})
    'region in {eu, us} & batch >= 32'
    """
    parts = []
    for column, spec in where.items():
        if isinstance(spec, list | tuple) and len(spec) != 1:
            parts.append(f"{column} in {{{', '.join(str(v) for v in spec)}}}")
        else:
            one = spec[0] if isinstance(spec, list | tuple) else spec
            parts.append(_describe_value(column, one))
    return " & ".join(parts)


_GRAIN_BY_SECONDS = {60: "minute", 300: "5min", 900: "15min", 3600: "hour", 86400: "day"}
"""Grains by the name ``wb.explain(grain=...)`` takes (``explain.database.GRAIN_NAMES``)."""


def describe_grain(grain: timedelta) -> str:
    """A bucket length in words.

    Examples
    --------
    >>> describe_grain(timedelta(minutes=5)), describe_grain(timedelta(hours=1))
    ('5 minutes', '1 hour')
    """
    seconds = int(grain.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}s" if count > 1 else f"1 {unit}"
    return f"{seconds} s"
