"""truncated: the answer stopped at its length limit.

True when ``finish_reason`` is one that means the limit (``LENGTH_REASONS``:
``length`` as OpenAI-style APIs and vLLM write it, ``max_tokens`` as others do,
any letter case), or when ``output_tokens`` reached ``max_tokens``. False when
either is known and says otherwise; null when neither is known (no
``finish_reason``, and no ``output_tokens`` with ``max_tokens``).

A truncated answer is not always a bug (a long answer asked for with a small
limit), but a rise in it is: a model that stops emitting its stop sequence, or a
client that sends a smaller limit.
"""

from __future__ import annotations

from collections.abc import Set

from forensics.signals._detector import Detector, SignalParams, column_or_null, sql_literal

__all__ = ["DETECTOR", "LENGTH_REASONS"]

LENGTH_REASONS = ("length", "max_tokens", "max_output_tokens", "model_length")
"""Finish reasons (lower case) that mean the answer hit its token limit."""


def _sql(params: SignalParams, present: Set[str]) -> str:
    reason = f"lower({column_or_null('finish_reason', present)})"
    used = column_or_null("output_tokens", present, "BIGINT")
    limit = column_or_null("max_tokens", present, "BIGINT")
    reasons = ", ".join(sql_literal(r) for r in LENGTH_REASONS)
    return (
        f"CASE WHEN {reason} IN ({reasons}) THEN true "
        f"WHEN {used} >= {limit} THEN true "
        f"WHEN {reason} IS NOT NULL OR ({used} IS NOT NULL AND {limit} IS NOT NULL) THEN false "
        "END"
    )


DETECTOR = Detector(
    name="truncated",
    description="The answer stopped at its length limit (finish_reason length, or output_tokens reached max_tokens)",
    requires=(),
    sql=_sql,
)
