"""code_syntax_error: placeholder until the detector lands (always null)."""

from __future__ import annotations

from forensics.signals._detector import Detector, SignalParams


def _sql(params: SignalParams) -> str:
    return "CAST(NULL AS BOOLEAN)"


DETECTOR = Detector(
    name="code_syntax_error",
    description="A fenced python or json code block in the response fails to parse",
    requires=("response_text",),
    sql=_sql,
)
