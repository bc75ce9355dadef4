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
too (``schema.UserSignal``), and then count towards ``degraded``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import duckdb
import polars as pl

from forensics.schema import UserSignal, quote_identifier
from forensics.signals import (
    argmax_violation,
    code_syntax_error,
    low_eval,
    negative_feedback,
    script_mix,
)
from forensics.signals._detector import Detector, SignalParams

__all__ = [
    "DEGRADED",
    "DETECTORS",
    "Detector",
    "SignalParams",
    "degraded_expression",
    "detect",
    "register_functions",
    "signal_expressions",
    "signals_relation",
    "user_signal_expression",
    "user_signal_parameter",
    "user_signal_parameters",
]

DETECTORS: tuple[Detector, ...] = (
    script_mix.DETECTOR,
    code_syntax_error.DETECTOR,
    argmax_violation.DETECTOR,
    negative_feedback.DETECTOR,
    low_eval.DETECTOR,
)
"""Every built-in detector, in the order their columns appear."""

DEGRADED = "degraded"
"""Name of the combined signal: any other signal true."""


def register_functions(con: duckdb.DuckDBPyConnection) -> None:
    """Register the Python functions detectors need on a connection (idempotent)."""
    for detector in DETECTORS:
        if detector.register is not None:
            detector.register(con)


def user_signal_parameter(signal: UserSignal) -> str:
    """Name of the bound parameter that holds a user signal's ``value``.

    Derived from the signal's name (any text), so it is a valid, stable parameter name.

    Examples
    --------
    >>> user_signal_parameter(UserSignal("slow", "latency_ms", ">", 3e4))
    'user_signal_5e0cf7bd1dfa3831'
    """
    return "user_signal_" + hashlib.sha256(signal.name.encode()).hexdigest()[:16]


def user_signal_parameters(
    signals: Sequence[UserSignal], sql: str | None = None
) -> dict[str, float]:
    """The values of user signals as named parameters; only those ``sql`` uses, when given.

    Examples
    --------
    >>> user_signal_parameters([UserSignal("slow", "latency_ms", ">", 3e4)])
    {'user_signal_5e0cf7bd1dfa3831': 30000.0}
    """
    out = {user_signal_parameter(s): s.value for s in signals if s.value is not None}
    if sql is not None:
        out = {k: v for k, v in out.items() if re.search(rf"\${k}\b", sql)}
    return out


def user_signal_expression(signal: UserSignal) -> str:
    """SQL for a user-declared signal: a boolean column, or a comparison on a numeric one.

    The value is a bound parameter (``user_signal_parameters``): nothing of a mapping
    file is pasted into SQL but quoted identifiers and an operator from a fixed list.

    Examples
    --------
    >>> user_signal_expression(UserSignal("slow", "latency_ms", ">", 3e4))
    'CAST("latency_ms" AS DOUBLE) > $user_signal_5e0cf7bd1dfa3831'
    >>> user_signal_expression(UserSignal("flagged", "flag"))
    'CAST("flag" AS BOOLEAN)'
    """
    col = quote_identifier(signal.column)
    if signal.op is None:
        return f"CAST({col} AS BOOLEAN)"
    op = "=" if signal.op == "==" else signal.op
    return f"CAST({col} AS DOUBLE) {op} ${user_signal_parameter(signal)}"


def signal_expressions(
    available: Sequence[str],
    *,
    params: SignalParams | None = None,
    user_signals: Sequence[UserSignal] = (),
) -> list[tuple[str, str]]:
    """Return ``(name, sql)`` for each built-in and user signal, given the columns present.

    A detector whose inputs are absent yields ``NULL``. The expressions use the
    named parameters of ``params.as_parameters()``; bind them when executing.
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
    lowered = {c.lower() for c in present}
    for signal in user_signals:
        expr = (
            user_signal_expression(signal)
            if signal.column.lower() in lowered
            else "CAST(NULL AS BOOLEAN)"
        )
        out.append((signal.name, expr))
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
    available: Sequence[str],
    *,
    params: SignalParams | None = None,
    user_signals: Sequence[UserSignal] = (),
) -> str:
    """SQL selecting every column of ``source`` plus one column per signal (not ``degraded``).

    ``source`` is what follows ``FROM``: a table or view name, or ``(SELECT ...)``. Detectors'
    intermediate columns (``Detector.stages``) are computed in projections between
    ``source`` and the signals, once per row, and are not in the result. This is
    the statement ingest inserts from; bind ``params.as_parameters(sql)`` and
    ``user_signal_parameters(user_signals, sql)``.

    Examples
    --------
    >>> sql = signals_relation("(SELECT 0.25::DOUBLE AS eval_score)", ["eval_score"])
    >>> duckdb.connect().execute(sql, SignalParams().as_parameters(sql)).fetchall()
    [(0.25, None, None, None, None, True)]
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
        for name, sql in signal_expressions(available, params=params, user_signals=user_signals)
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
        names = [
            name
            for name, _ in signal_expressions(
                frame.columns, params=params, user_signals=user_signals
            )
        ]
        inner = signals_relation("frame", frame.columns, params=params, user_signals=user_signals)
        query = f"SELECT *, {degraded_expression(names)} AS {DEGRADED} FROM ({inner})"
        bound = {**params.as_parameters(query), **user_signal_parameters(user_signals, query)}
        return con.sql(query, params=bound).pl()
    finally:
        con.close()
