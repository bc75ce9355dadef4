"""What a report reads from: anything that holds the open database.

The report takes its numbers from the query, analysis and separation layers
over ``source.db``, never from the ``Workbench`` facade (which imports the
report: the other way round would be a circle). A ``Workbench`` is a source,
and so is any object with a ``db`` attribute.
"""

from __future__ import annotations

from typing import Protocol

from forensics.db import Database

__all__ = ["Source"]


class Source(Protocol):
    """What the report needs of its caller: the open database (a ``Workbench`` has one)."""

    db: Database
    """The database the findings come from."""
