"""repetition: degenerate output, one short unit repeated until the answer ends.

A model that degenerates emits the same token, word or short phrase again and
again, usually until ``max_tokens`` stops it: ``the the the ...``,
``的的的...``, ``I cannot help. I cannot help. ...``. The rule:

1. **The answer ends in a loop.** Trailing spaces aside, the answer's last
   characters are one unit of at most ``REPETITION_MAX_UNIT`` characters
   repeated back to back: the text is periodic from some point to its end
   (the last repeat may stop half way, as the length limit cuts it).
2. **Long enough.** The loop holds at least ``repetition_min_repeats`` repeats
   and ``repetition_min_chars`` characters; a unit of ASCII punctuation and spaces
   only (``-----``, ``| | |``, ``* * *``) needs ``repetition_symbol_factor`` times
   as many characters, as rules, separators and empty table rows are written that
   way (a loop of emoji or of letters is not).
3. **Not asked for.** With ``prompt_text``, a loop whose unit the prompt holds
   (``write "I will not talk in class" 50 times``) or a prompt asking for
   repetition (``REPEAT_REQUEST``: repeat, N times, over and over...) does not
   count.

What does not fire: lists and tables (their rows differ), code whose lines
repeat inside a closed block (the loop does not reach the answer's end), a poem's
refrain or ``ha ha ha`` (too short), a loop that stops and is followed by more
text. Known limits: a loop whose unit is longer than ``REPETITION_MAX_UNIT``, a
loop whose repeats differ (``Step 1``, ``Step 2``...), and a loop the model
escaped from before its end are not seen.

Cost: the SQL looks at the last ``TAIL_CHARS`` characters only: a loop makes its
last ``PROBE_CHARS`` characters occur again just before them, which prose almost
never does. Only such rows reach the Python check (``find_loop``), which finds
the period from the probe's earlier occurrence and the loop's length by halving.
"""

from __future__ import annotations

import re
from collections.abc import Set
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from forensics.signals._detector import (
    Detector,
    SignalParams,
    Stages,
    VerdictMemo,
    column_or_null,
    once_per_distinct,
    register_arrow_function,
)

__all__ = [
    "DETECTOR",
    "FUNCTION_NAME",
    "PROBE_CHARS",
    "REPEAT_REQUEST",
    "REPETITION_MAX_UNIT",
    "TAIL_CHARS",
    "Loop",
    "find_loop",
    "is_degenerate",
]

FUNCTION_NAME = "forensics_repetition"
"""Name of the Python UDF registered on the connection."""

REPETITION_MAX_UNIT = 120
"""Longest repeated unit looked for, in characters (a short phrase or sentence)."""

PROBE_CHARS = 16
"""Characters at the end of the answer that a loop repeats just before them."""

TAIL_CHARS = REPETITION_MAX_UNIT + PROBE_CHARS + 1
"""Characters at the end of the answer the SQL reads."""

REPEAT_REQUEST = re.compile(
    r"\brepeat|\brepetition|\b\d+\s*(?:x|times)\b|\bover and over|\bagain and again"
    r"|wiederhol|\bmal\b|répét|repet|repit|ripet|повтор|раз\b|重复|重複|繰り返|반복|ซ้ำ",
    re.IGNORECASE,
)
"""A prompt that asks for repetition (in a few languages)."""


@dataclass(frozen=True)
class Loop:
    """The loop an answer ends in."""

    unit: str
    """One repeat (the last full period of the text)."""
    repeats: float
    """How many times it repeats (the last may be partial)."""
    chars: int
    """Characters the loop covers."""


def find_loop(text: str, *, max_unit: int = REPETITION_MAX_UNIT) -> Loop | None:
    """The loop ``text`` ends in (trailing spaces aside), or None.

    The period is the shortest shift at which the last ``PROBE_CHARS`` characters
    occur again; the loop's length is the longest end of the text that is periodic
    with it, found by halving (a shorter end of a periodic end is periodic too).

    Examples
    --------
    >>> find_loop("Sure. " + "the " * 40)
    Loop(unit=' the', repeats=40.0, chars=160)
    >>> find_loop("A plain answer with nothing repeated in it at all.") is None
    True
    """
    t = text.rstrip()
    n = len(t)
    if n < 2 * PROBE_CHARS:
        return None
    probe = t[n - PROBE_CHARS :]
    at = t.rfind(probe, max(0, n - PROBE_CHARS - max_unit), n - 1)
    if at < 0:
        return None
    p = n - PROBE_CHARS - at
    if p > max_unit:
        return None
    lo, hi = PROBE_CHARS + p, n  # t[n - lo:] is p-periodic; find the longest such end
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if t[n - mid : n - p] == t[n - mid + p :]:
            lo = mid
        else:
            hi = mid - 1
    return Loop(unit=t[n - p :], repeats=lo / p, chars=lo)


def is_degenerate(
    text: str,
    prompt: str | None,
    *,
    min_repeats: float,
    min_chars: int,
    symbol_factor: float,
) -> bool:
    """Whether an answer ends in a degenerate loop (the rule of the module docstring).

    Examples
    --------
    >>> is_degenerate("ok " + "的" * 200, None, min_repeats=8, min_chars=100, symbol_factor=4)
    True
    >>> is_degenerate("ha " * 10, None, min_repeats=8, min_chars=100, symbol_factor=4)
    False
    >>> is_degenerate("Hi " * 60, "Say hi 60 times", min_repeats=8, min_chars=100, symbol_factor=4)
    False
    """
    loop = find_loop(text)
    if loop is None or loop.repeats < min_repeats:
        return False
    symbols_only = all(c.isspace() or (c.isascii() and not c.isalnum()) for c in loop.unit)
    needed = min_chars * symbol_factor if symbols_only else min_chars
    if loop.chars < needed:
        return False
    if prompt:
        unit = loop.unit.strip().lower()
        if REPEAT_REQUEST.search(prompt) or (len(unit) >= 2 and unit in prompt.lower()):
            return False
    return True


MEMO = VerdictMemo(max_chars=16_000_000, max_entry_chars=50_000)
"""Verdicts by (answer, prompt, thresholds), remembered between vectors: at most 16
million characters of inputs, none longer than 50,000 (a loop run to a long limit)."""


def _judge(text: str, prompt: str | None, repeats: float, chars: int, factor: float) -> bool:
    return is_degenerate(text, prompt, min_repeats=repeats, min_chars=chars, symbol_factor=factor)


def _udf(
    texts: pa.Array,
    prompts: pa.Array,
    min_repeats: pa.Array,
    min_chars: pa.Array,
    symbol_factor: pa.Array,
) -> pa.Array:
    """Vectorised check over the rows the SQL kept, once per distinct row (``MEMO``).

    ``is_degenerate`` depends on its arguments alone: a repeated answer takes the
    verdict it had, and no result changes.
    """
    return once_per_distinct(_judge, MEMO, texts, prompts, min_repeats, min_chars, symbol_factor)


def register(con: duckdb.DuckDBPyConnection) -> None:
    """Register the UDF on ``con`` (vectorised over Arrow arrays, no side effects)."""
    register_arrow_function(
        con, FUNCTION_NAME, _udf, ["VARCHAR", "VARCHAR", "DOUBLE", "BIGINT", "DOUBLE"]
    )


_TAIL = "_repetition_tail"
"""Stage column: the answer's last ``TAIL_CHARS`` characters, trailing spaces removed."""


def _stages(params: SignalParams, present: Set[str]) -> Stages:
    # Trailing spaces are cut from a slightly longer end, so the tail is never short of
    # text because the answer ends in blank lines.
    end = f"right(response_text, {TAIL_CHARS + 64})"
    tail = f"right(regexp_replace({end}, '\\s+$', ''), {TAIL_CHARS})"
    return (((_TAIL, f"CASE WHEN strlen(response_text) >= 2 * {PROBE_CHARS} THEN {tail} END"),),)


def _sql(params: SignalParams, present: Set[str]) -> str:
    prompt = column_or_null("prompt_text", present)
    probe = f"right({_TAIL}, {PROBE_CHARS})"
    before = f"left({_TAIL}, length({_TAIL}) - 1)"
    return (
        "CASE WHEN response_text IS NULL THEN NULL "
        f"WHEN {_TAIL} IS NULL OR length({_TAIL}) < 2 * {PROBE_CHARS} THEN false "
        f"WHEN NOT contains({before}, {probe}) THEN false "
        f"ELSE {FUNCTION_NAME}(response_text, {prompt}, $repetition_min_repeats, "
        "$repetition_min_chars, $repetition_symbol_factor) END"
    )


DETECTOR = Detector(
    name="repetition",
    description="Degenerate output: the answer ends in one short unit repeated many times",
    requires=("response_text",),
    sql=_sql,
    register=register,
    stages=_stages,
)
