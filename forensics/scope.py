"""Change events' scopes: which requests an event touched, and whether a slice can hold them.

An event's ``scope`` is text, ``key=value; key=value``: parts separated by
``;``, several values of one key by ``,`` (``model=big-2.1,big-2``), and a
numeric key may read ``key>=x`` or ``key<x`` (``batch_size>=64``). Keys are
column names (letter case aside); values are compared as text, or as numbers
against a numeric condition. A part that says none of this (no ``=``, ``>=`` or
``<``, or an empty key) cannot be checked and is ignored: it is kept in
``Scope.unread`` so that a caller can show it.

A slice (a signature's predicate: column -> list of values, or
``{"gte": x, "lt": y}``) is **compatible** with a scope when, on every column
both constrain, they meet: a list shares a value with the scope's values; a
range holds one of the scope's numeric values, or overlaps the scope's bounds.
A column only one of them constrains never conflicts (the slice holds every
value of a column it leaves free, the scope's among them), so an empty scope (a
change everywhere) is compatible with every slice. An event scoped
``model=big-1`` is not compatible with a slice of ``model in {small-2}``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Scope", "parse_scope", "scope_conflicts", "scope_matches"]

_PART = re.compile(r"^\s*([^=<>]+?)\s*(>=|<|=)\s*(.*?)\s*$", re.S)


@dataclass(frozen=True)
class Scope:
    """An event's scope, read from its text.

    Examples
    --------
    >>> parse_scope("platform=tpu; model=big-2.1,big-2; batch_size>=64").values
    {'platform': ('tpu',), 'model': ('big-2.1', 'big-2')}
    >>> parse_scope("batch_size>=64").ranges, parse_scope("rolled out").unread
    ({'batch_size': (64.0, None)}, ('rolled out',))
    """

    values: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Column (lower case) -> the values the event touched (``key=a,b``)."""
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    """Column (lower case) -> (at least, below) for ``key>=x`` and ``key<x``."""
    unread: tuple[str, ...] = ()
    """Parts that could not be read (ignored when matching)."""

    @property
    def columns(self) -> set[str]:
        """The columns the scope constrains."""
        return set(self.values) | set(self.ranges)


def parse_scope(text: str | None) -> Scope:
    """Read an event's scope (``key=value; key=value``); None or blank is an empty scope.

    Examples
    --------
    >>> parse_scope(None).columns, parse_scope(" model = big-1 ").values
    (set(), {'model': ('big-1',)})
    """
    values: dict[str, tuple[str, ...]] = {}
    ranges: dict[str, tuple[float | None, float | None]] = {}
    unread: list[str] = []
    for part in (text or "").split(";"):
        if not part.strip():
            continue
        m = _PART.match(part)
        if m is None:
            unread.append(part.strip())
            continue
        key, op, value = m.group(1).strip().lower(), m.group(2), m.group(3)
        if op == "=":
            found = tuple(v.strip() for v in value.split(",") if v.strip())
            if found:
                values[key] = values.get(key, ()) + found
            else:
                unread.append(part.strip())
            continue
        bound = _number(value)
        if bound is None:
            unread.append(part.strip())
            continue
        low, high = ranges.get(key, (None, None))
        ranges[key] = (bound, high) if op == ">=" else (low, bound)
    return Scope(values=values, ranges=ranges, unread=tuple(unread))


def _number(text: Any) -> float | None:
    try:
        x = float(str(text).strip())
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def _meets(condition: Any, scope: Scope, column: str) -> bool:
    """Whether one predicate condition and the scope's constraint on the same column meet."""
    wanted = scope.values.get(column, ())
    low, high = scope.ranges.get(column, (None, None))
    if isinstance(condition, Mapping):
        gte, lt = condition.get("gte"), condition.get("lt")

        def inside(x: float) -> bool:
            return (gte is None or x >= gte) and (lt is None or x < lt)

        if wanted:
            numbers = [x for x in (_number(v) for v in wanted) if x is not None]
            if not numbers:
                return True  # text where numbers belong: nothing to check
            if not any(inside(x) for x in numbers):
                return False
        if column in scope.ranges:
            # [gte, lt) and [low, high) overlap
            if high is not None and gte is not None and gte >= high:
                return False
            if low is not None and lt is not None and lt <= low:
                return False
        return True
    kept = [v for v in condition if v is not None]
    if wanted and not {str(v) for v in kept} & set(wanted):
        numeric = [x for x in (_number(v) for v in kept) if x is not None]
        targets = [x for x in (_number(v) for v in wanted) if x is not None]
        if not (numeric and targets and set(numeric) & set(targets)):
            return False
    if column in scope.ranges:
        numeric = [x for x in (_number(v) for v in kept) if x is not None]
        if numeric and not any(
            (low is None or x >= low) and (high is None or x < high) for x in numeric
        ):
            return False
    return True


def _columns(predicate: Mapping[str, Any]) -> dict[str, str]:
    """Lower-case column name -> the predicate's own name for it."""
    return {c.lower(): c for c in predicate}


def scope_conflicts(predicate: Mapping[str, Any], scope: Scope | str | None) -> list[str]:
    """The columns on which a slice and an event's scope do not meet (empty: compatible).

    Examples
    --------
    >>> scope_conflicts({"model": ["small-2"], "sampler": ["fast-sampler"]}, "model=big-1")
    ['model']
    >>> scope_conflicts({"batch_size": {"gte": 96}}, "platform=tpu; batch_size>=64")
    []
    >>> scope_conflicts({"batch_size": {"gte": 96}}, "batch_size=64")
    ['batch_size']
    """
    read = scope if isinstance(scope, Scope) else parse_scope(scope)
    names = _columns(predicate)
    return [
        names[c]
        for c in sorted(read.columns & set(names))
        if not _meets(predicate[names[c]], read, c)
    ]


def scope_matches(predicate: Mapping[str, Any], scope: Scope | str | None) -> list[str]:
    """The columns both constrain and on which they meet: how specific the event is to the slice.

    Examples
    --------
    >>> sig = {"model": ["small-2"], "sampler": ["fast-sampler"], "surface": ["first-party"]}
    >>> scope_matches(sig, "platform=tpu; surface=first-party; sampler=fast-sampler")
    ['sampler', 'surface']
    """
    read = scope if isinstance(scope, Scope) else parse_scope(scope)
    names = _columns(predicate)
    return [
        names[c] for c in sorted(read.columns & set(names)) if _meets(predicate[names[c]], read, c)
    ]
