"""The Detector type, the thresholds detectors share, and small SQL helpers."""

from __future__ import annotations

import contextlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence, Set
from dataclasses import asdict, dataclass

import duckdb
import pyarrow as pa
from duckdb.func import FunctionNullHandling, PythonUDFType

from forensics.schema import quote_identifier

__all__ = [
    "Detector",
    "SignalParams",
    "Stages",
    "VerdictMemo",
    "column_or_null",
    "once_per_distinct",
    "register_arrow_function",
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


class VerdictMemo:
    """Verdicts of a Python step by input, the least recently used forgotten first.

    Bounded by the characters of the inputs it holds (``max_chars``), not by their
    number: an input longer than ``max_entry_chars`` is never kept. Safe to share
    between DuckDB's threads.

    Examples
    --------
    >>> memo = VerdictMemo(max_chars=10, max_entry_chars=8)
    >>> memo.put(("abcd", None), True); memo.put(("efgh", "x"), False)
    >>> memo.get(("abcd", None)), memo.get(("efgh", "x")), len(memo)
    (True, False, 2)
    >>> memo.put(("ijkl",), None)  # over 10 characters: the least recent goes
    >>> memo.get(("abcd", None), "gone"), len(memo), memo.chars
    ('gone', 2, 9)
    """

    def __init__(self, max_chars: int, max_entry_chars: int) -> None:
        self.max_chars = max_chars
        self.max_entry_chars = max_entry_chars
        self.chars = 0
        self._entries: OrderedDict[tuple[Hashable, ...], tuple[object, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[Hashable, ...], default: object = None) -> object:
        """The verdict remembered for ``key``, else ``default``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return default
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: tuple[Hashable, ...], verdict: object) -> None:
        """Remember ``verdict`` for ``key`` (unless its strings are too long to keep)."""
        size = sum(len(part) for part in key if isinstance(part, str))
        if size > self.max_entry_chars:
            return
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = (verdict, size)
            self.chars += size
            while self.chars > self.max_chars:
                _, (_, gone) = self._entries.popitem(last=False)
                self.chars -= gone

    def clear(self) -> None:
        """Forget every verdict."""
        with self._lock:
            self._entries.clear()
            self.chars = 0


_UNSEEN = object()


def once_per_distinct(
    judge: Callable[..., bool | None], memo: VerdictMemo, *columns: pa.Array
) -> pa.Array:
    """``judge`` applied to each row of Arrow columns, once per distinct row; null where the first column is null.

    For the rows a detector's SQL hands to Python, a vector at a time.

    Within the vector a row seen before takes its verdict; across vectors ``memo``
    remembers them. ``judge`` must depend on its arguments alone (a pure function):
    then this changes no result, and logs that repeat an answer (retries, templates,
    cached answers) pay for it once.

    Examples
    --------
    >>> calls = []
    >>> judge = lambda t, n: calls.append(t) or len(t) > n
    >>> memo = VerdictMemo(max_chars=100, max_entry_chars=100)
    >>> once_per_distinct(judge, memo, pa.array(["ab", "ab", None, "a"]), pa.array([1] * 4)).to_pylist()
    [True, True, None, False]
    >>> once_per_distinct(judge, memo, pa.array(["a", "ab"]), pa.array([1, 1])).to_pylist(), calls
    ([False, True], ['ab', 'a'])
    """
    seen: dict[tuple[Hashable, ...], bool | None] = {}
    out: list[bool | None] = []
    append, recall = out.append, seen.get
    for row in zip(*(c.to_pylist() for c in columns), strict=True):
        if row[0] is None:
            append(None)
            continue
        verdict = recall(row, _UNSEEN)
        if verdict is _UNSEEN:
            verdict = memo.get(row, _UNSEEN)
            if verdict is _UNSEEN:
                verdict = judge(*row)
                memo.put(row, verdict)
            seen[row] = verdict  # type: ignore[assignment]
        append(verdict)  # type: ignore[arg-type]
    return pa.array(out, pa.bool_())
