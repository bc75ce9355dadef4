"""empty_response: the answer is blank where one was expected.

True when ``response_text`` holds no visible character: empty, or only spaces,
line breaks, control and format characters (zero-width spaces, byte-order
marks). Ingest keeps a blank answer as ``''`` and a missing one as null, so a
null ``response_text`` (the log did not record the answer) gives null.

Where one was expected: a blank answer is what a tool call looks like, so when
``finish_reason`` says the model called a tool (``TOOL_CALL_REASONS``) the
signal is false. Any other reason (``stop``, ``length``, ``content_filter``, or
none) leaves a blank answer a symptom: the empty 200 responses of a bad
rollback, a stream cut before its first token.

One regex per row, which stops at the first visible character (the first of
most answers).
"""

from __future__ import annotations

from collections.abc import Set

from forensics.signals._detector import Detector, SignalParams, column_or_null, sql_literal

__all__ = ["DETECTOR", "TOOL_CALL_REASONS", "VISIBLE"]

VISIBLE = r"[^\s\p{Z}\p{Cc}\p{Cf}]"
"""RE2: a character that shows (not a space, separator, control or format character)."""

TOOL_CALL_REASONS = ("tool_calls", "tool_call", "function_call", "tool_use")
"""Finish reasons (lower case) of a turn that called a tool instead of answering."""


def _sql(params: SignalParams, present: Set[str]) -> str:
    reason = f"lower({column_or_null('finish_reason', present)})"
    tools = ", ".join(sql_literal(r) for r in TOOL_CALL_REASONS)
    return (
        "CASE WHEN response_text IS NULL THEN NULL "
        f"WHEN regexp_matches(response_text, {sql_literal(VISIBLE)}) THEN false "
        f"WHEN coalesce({reason} IN ({tools}), false) THEN false ELSE true END"
    )


DETECTOR = Detector(
    name="empty_response",
    description="The answer is blank (nothing visible) although no tool call was made",
    requires=("response_text",),
    sql=_sql,
)
