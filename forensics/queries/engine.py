"""The engine boundary: what the query layer asks of the database that holds the requests.

Every query function takes one object and calls only the methods of
``Engine`` on it; ``db.Database`` (one DuckDB connection) is the engine today.
Another engine (Spark, Trino, ClickHouse, BigQuery) answers the same calls:
statements come in DuckDB's dialect with ``$name`` parameters, so an engine
translates them (e.g. SQLGlot) and binds the values, and reports column types
under DuckDB's names (``VARCHAR``, ``BIGINT``, ``DOUBLE``, ``BOOLEAN``,
``TIMESTAMP WITH TIME ZONE``). ``tests/test_queries.py`` checks that
``Database`` provides all of it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

import polars as pl

__all__ = ["Engine"]

T = TypeVar("T")


@runtime_checkable
class Engine(Protocol):
    """What a query function calls on its ``db`` argument."""

    path: str
    """Where the data lives (a file, ``:memory:``, a table's name)."""
    read_only: bool
    """Whether statements that write (cubes, the catalog) are refused."""

    def execute(
        self, sql: str, params: Mapping[str, Any] | Sequence[Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """Run one statement and fetch all its rows."""
        ...

    def frame(self, sql: str, params: Mapping[str, Any] | None = None) -> pl.DataFrame:
        """Run a query and return its result as a Polars DataFrame."""
        ...

    def scalar(self, sql: str, params: Mapping[str, Any] | Sequence[Any] | None = None) -> Any:
        """Run a query that returns one value."""
        ...

    def tables(self) -> set[str]:
        """Names of the tables there are."""
        ...

    def columns(self, table: str) -> dict[str, str]:
        """Column name -> type (DuckDB's names) of a table, in table order; {} if none."""
        ...

    def meta(self, key: str) -> str | None:
        """A value of ``forensics_meta`` (None when absent)."""
        ...

    def memo(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()``, remembered under ``key`` until the data changes."""
        ...

    def forget(self) -> None:
        """Drop every remembered value."""
        ...
