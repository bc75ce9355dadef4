"""Counted incidents: per-minute counts by attribute with injected root causes, and a scorer.

Written apart from the explanation method (``forensics.explain``) and from the
other simulators (nothing imported from ``forensics.simulate.engine``,
``spec`` or ``field``), following the published descriptions of
root-cause-localisation benchmarks: a cube of 4 to 6 attributes with 3 to 20
values each (``cube``), per-minute baselines with noise and daily cycles
(``series``), anomalies injected at one or several elements of different
depths, some already elevated before the onset (``anomalies``), the truth and
the files (``truth``), and the literature's scores (``score``: exact set
match, micro-F1, hit@k, onset). Every range is a field of ``CaseParams``.

``generate_case(seed)`` returns the counts and the truth; ``write_case``
writes ``counts.parquet`` (or ``.csv``) and ``truth.json``. Same seed and
params, same bytes.

>>> case = generate_case(3, CaseParams(volume=(2000.0, 2000.0), leaves=(200, 200)))
>>> case.counts.columns[0], case.counts.columns[-2:], len(case.truth["elements"]) >= 1
('minute', ['requests', 'bad'], True)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from forensics.simulate.counted.anomalies import draw_plan
from forensics.simulate.counted.cube import draw_cube
from forensics.simulate.counted.params import CaseParams
from forensics.simulate.counted.score import CaseScore, Summary, score_case, summarize
from forensics.simulate.counted.series import draw_counts
from forensics.simulate.counted.truth import truth_document, write_counts

__all__ = [
    "CaseParams",
    "CaseScore",
    "CountedCase",
    "Summary",
    "generate_case",
    "score_case",
    "summarize",
    "write_case",
]

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
"""Cases start on a minute within the year after this."""

REDRAWS = 20
"""Cubes drawn for a seed before giving up on fitting a cause into one."""


@dataclass(frozen=True)
class CountedCase:
    """One counted incident: its rows and its truth."""

    seed: int
    """The seed it was drawn from."""
    counts: pl.DataFrame
    """``minute`` (UTC), one column per attribute, ``requests``, ``bad``."""
    truth: dict[str, Any]
    """``elements``, ``onset``, ``onset_minute`` and how it was made (see ``truth``)."""

    @property
    def attributes(self) -> list[str]:
        """The attribute columns."""
        return list(self.truth["attributes"])


def generate_case(seed: int, params: CaseParams | None = None) -> CountedCase:
    """Draw one counted incident from ``seed``."""
    params = params or CaseParams()
    rng = np.random.default_rng([seed, 17])
    for _ in range(REDRAWS):
        cube = draw_cube(rng, params)
        start = EPOCH + timedelta(minutes=int(rng.integers(365 * 1440)))
        plan = draw_plan(rng, cube, start, params)
        if plan is not None:
            break
    else:
        raise ValueError(f"seed {seed}: no cause fits {REDRAWS} cubes drawn with {params}")
    counts = draw_counts(rng, cube, plan, start, params)
    return CountedCase(seed, counts, truth_document(seed, cube, plan, start, counts))


def write_case(
    case: CountedCase, out: str | Path, *, format: Literal["parquet", "csv"] = "parquet"
) -> Path:
    """Write ``counts.parquet`` (or ``counts.csv``), ``mapping.toml`` and ``truth.json``."""
    return write_counts(case.counts, case.truth, out, format=format)
