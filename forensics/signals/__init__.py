"""Symptom signals: one detector per module, and the registry every other step reads.

A detector turns canonical columns of one request into a boolean symptom, null
where the input it needs is absent. Each detector is a SQL expression that
DuckDB evaluates inside the ingest statement (vectorised, no Python per row),
optionally over intermediate columns it computes once per row in projections
before it (``Detector.stages``; ``signals_relation`` assembles the statement);
a detector that needs Python (parsing a code block) registers a vectorised UDF
that only looks at the rows that need it.

Adding a detector touches two files: its own module, and ``DETECTORS`` below.
``degraded`` is any signal true; columns of the user's can be declared signals
too (``schema.UserSignal``, compiled by ``signals.user``), and then count towards
``degraded``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import duckdb
import polars as pl

from forensics.schema import UserSignal, column, quote_identifier
from forensics.signals import (
    argmax_violation,
    code_syntax_error,
    empty_response,
    low_eval,
    negative_feedback,
    repetition,
    script_mix,
    truncated,
    wrong_language,
)
from forensics.signals._detector import Detector, SignalParams
from forensics.signals.user import ReadableColumns, compile_signal

__all__ = [
    "DEGRADED",
    "DETECTORS",
    "Detector",
    "ReadableColumns",
    "SignalParams",
    "degraded_expression",
    "detect",
    "forget_verdicts",
    "readable_columns",
    "register_functions",
    "signal_expressions",
    "signals_relation",
    "user_signal_expression",
    "user_signal_parameters",
]

DETECTORS: tuple[Detector, ...] = (
    script_mix.DETECTOR,
    code_syntax_error.DETECTOR,
    argmax_violation.DETECTOR,
    negative_feedback.DETECTOR,
    low_eval.DETECTOR,
    repetition.DETECTOR,
    empty_response.DETECTOR,
    truncated.DETECTOR,
    wrong_language.DETECTOR,
)
"""Every built-in detector, in the order their columns appear."""

DEGRADED = "degraded"
"""Name of the combined signal: any other signal true."""


def register_functions(con: duckdb.DuckDBPyConnection) -> None:
    """Register the Python functions detectors need on a connection (idempotent)."""
    for detector in DETECTORS:
        if detector.register is not None:
            detector.register(con)


def forget_verdicts() -> None:
    """Forget the verdicts the Python steps remember (a benchmark's cold start).

    They change no result: ``code_syntax_error``'s parsed blocks and texts,
    ``repetition``'s and ``wrong_language``'s judged inputs.
    """
    code_syntax_error.forget()
    repetition.MEMO.clear()
    wrong_language.MEMO.clear()


def readable_columns(
    available: Sequence[str] | Mapping[str, str],
    *,
    kept: Mapping[str, str] | None = None,
    signals: Sequence[str] = (),
) -> ReadableColumns:
    """The columns user signals can read in a relation with ``available`` columns.

    ``available`` maps names to DuckDB types, or lists names (a canonical column
    gets its schema type, any other VARCHAR). Built-in signal names, ``degraded``
    and ``signals`` are forensics' own columns there, never read.
    """
    if isinstance(available, Mapping):
        types = dict(available)
    else:
        types = {}
        for name in available:
            canonical = column(name)
            types[name] = canonical.dtype if canonical is not None else "VARCHAR"
    reserved = {d.name.lower() for d in DETECTORS} | {DEGRADED} | {s.lower() for s in signals}
    return ReadableColumns(types, kept=dict(kept or {}), reserved=frozenset(reserved))


def user_signal_expression(signal: UserSignal, columns: ReadableColumns) -> str:
    """SQL for a user-declared signal over a relation with ``columns`` (see ``signals.user``).

    Nothing of the declaration is pasted into the SQL but quoted column names:
    every value is a bound parameter (``user_signal_parameters``).

    Examples
    --------
    >>> cols = readable_columns({"latency_ms": "BIGINT", "flag": "BOOLEAN"})
    >>> user_signal_expression(UserSignal("slow", "latency_ms", ">", 3e4), cols)
    '("latency_ms" > CAST($user_signal_5e0cf7bd1dfa3831_0 AS DOUBLE))'
    >>> user_signal_expression(UserSignal("flagged", "flag"), cols)
    '"flag"'
    """
    return compile_signal(signal, columns, suggest=False).sql


def user_signal_parameters(
    signals: Sequence[UserSignal], columns: ReadableColumns, sql: str | None = None
) -> dict[str, object]:
    """The values of user signals as named parameters; only those ``sql`` uses, when given.

    Examples
    --------
    >>> cols = readable_columns({"latency_ms": "BIGINT"})
    >>> user_signal_parameters([UserSignal("slow", "latency_ms", ">", 3e4)], cols)
    {'user_signal_5e0cf7bd1dfa3831_0': 30000.0}
    """
    out: dict[str, object] = {}
    for signal in signals:
        out |= compile_signal(signal, columns, suggest=False).params
    if sql is not None:
        out = {k: v for k, v in out.items() if re.search(rf"\${k}\b", sql)}
    return out


def signal_expressions(
    available: Sequence[str] | Mapping[str, str],
    *,
    params: SignalParams | None = None,
    user_signals: Sequence[UserSignal] = (),
    columns: ReadableColumns | None = None,
) -> list[tuple[str, str]]:
    """Return ``(name, sql)`` for each built-in and user signal, given the columns present.

    A detector whose inputs are absent yields ``NULL``. The expressions use the
    named parameters of ``params.as_parameters()`` and, for user signals, of
    ``user_signal_parameters``; bind them when executing. ``columns`` says what
    user signals can read (default: ``readable_columns(available)``).
    ``degraded`` is not included: see ``degraded_expression``.
    """
    params = params or SignalParams()
    present = set(available)
    out = []
    for detector in DETECTORS:
        if all(c in present for c in detector.requires):
            out.append((detector.name, detector.sql(params, present)))
        else:
            out.append((detector.name, "CAST(NULL AS BOOLEAN)"))
    readable = columns or readable_columns(available, signals=[s.name for s in user_signals])
    for signal in user_signals:
        out.append((signal.name, user_signal_expression(signal, readable)))
    return out


def degraded_expression(names: Sequence[str]) -> str:
    """SQL for ``degraded``: true if any signal is true, null if all are null, else false.

    Examples
    --------
    >>> degraded_expression(["a", "b"])
    'CASE WHEN coalesce("a", false) OR coalesce("b", false) THEN true WHEN "a" IS NULL AND "b" IS NULL THEN NULL ELSE false END'
    """
    quoted = [quote_identifier(n) for n in names]
    any_true = " OR ".join(f"coalesce({q}, false)" for q in quoted)
    all_null = " AND ".join(f"{q} IS NULL" for q in quoted)
    return f"CASE WHEN {any_true} THEN true WHEN {all_null} THEN NULL ELSE false END"


def signals_relation(
    source: str,
    available: Sequence[str] | Mapping[str, str],
    *,
    params: SignalParams | None = None,
    user_signals: Sequence[UserSignal] = (),
    columns: ReadableColumns | None = None,
) -> str:
    """SQL selecting every column of ``source`` plus one column per signal (not ``degraded``).

    ``source`` is what follows ``FROM``: a table or view name, or ``(SELECT ...)``. Detectors'
    intermediate columns (``Detector.stages``) are computed in projections between
    ``source`` and the signals, once per row, and are not in the result. This is
    the statement ingest inserts from; bind ``params.as_parameters(sql)`` and
    ``user_signal_parameters(user_signals, columns, sql)``.

    Examples
    --------
    >>> sql = signals_relation("(SELECT 0.25::DOUBLE AS eval_score)", ["eval_score"])
    >>> duckdb.connect().execute(sql, SignalParams().as_parameters(sql)).fetchall()
    [(0.25, None, None, None, None, True, None, None, None, None)]
    """
    params = params or SignalParams()
    present = set(available)
    relation = f"SELECT * FROM {source}"
    intermediate: list[str] = []
    for detector in DETECTORS:
        if detector.stages is None:
            continue
        if not all(c in present for c in detector.requires):
            continue
        for stage in detector.stages(params, present):
            cols = ", ".join(f"{sql} AS {quote_identifier(name)}" for name, sql in stage)
            relation = f"SELECT *, {cols} FROM ({relation})"
            intermediate += [name for name, _ in stage]
    items = ", ".join(
        f"{sql} AS {quote_identifier(name)}"
        for name, sql in signal_expressions(
            available, params=params, user_signals=user_signals, columns=columns
        )
    )
    if intermediate:
        excluded = ", ".join(quote_identifier(n) for n in intermediate)
        return f"SELECT * EXCLUDE ({excluded}), {items} FROM ({relation})"
    return f"SELECT *, {items} FROM ({relation})"


def detect(
    frame: pl.DataFrame,
    *,
    params: SignalParams | None = None,
    user_signals: Sequence[UserSignal] = (),
) -> pl.DataFrame:
    """Compute every signal for the rows of a Polars frame, in an in-memory DuckDB.

    Uses exactly the SQL that ingest uses (``signals_relation``). Returns
    ``frame`` with one boolean column per signal plus ``degraded``.

    Examples
    --------
    >>> out = detect(pl.DataFrame({"temperature": [0.0, 0.0, 0.7], "max_token_rank": [1, 3, 3]}))
    >>> out["argmax_violation"].to_list()
    [False, True, None]
    """
    params = params or SignalParams()
    con = duckdb.connect()
    try:
        register_functions(con)
        con.register("frame", frame)
        types = dict(
            con.execute("SELECT column_name, column_type FROM (DESCRIBE frame)").fetchall()
        )
        columns = readable_columns(types, signals=[s.name for s in user_signals])
        for signal in user_signals:
            compile_signal(signal, columns, where="detect")  # a typo or a kind mismatch: say so
        names = [
            name
            for name, _ in signal_expressions(
                types, params=params, user_signals=user_signals, columns=columns
            )
        ]
        inner = signals_relation(
            "frame", types, params=params, user_signals=user_signals, columns=columns
        )
        query = f"SELECT *, {degraded_expression(names)} AS {DEGRADED} FROM ({inner})"
        bound = {
            **params.as_parameters(query),
            **user_signal_parameters(user_signals, columns, query),
        }
        return con.sql(query, params=bound).pl()
    finally:
        con.close()
