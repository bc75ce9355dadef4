"""script_mix: placeholder until the detector lands (always null)."""

from __future__ import annotations

from forensics.signals._detector import Detector, SignalParams


def _sql(params: SignalParams) -> str:
    return "CAST(NULL AS BOOLEAN)"


DETECTOR = Detector(
    name="script_mix",
    description="Response contains a run of characters from a script foreign to its language",
    requires=("response_text",),
    sql=_sql,
)
