"""low_eval: the automatic quality score is below a threshold (default 0.5)."""

from __future__ import annotations

from collections.abc import Set

from forensics.signals._detector import Detector, SignalParams


def _sql(params: SignalParams, present: Set[str]) -> str:
    return "eval_score < $low_eval_threshold"


DETECTOR = Detector(
    name="low_eval",
    description="eval_score below the low_eval threshold",
    requires=("eval_score",),
    sql=_sql,
)
