"""User-declared signals: resolve the columns an expression reads, check its types, compile it.

Both forms of ``[signals.NAME]`` end here: ``expr = "..."`` is parsed by
``forensics.expression``; ``column``/``op``/``value`` becomes the tree of
``column op value`` (or of ``column`` alone). The compiled SQL holds only
quoted column names, fixed operator and function words, and bound parameters
(``$user_signal_<hash>_<i>``, one per literal): nothing the user wrote is pasted
into it.

Kinds. A column is a *number* (any integer or floating type), *text*
(VARCHAR), *true/false* (BOOLEAN), a *time* or *other* (lists, structs). A
column is read as the kind its place needs when its values allow it: true/false
as 1/0 where a number is needed, a number as true/false (0 is false) where a
condition is, and text holding numbers or true/false as those (the values are
checked per file before anything is written: ``CompiledSignal.coerced``).
Anything else that mixes kinds is an error naming the side that does not fit.
Arithmetic is in floating point (no overflow: a result too large is infinite,
``x / 0`` is infinite or NaN).

Names. A name is looked up without letter case: a canonical column (null where
a file lacks it), else a column of the data. A user's column whose name
forensics uses itself (a signal's, ``_...``) is kept as ``<name>_input``; a
name in an expression always means the user's column, so it reads the kept one.
A name that is not a column is an error listing the close ones, when some are
close (a typo); otherwise the signal is null until a file has that column.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal as TypingLiteral

from forensics.errors import ConfigError, ExpressionError
from forensics.expression import (
    Between,
    Binary,
    Call,
    Compare,
    Expr,
    InList,
    IsNull,
    Literal,
    Name,
    Unary,
    names,
    render,
)
from forensics.schema import (
    CANONICAL_COLUMNS,
    INTERNAL_PREFIX,
    UserSignal,
    column,
    quote_identifier,
)

__all__ = [
    "Coercion",
    "CompiledSignal",
    "ReadableColumns",
    "compile_signal",
    "kind_of",
    "signal_parameter_prefix",
]

Kind = TypingLiteral["number", "text", "boolean", "time", "other", "null"]

_NUMERIC = (
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
    "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "REAL",
)  # fmt: skip

_RETURNS: dict[str, Kind] = {"len": "number", "lower": "text", "contains": "boolean"}
"""What each function gives."""

_SAY = {
    "number": "a number",
    "text": "text",
    "boolean": "true/false",
    "time": "a time",
    "other": "a list or structure",
    "null": "null",
}


def kind_of(dtype: str) -> Kind:
    """The kind of a DuckDB type, as expressions see it.

    Examples
    --------
    >>> kind_of("BIGINT"), kind_of("VARCHAR"), kind_of("DECIMAL(18,3)"), kind_of("INTEGER[]")
    ('number', 'text', 'number', 'other')
    """
    upper = dtype.upper()
    if upper in _NUMERIC or upper.startswith("DECIMAL"):
        return "number"
    if upper == "VARCHAR" or upper.startswith("VARCHAR("):
        return "text"
    if upper == "BOOLEAN":
        return "boolean"
    if upper.startswith(("TIMESTAMP", "DATE", "TIME")):
        return "time"
    return "other"


@dataclass(frozen=True)
class ReadableColumns:
    """The columns an expression can read in one relation.

    ``present`` maps each column of the relation to its DuckDB type; ``kept``
    maps a user's column name (lower case) to the name it is kept under when it
    clashes with one of forensics' (``latency`` stays ``latency``; ``truncated``
    becomes ``truncated_input``); ``reserved`` holds the names (lower case) that
    are forensics' own columns there (signals, provenance), never read.
    """

    present: Mapping[str, str]
    """Column -> DuckDB type, in the relation."""
    kept: Mapping[str, str] = field(default_factory=dict)
    """User's column name (lower case) -> the column it is kept as."""
    reserved: frozenset[str] = frozenset()
    """Names (lower case) of forensics' own columns in the relation."""

    def resolve(self, name: str) -> tuple[str, str, str] | None:
        """``(stored name, DuckDB type, SQL)`` of a name, or None when no column has it.

        Examples
        --------
        >>> cols = ReadableColumns({"latency_ms": "BIGINT", "truncated": "BOOLEAN",
        ...     "truncated_input": "BOOLEAN"}, reserved=frozenset({"truncated"}))
        >>> cols.resolve("Latency_MS")
        ('latency_ms', 'BIGINT', '"latency_ms"')
        >>> cols.resolve("truncated")[0], cols.resolve("max_tokens")[2]
        ('truncated_input', 'CAST(NULL AS BIGINT)')
        """
        lower = name.lower()
        by_lower = {c.lower(): c for c in self.present}
        if lower in self.kept and self.kept[lower].lower() in by_lower:
            stored = by_lower[self.kept[lower].lower()]
            return stored, self.present[stored], quote_identifier(stored)
        if lower in self.reserved or lower.startswith(INTERNAL_PREFIX):
            aside = f"{lower.lstrip(INTERNAL_PREFIX) or 'column'}_input"
            if aside in by_lower:
                stored = by_lower[aside]
                return stored, self.present[stored], quote_identifier(stored)
            return None
        canonical = column(lower)
        if canonical is not None:
            if canonical.name in self.present:
                return (
                    canonical.name,
                    self.present[canonical.name],
                    quote_identifier(canonical.name),
                )
            return canonical.name, canonical.dtype, f"CAST(NULL AS {canonical.dtype})"
        if lower in by_lower:
            stored = by_lower[lower]
            return stored, self.present[stored], quote_identifier(stored)
        return None

    def known(self) -> list[str]:
        """Names an expression can read here (for suggestions)."""
        names = {c.name for c in CANONICAL_COLUMNS}
        names |= {
            c
            for c in self.present
            if c.lower() not in self.reserved and not c.startswith(INTERNAL_PREFIX)
        }
        names |= set(self.kept)
        return sorted(names)


@dataclass(frozen=True)
class Coercion:
    """A text column read as a number or as true/false: its values must allow it."""

    column: str
    """The stored column."""
    wanted: TypingLiteral["number", "boolean"]
    """How it is read."""
    name: Name
    """Where the expression names it."""


@dataclass(frozen=True)
class CompiledSignal:
    """A user signal as SQL over one relation."""

    sql: str
    """A boolean SQL expression (null where undetermined)."""
    params: dict[str, object]
    """Its bound parameters."""
    inputs: tuple[str, ...]
    """The stored columns it reads, each once, in order."""
    coerced: tuple[Coercion, ...] = ()
    """Text columns it reads as numbers or true/false (check their values first)."""
    missing: tuple[str, ...] = ()
    """Names no column has yet: the signal is null (``sql`` is a typed null)."""


def signal_parameter_prefix(signal: UserSignal) -> str:
    """The prefix of a signal's parameter names, from its name (any text).

    Examples
    --------
    >>> signal_parameter_prefix(UserSignal("slow", "latency_ms", ">", 3e4))
    'user_signal_5e0cf7bd1dfa3831'
    """
    return "user_signal_" + hashlib.sha256(signal.name.encode()).hexdigest()[:16]


class _Compiler:
    def __init__(
        self, signal: UserSignal, columns: ReadableColumns, fail: Callable[[int, str], Exception]
    ) -> None:
        self.signal = signal
        self.columns = columns
        self.fail = fail
        self.text = signal.expression
        self.params: dict[str, object] = {}
        self.inputs: dict[str, None] = {}
        self.coerced: list[Coercion] = []
        self.prefix = signal_parameter_prefix(signal)

    def source(self, node: Expr) -> str:
        return self.text[node.pos - 1 : node.end] if self.signal.expr is not None else render(node)

    def param(self, value: object, dtype: str) -> str:
        name = f"{self.prefix}_{len(self.params)}"
        self.params[name] = value
        return f"CAST(${name} AS {dtype})"

    def kind(self, node: Expr) -> Kind:
        """The kind a node has on its own (columns: their type's)."""
        if isinstance(node, Literal):
            value = node.value
            if value is None:
                return "null"
            if isinstance(value, bool):
                return "boolean"
            return "number" if isinstance(value, float) else "text"
        if isinstance(node, Name):
            resolved = self.columns.resolve(node.name)
            assert resolved is not None  # names were checked before
            return kind_of(resolved[1])
        if isinstance(node, Unary):
            return "boolean" if node.op == "not" else "number"
        if isinstance(node, Binary):
            return "boolean" if node.op in ("and", "or") else "number"
        if isinstance(node, Call):
            return _RETURNS[node.function]
        return "boolean"

    def as_kind(self, node: Expr, wanted: Kind, role: str) -> str:
        """SQL of ``node`` read as ``wanted``; an error naming ``role`` when it cannot be."""
        have = self.kind(node)
        if have == "null":
            dtype = {"number": "DOUBLE", "text": "VARCHAR", "boolean": "BOOLEAN"}[wanted]
            return f"CAST(NULL AS {dtype})"
        if isinstance(node, Name):
            return self.column_as(node, wanted, role)
        if have != wanted:
            hint = " (compare it, e.g. `... > 0`)" if wanted == "boolean" else ""
            raise self.fail(
                node.pos,
                f"{role} must be {_SAY[wanted]}, but {self.source(node)} is {_SAY[have]}{hint}",
            )
        return self.sql(node)

    def column_as(self, node: Name, wanted: Kind, role: str) -> str:
        resolved = self.columns.resolve(node.name)
        assert resolved is not None
        stored, dtype, sql = resolved
        self.inputs[stored] = None
        have = kind_of(dtype)
        if have == wanted:
            return sql
        if wanted == "number" and have == "boolean":
            return f"CAST({sql} AS DOUBLE)"
        if wanted == "boolean" and have == "number":
            return f"CAST({sql} AS BOOLEAN)"
        if have == "text" and wanted in ("number", "boolean"):
            if stored in self.columns.present:  # an absent column is null: nothing to check
                self.coerced.append(Coercion(stored, wanted, node))
            return f"TRY_CAST({sql} AS {'DOUBLE' if wanted == 'number' else 'BOOLEAN'})"
        raise self.fail(
            node.pos,
            f"{role} must be {_SAY[wanted]}, but column {node.name} holds {_SAY[have]} ({dtype})",
        )

    def sql(self, node: Expr) -> str:
        if isinstance(node, Literal):
            value = node.value
            if value is None:
                return "NULL"
            if isinstance(value, bool):
                return "true" if value else "false"
            if isinstance(value, float):
                return self.param(value, "DOUBLE")
            return self.param(value, "VARCHAR")
        if isinstance(node, Name):
            resolved = self.columns.resolve(node.name)
            assert resolved is not None
            self.inputs[resolved[0]] = None
            return resolved[2]
        if isinstance(node, Unary):
            if node.op == "not":
                return f"(NOT {self.as_kind(node.operand, 'boolean', 'what not negates')})"
            return f"(- {self.as_kind(node.operand, 'number', 'what - negates')})"
        if isinstance(node, Binary):
            if node.op in ("and", "or"):
                left = self.as_kind(node.left, "boolean", f"the left side of {node.op}")
                right = self.as_kind(node.right, "boolean", f"the right side of {node.op}")
                return f"({left} {node.op.upper()} {right})"
            left = self.as_kind(node.left, "number", f"the left side of {node.op}")
            right = self.as_kind(node.right, "number", f"the right side of {node.op}")
            return f"({left} {node.op} {right})"
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, IsNull):
            inner = self.sql(node.operand)
            return f"({inner} IS {'NOT ' if node.negated else ''}NULL)"
        if isinstance(node, InList):
            return self.in_list(node)
        if isinstance(node, Between):
            operand = self.as_kind(node.operand, "number", "what between tests")
            low = self.as_kind(node.low, "number", "the lower end of between")
            high = self.as_kind(node.high, "number", "the upper end of between")
            word = "NOT BETWEEN" if node.negated else "BETWEEN"
            return f"({operand} {word} {low} AND {high})"
        assert isinstance(node, Call)
        if node.function == "len":
            return f"CAST(length({self.as_kind(node.args[0], 'text', 'what len() measures')}) AS DOUBLE)"
        if node.function == "lower":
            return f"lower({self.as_kind(node.args[0], 'text', 'what lower() reads')})"
        text = self.as_kind(node.args[0], "text", "the text contains() searches")
        part = self.as_kind(node.args[1], "text", "what contains() looks for")
        return f"contains({text}, {part})"

    def compare(self, node: Compare) -> str:
        left_kind, right_kind = self.kind(node.left), self.kind(node.right)
        wanted = self._compared_kind(node, left_kind, right_kind)
        if wanted in ("time", "other"):
            side = node.left if left_kind == wanted else node.right
            raise self.fail(
                side.pos,
                f"{self.source(side)} is {_SAY[wanted]}; expressions compare numbers, text "
                "and true/false only",
            )
        if wanted == "boolean" and node.op not in ("==", "!="):
            raise self.fail(
                node.op_pos, f"true/false values are compared with == or != only, not {node.op}"
            )
        left = self.as_kind(node.left, wanted, f"the left side of {node.op}")
        right = self.as_kind(node.right, wanted, f"the right side of {node.op}")
        op = "=" if node.op == "==" else "<>" if node.op == "!=" else node.op
        return f"({left} {op} {right})"

    def _compared_kind(self, node: Compare, left: Kind, right: Kind) -> Kind:
        """The kind both sides are read as; an error naming the side that does not fit."""
        if left == right or "null" in (left, right):
            return left if left != "null" else right if right != "null" else "number"
        if {left, right} == {"number", "boolean"}:
            return "number"
        for col, col_kind, other_kind in (
            (node.left, left, right),
            (node.right, right, left),
        ):
            if isinstance(col, Name) and col_kind == "text" and other_kind in ("number", "boolean"):
                return other_kind  # text holding numbers (or true/false): values checked per file
        # Blame the side that is not a column (a column's kind is a fact of the data).
        bad_side = "right"
        if isinstance(node.right, Name) and not isinstance(node.left, Name):
            bad_side = "left"
        bad, good = (node.right, node.left) if bad_side == "right" else (node.left, node.right)
        bad_kind, good_kind = (right, left) if bad_side == "right" else (left, right)
        raise self.fail(
            bad.pos,
            f"{node.op} compares {self._what(good)} ({_SAY[good_kind]}) with {self._what(bad)} "
            f"({_SAY[bad_kind]}): the {bad_side} side must be {_SAY[good_kind]} too",
        )

    def _what(self, node: Expr) -> str:
        return f"column {node.name}" if isinstance(node, Name) else self.source(node)

    def in_list(self, node: InList) -> str:
        wanted = self.kind(node.items[0])
        for item in node.items[1:]:
            if self.kind(item) != wanted:
                raise self.fail(
                    item.pos,
                    f"the values of a list must all be numbers or all text; {self.source(item)} "
                    f"is {_SAY[self.kind(item)]} after {_SAY[wanted]}",
                )
        operand = self.as_kind(node.operand, wanted, "what in tests")
        dtype = "DOUBLE" if wanted == "number" else "VARCHAR"
        items = ", ".join(self.param(i.value, dtype) for i in node.items)
        return f"({operand} {'NOT ' if node.negated else ''}IN ({items}))"


def compile_signal(
    signal: UserSignal,
    columns: ReadableColumns,
    *,
    where: str = "mapping",
    suggest: bool = True,
) -> CompiledSignal:
    """Compile a user signal for a relation whose columns are ``columns``.

    Raises ``ExpressionError`` (a ``ConfigError``) for kinds that do not fit and,
    with ``suggest``, for a name that is not a column but is close to one (a
    typo); any other name no column has leaves the signal null (``missing``).

    Examples
    --------
    >>> cols = ReadableColumns({"latency_ms": "BIGINT", "finish_reason": "VARCHAR"})
    >>> out = compile_signal(UserSignal("s", expr="finish_reason == 'length' or latency_ms > 3e4"), cols)
    >>> out.sql
    '(("finish_reason" = CAST($user_signal_043a718774c572bd_0 AS VARCHAR)) OR ("latency_ms" > CAST($user_signal_043a718774c572bd_1 AS DOUBLE)))'
    >>> list(out.params.values()), out.inputs
    (['length', 30000.0], ('finish_reason', 'latency_ms'))
    >>> compile_signal(UserSignal("s", expr="latncy_ms > 1"), cols)
    Traceback (most recent call last):
    ...
    forensics.errors.ExpressionError: mapping: [signals.s] expr "latncy_ms > 1": position 1: latncy_ms is not a column; close: latency_ms
    """
    tree = signal.tree(where=where)

    def fail(position: int, problem: str) -> Exception:
        if signal.expr is None:
            return ConfigError(
                f"{where}: [signals.{signal.name}] column = {signal.column!r}: {problem}"
            )
        return ExpressionError.at(where, signal.name, signal.expression, position, problem)

    missing: list[str] = []
    known = columns.known()
    for name in names(tree):
        if columns.resolve(name.name) is not None:
            continue
        close = difflib.get_close_matches(name.name, known, n=3, cutoff=0.75)
        close += [k for k in known if k.lower() == name.name.lower() and k not in close]
        if name.name.lower() in columns.reserved and suggest:
            raise fail(
                name.pos,
                f"{name.name} is a signal, and a signal reads the data's columns only"
                + (f"; close: {', '.join(close)}" if close else ""),
            )
        if close and suggest:
            raise fail(name.pos, f"{name.name} is not a column; close: {', '.join(close)}")
        missing.append(name.name)
    if missing:
        return CompiledSignal("CAST(NULL AS BOOLEAN)", {}, (), (), tuple(dict.fromkeys(missing)))
    compiler = _Compiler(signal, columns, fail)
    sql = compiler.as_kind(tree, "boolean", "the signal")
    return CompiledSignal(sql, compiler.params, tuple(compiler.inputs), tuple(compiler.coerced))
