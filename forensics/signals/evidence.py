"""Where a text signal's evidence lies in a response: the spans to highlight.

A detector answers true or false for a whole response; an investigator looking
at a sample of requests wants to see *what* fired. This module finds it, by
the detectors' own rules, for the few responses of a sample (never at ingest):

- ``script_mix``: the runs of letters foreign to the answer's language
  (``foreign_runs``). The text is cut by DuckDB's RE2, with the same Unicode
  script classes and the same code and citation patterns as the detector
  (``script_tokens_sql``), and the runs are judged in Python by the rule of
  ``script_mix.script_mix_verdict`` (expected scripts, run lengths, the share of
  a line a script holds).
- ``code_syntax_error``: the line of each checked block where parsing fails
  (``failing_lines``), as ``ast.parse`` or ``json.loads`` reports it.

The verdict stays the detector's: a response the detector flagged has at least
one span here (a test checks it on the labelled corpus), and this module is
read only to show where.
"""

from __future__ import annotations

import ast
import bisect
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from forensics.signals._detector import SignalParams, sql_literal
from forensics.signals.code_syntax_error import _REPL_PROMPT, _python_source, located_blocks
from forensics.signals.script_mix import (
    _GREEK,
    _NAMING_ORDER,
    _WRITTEN_TOGETHER,
    CODE,
    LANGUAGE_SCRIPTS,
    LATIN,
    MASKED,
    RUNS_ALL,
    SCRIPT_BLOCKS,
    SCRIPT_SUBTAGS,
    script_bit,
)

__all__ = ["Span", "failing_lines", "foreign_runs", "script_of", "script_tokens_sql"]


@dataclass(frozen=True)
class Span:
    """A stretch of a response that shows a signal."""

    start: int
    """Offset of its first character in the response (Python string index)."""
    end: int
    """Offset just past its last character."""
    signal: str
    """The signal it is evidence of."""
    detail: str
    """What it is, in words: ``Thai run of 6 letters``, ``line 3: invalid syntax``."""


# -- script_mix ---------------------------------------------------------------------

_CITED = f"{CODE}|{MASKED}"
_PARTITION = f"{_CITED}|{RUNS_ALL}|[\\s\\S]"
"""Cited text, a run of one script, else one character: consecutive matches cover the
whole text (every position matches the last alternative)."""

_LATIN_BIT = script_bit(LATIN)
_GREEK_BIT = script_bit(_GREEK)


def script_tokens_sql(text: str) -> str:
    """SQL: ``text`` cut into consecutive pieces, each ``{t: piece, k: kind}``.

    Kinds: ``c`` code or cited foreign text (the detector masks it), ``r`` a run of
    letters of one script, ``o`` anything else (one character). The pieces joined
    give the text back.

    Examples
    --------
    >>> import duckdb
    >>> sql = f"SELECT {script_tokens_sql('$t')}"
    >>> pieces = duckdb.connect().execute(sql, {"t": 'Hi ข้อ "猫"'}).fetchall()[0][0]
    >>> [(p["t"], p["k"]) for p in pieces]
    [('Hi', 'r'), (' ', 'o'), ('ข้อ', 'r'), (' ', 'o'), ('"猫"', 'c')]
    """
    return (
        f"[{{'t': _ev_t, 'k': CASE WHEN regexp_full_match(_ev_t, {sql_literal(_CITED)}) THEN 'c' "
        f"WHEN regexp_full_match(_ev_t, {sql_literal(RUNS_ALL)}) THEN 'r' ELSE 'o' END}} "
        f"for _ev_t in regexp_extract_all({text}, {sql_literal(_PARTITION)})]"
    )


def script_of(ch: str) -> str:
    """The script a run starting with ``ch`` is named by (the detector's rule).

    Examples
    --------
    >>> script_of("ก"), script_of("猫"), script_of("a"), script_of("é")
    ('Thai', 'Han', 'Latin', 'Latin')
    """
    cp = ord(ch)
    if cp < 0x370:
        return LATIN
    for name in _NAMING_ORDER:
        if any(lo <= cp <= hi for lo, hi in SCRIPT_BLOCKS[name]):
            return name
    return LATIN


def _language_bits(language: str | None) -> int | None:
    """The scripts of a BCP-47 tag as bits (``script_mix.language_mask_sql`` in Python)."""
    if language is None:
        return None
    names = LANGUAGE_SCRIPTS.get(language)
    if names is None:
        parts = language.strip().lower().replace("_", "-").split("-")
        subtag = parts[1] if len(parts) > 1 else ""
        names = SCRIPT_SUBTAGS.get(subtag) or LANGUAGE_SCRIPTS.get(parts[0])
    if names is None:
        return None
    bits = 0
    for name in names:
        bits |= script_bit(name)
    return bits


def _together(bit: int) -> int:
    """The scripts accepted along with one (Han brings kana, Hangul brings Han)."""
    for name, group in _WRITTEN_TOGETHER.items():
        if bit == script_bit(name):
            out = 0
            for member in group:
                out |= script_bit(member)
            return out
    return bit


@dataclass(frozen=True)
class _Run:
    line: int
    bit: int
    start: int
    length: int
    script: str


def _runs(tokens: Sequence[Mapping[str, str]]) -> tuple[list[_Run], list[int]]:
    """The runs of tracked scripts with their line and offset, and Latin letters per line."""
    runs: list[_Run] = []
    latin = [0]
    at = 0
    for token in tokens:
        text, kind = token["t"], token["k"]
        if kind == "o" and text == "\n":
            latin.append(0)
        elif kind == "r":
            script = script_of(text[0])
            if script == LATIN:
                latin[-1] += len(text)
            else:
                runs.append(_Run(len(latin) - 1, script_bit(script), at, len(text), script))
        at += len(text)
    return runs, latin


def foreign_runs(
    tokens: Sequence[Mapping[str, str]],
    language: str | None,
    *,
    params: SignalParams | None = None,
) -> list[Span]:
    """The runs that make ``script_mix`` fire, by the detector's rule.

    Parameters
    ----------
    tokens
        The response cut by ``script_tokens_sql``.
    language
        Its ``prompt_language`` (None: unknown; the dominant script stands for it).
    params
        The detector's thresholds (the defaults when omitted).

    Returns
    -------
    list[Span]
        One per foreign run, in order; empty when the detector would say false.
    """
    params = params or SignalParams()
    runs, latin = _runs(tokens)
    lang = _language_bits(language)

    def letters(mask: int, line: int | None = None) -> int:
        chosen = [r for r in runs if line is None or r.line == line]
        tracked = sum(r.length for r in chosen if r.bit & mask)
        if mask & _LATIN_BIT:
            tracked += sum(latin) if line is None else latin[line]
        return tracked

    def share_above(mask: int, line: int | None = None) -> bool:
        return letters(mask, line) > params.script_mix_max_share * letters(-1, line)

    def long_enough(run: _Run) -> bool:
        least = (
            params.script_mix_greek_min_run if run.bit == _GREEK_BIT else params.script_mix_min_run
        )
        return run.length >= least

    found = 0
    for run in runs:
        if long_enough(run):
            found |= run.bit
    if not found & ~(lang or 0):
        return []
    scripts = {r.bit for r in runs} | {_LATIN_BIT}
    if lang is None:
        dominant = max(scripts, key=lambda b: (letters(b), b))
        base = _together(dominant)
    else:
        base = lang
    expected = base
    for bit in scripts:
        beyond = _together(bit) & ~base
        if beyond and share_above(beyond):
            expected |= _together(bit)
    firing = {
        (r.line, r.bit)
        for r in runs
        if r.bit & ~expected
        and long_enough(r)
        and not share_above(_together(r.bit) & ~expected, r.line)
    }
    return [
        Span(r.start, r.start + r.length, "script_mix", f"{r.script} run of {r.length} letters")
        for r in runs
        if (r.line, r.bit) in firing and long_enough(r)
    ]


# -- code_syntax_error --------------------------------------------------------------


def _failing_line(kind: str, body: str) -> tuple[int, str] | None:
    """(0-based body line, message) where a block fails to parse, None if it parses."""
    if kind == "python":
        lines = body.split("\n")
        prompted = [i for i, line in enumerate(lines) if _REPL_PROMPT.match(line)]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ast.parse(_python_source(body))
        except SyntaxError as exc:
            number = max(1, exc.lineno or 1) - 1
            if prompted:
                number = prompted[min(number, len(prompted) - 1)]
            return min(number, len(lines) - 1), str(exc.msg)
        except ValueError as exc:  # NUL in the source
            return 0, str(exc)
        except (RecursionError, MemoryError):
            return None
        return None
    documents = [(i, line) for i, line in enumerate(body.split("\n")) if line.strip()]
    whole: tuple[int, str] | None = None
    if kind == "json":
        try:
            json.loads(body, parse_constant=_not_json)
            return None
        except ValueError as exc:
            # where the document breaks, unless every line is a document (JSON lines)
            whole = max(0, getattr(exc, "lineno", 1) - 1), _message(exc)
            if len(documents) < 2:
                return whole
        except RecursionError:
            return None
    for i, line in documents:
        try:
            json.loads(line, parse_constant=_not_json)
        except ValueError as exc:
            return whole or (i, _message(exc))
        except RecursionError:
            return None
    return None


def _not_json(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _message(exc: ValueError) -> str:
    return str(getattr(exc, "msg", exc))


def failing_lines(text: str, *, params: SignalParams | None = None) -> list[Span]:
    r"""The line of each checked code block of ``text`` where parsing fails.

    Blocks are those ``code_syntax_error`` checks (``located_blocks``), longer
    ones than ``params.code_max_chars`` left out as the detector leaves them.

    Examples
    --------
    >>> text = "Try:\r\n```python\r\ndef f(:\r\n    pass\r\n```"
    >>> [(text[s.start:s.end], s.detail) for s in failing_lines(text)]
    [('def f(:', 'python line 1: invalid syntax')]
    """
    params = params or SignalParams()
    # the blocks' offsets are in the text with \r\n read as \n: mapped back at the end
    normal = text.replace("\r\n", "\n")
    breaks = [i for i, ch in enumerate(normal) if ch == "\n"]
    crlf = _crlf_positions(text)
    spans = []
    for block, at in located_blocks(text):
        if len(block.body) > params.code_max_chars:
            continue
        failed = _failing_line(block.kind, block.body)
        if failed is None:
            continue
        line, message = failed
        first = bisect.bisect_left(breaks, at)  # line breaks before the body
        start = at if line == 0 else breaks[first + line - 1] + 1
        end = breaks[first + line] if first + line < len(breaks) else len(normal)
        spans.append(
            Span(
                start + bisect.bisect_left(crlf, start),
                end + bisect.bisect_left(crlf, end),
                "code_syntax_error",
                f"{block.kind} line {line + 1}: {message}",
            )
        )
    return spans


def _crlf_positions(text: str) -> list[int]:
    r"""Where each ``\n`` of a ``\r\n`` lands in the text with ``\r\n`` read as ``\n``."""
    out = []
    removed = 0
    at = text.find("\r\n")
    while at != -1:
        out.append(at - removed)
        removed += 1
        at = text.find("\r\n", at + 2)
    return out
