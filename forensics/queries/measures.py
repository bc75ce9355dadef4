"""What a count sums: the signals ``requests`` holds, and the count column of counted rows.

On request rows, ``n`` counts the rows where a signal is defined and ``k``
those where it is true; on counted rows (``[counts]``) a row weighs its count
column and a signal's column holds how many of its requests show it. The SQL
aggregates here hide the difference from every count query.
"""

from __future__ import annotations

from forensics.errors import QueryError, UnknownNameError
from forensics.queries.engine import Engine
from forensics.roles import COUNTS_META
from forensics.schema import quote_identifier

__all__ = ["check_signal", "count_column", "no_users_on_counted_rows", "signal_names"]


def signal_names(db: Engine) -> list[str]:
    """Signals stored in this database: built-in first, the user's next, ``degraded`` last.

    Examples
    --------
    >>> from forensics.db import Database
    >>> signal_names(Database(":memory:"))
    []
    """
    tables = db.tables()
    if "signal_definitions" not in tables or "requests" not in tables:
        return []

    def lookup() -> list[str]:
        rows = db.execute(
            "SELECT name FROM signal_definitions ORDER BY CASE kind WHEN 'detector' THEN 0 "
            "WHEN 'user' THEN 1 WHEN 'count' THEN 1 ELSE 2 END, rowid"
        )
        present = db.columns("requests")
        return [r[0] for r in rows if r[0] in present]

    return list(db.memo(("signal_names",), lookup))


def count_column(db: Engine) -> str | None:
    """The column saying how many requests a row stands for (counted rows), or None.

    Examples
    --------
    >>> from forensics.db import Database
    >>> count_column(Database(":memory:")) is None
    True
    """
    return db.memo(("count_column",), lambda: db.meta(COUNTS_META))


def _requests_sum(db: Engine) -> str:
    """SQL aggregate of the requests a group of ``requests`` rows stands for."""
    weight = count_column(db)
    if weight is None:
        return "count(*)"
    return f"CAST(coalesce(sum({quote_identifier(weight)}), 0) AS BIGINT)"


def _requests_where(db: Engine, condition: str) -> str:
    """SQL aggregate of the requests of the rows meeting ``condition``."""
    weight = count_column(db)
    if weight is None:
        return f"count(*) FILTER (WHERE {condition})"
    w = quote_identifier(weight)
    return f"CAST(coalesce(sum({w}) FILTER (WHERE {condition}), 0) AS BIGINT)"


def _signal_sums(db: Engine, signal: str) -> tuple[str, str]:
    """SQL aggregates ``n`` (requests where ``signal`` is defined) and ``k`` (showing it).

    On counted rows a row weighs its count and the signal holds how many show it.
    """
    q = quote_identifier(signal)
    weight = count_column(db)
    if weight is None:
        return f"count({q})", f"count(*) FILTER (WHERE {q})"
    w = quote_identifier(weight)
    return (
        f"CAST(coalesce(sum({w}) FILTER (WHERE {q} IS NOT NULL), 0) AS BIGINT)",
        f"CAST(coalesce(sum({q}), 0) AS BIGINT)",
    )


def _signal_terms(db: Engine, signal: str) -> tuple[str, str]:
    """Per-row SQL terms whose sums are ``n`` and ``k`` (see ``_signal_sums``)."""
    q = quote_identifier(signal)
    weight = count_column(db)
    if weight is None:
        return f"CAST({q} IS NOT NULL AS INTEGER)", f"CAST({q} IS TRUE AS INTEGER)"
    w = quote_identifier(weight)
    return f"CASE WHEN {q} IS NOT NULL THEN {w} ELSE 0 END", f"coalesce({q}, 0)"


def no_users_on_counted_rows(db: Engine, what: str) -> None:
    """Raise ``QueryError`` when ``requests`` holds counted rows: they name no users."""
    weight = count_column(db)
    if weight is not None:
        raise QueryError(
            f"{what} is not available on counted rows: a row stands for {weight} requests "
            "of users it does not name, so distinct users cannot be counted; ask for "
            "request rates (wb.rates, wb.compare) instead"
        )


def check_signal(db: Engine, signal: str) -> str:
    """Return ``signal`` if the database has it, else raise ``UnknownNameError`` listing them."""
    names = signal_names(db)
    if signal not in names:
        raise UnknownNameError.for_name("signal", signal, names)
    return signal
