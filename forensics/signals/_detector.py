"""The Detector type, the thresholds detectors share, and small SQL helpers."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence, Set
from dataclasses import asdict, dataclass

import duckdb
import pyarrow as pa
from duckdb.func import FunctionNullHandling, PythonUDFType

from forensics.schema import quote_identifier

__all__ = [
    "Detector",
    "SignalParams",
    "Stages",
    "column_or_null",
    "register_arrow_function",
    "row_by_row",
    "sql_literal",
]

Stages = tuple[tuple[tuple[str, str], ...], ...]
"""Successive projections, each a tuple of ``(column name, SQL expression)``."""


@dataclass(frozen=True)
class SignalParams:
    """Thresholds of the detectors; each is bound as a named SQL parameter."""

    low_eval_threshold: float = 0.5
    """``low_eval`` fires when ``eval_score`` is below this."""
    script_mix_min_run: int = 1
    """Shortest run of foreign-script characters that counts as a mix (1: any stray
    character; corruption seen in incidents inserts runs of 1 to 20)."""
    script_mix_greek_min_run: int = 4
    """Shortest run of Greek letters that counts: shorter runs are math and science
    symbols (α, Δt, λ), not words."""
    script_mix_max_share: float = 0.5
    """A script holding more than this share of the response's letters is one the
    answer is written in on purpose (a translation, or the answer's own language when
    ``prompt_language`` is missing), so its runs are not foreign."""
    code_max_chars: int = 20_000
    """Code blocks longer than this are not parsed (they count as unchecked): the
    parser's time and recursion grow with size, and a real answer's block is shorter."""
    repetition_min_repeats: float = 8.0
    """``repetition`` needs the loop's unit repeated at least this many times."""
    repetition_min_chars: int = 150
    """...and the loop to cover at least this many characters (about 40 tokens: longer
    than a refrain or a ``ha ha ha``, far shorter than a loop that runs to the limit)."""
    repetition_symbol_factor: float = 4.0
    """A unit of ASCII punctuation and spaces only (``-----``, empty table rows) needs
    this many times ``repetition_min_chars``."""
    wrong_language_min_letters: int = 40
    """``wrong_language`` judges only answers whose prose (code removed) holds at
    least this many letters: shorter ones (a name, ``OK``, a number) have no language
    to speak of."""
    wrong_language_min_confidence: float = 0.9
    """The language identifier's probability (normalised over its languages) an
    answer's language needs before it counts as other than the prompt's."""

    def as_parameters(self, sql: str | None = None) -> dict[str, object]:
        """The thresholds as named parameters; only those ``sql`` uses, when given.

        DuckDB refuses parameters a statement does not reference.

        Examples
        --------
        >>> SignalParams().as_parameters("eval_score < $low_eval_threshold")
        {'low_eval_threshold': 0.5}
        """
        values = asdict(self)
        if sql is None:
            return values
        return {k: v for k, v in values.items() if re.search(rf"\${k}\b", sql)}


@dataclass(frozen=True)
class Detector:
    """One symptom detector."""

    name: str
    """Column name of the signal in ``requests``."""
    description: str
    """One line shown in dashboards and reports."""
    requires: tuple[str, ...]
    """Canonical columns it reads; if any is absent from the input the signal is null."""
    sql: Callable[[SignalParams, Set[str]], str]
    """Builds the SQL boolean expression (null where undefined), using ``$param`` names,
    given the parameters and the columns present in the input (a detector may use an
    optional column such as ``prompt_language`` when it is there)."""
    register: Callable[[duckdb.DuckDBPyConnection], None] | None = None
    """Registers Python functions the SQL calls, if any."""
    stages: Callable[[SignalParams, Set[str]], Stages] | None = None
    """Intermediate columns ``sql`` reads, computed once per row in successive
    projections (each stage may read the columns of the stages before it). Names
    start with ``_`` and are dropped from the result. A value several later
    expressions need is computed once this way, and a stage can hand the next a
    null for rows that need no more work."""


def sql_literal(text: str) -> str:
    """Quote a constant of ours (a regex, a language code) as a SQL string literal.

    Examples
    --------
    >>> sql_literal("it's")
    "'it''s'"
    """
    return "'" + text.replace("'", "''") + "'"


def column_or_null(name: str, present: Set[str], dtype: str = "VARCHAR") -> str:
    """The quoted column if the input has it, else a typed NULL.

    Examples
    --------
    >>> column_or_null("prompt_language", {"prompt_language"})
    '"prompt_language"'
    >>> column_or_null("prompt_language", set())
    'CAST(NULL AS VARCHAR)'
    """
    if name in present:
        return quote_identifier(name)
    return f"CAST(NULL AS {dtype})"


def register_arrow_function(
    con: duckdb.DuckDBPyConnection,
    name: str,
    function: Callable[..., pa.Array],
    arguments: Sequence[str],
) -> None:
    """Register a vectorised (Arrow) Python function returning BOOLEAN, replacing one of its name.

    ``null_handling`` is special: the function itself says what a null gives. It has
    no side effects, so DuckDB may run it on any vector in any order.
    """
    with contextlib.suppress(duckdb.InvalidInputException):
        con.remove_function(name)
    con.create_function(
        name,
        function,
        list(arguments),
        "BOOLEAN",
        type=PythonUDFType.ARROW,
        null_handling=FunctionNullHandling.SPECIAL,
        side_effects=False,
    )


def row_by_row(judge: Callable[..., bool | None], *columns: pa.Array) -> pa.Array:
    """``judge`` applied to each row of Arrow columns; null where the first column is null.

    For the few rows a detector's SQL hands to Python: a vector holds those rows only.

    Examples
    --------
    >>> row_by_row(lambda t, n: len(t) > n, pa.array(["ab", None]), pa.array([1, 1])).to_pylist()
    [True, None]
    """
    out: list[bool | None] = [
        None if row[0] is None else judge(*row)
        for row in zip(*(c.to_pylist() for c in columns), strict=True)
    ]
    return pa.array(out, pa.bool_())
