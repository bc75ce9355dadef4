"""negative_feedback: the user gave the response a thumbs-down (-1). Null without feedback."""

from __future__ import annotations

from collections.abc import Set

from forensics.signals._detector import Detector, SignalParams


def _sql(params: SignalParams, present: Set[str]) -> str:
    return "user_feedback = -1"


DETECTOR = Detector(
    name="negative_feedback",
    description="User rated the response -1",
    requires=("user_feedback",),
    sql=_sql,
)
