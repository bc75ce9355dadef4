"""What one step of the local search knows, and what moves return."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from forensics.separation.predicate import Predicate
from forensics.separation.statistic import Series, Window

__all__ = ["Forced", "Proposal", "Step"]

Proposal = tuple[Predicate, Window, float]
"""A predicate, its best window and its statistic."""

Forced = tuple[Predicate, Window] | None
"""A move that must be taken, or None."""


@dataclass(frozen=True)
class Step:
    """The search's state at one step."""

    signal: str
    """The signal searched."""
    predicate: Predicate
    """Current conditions."""
    window: Window
    """Current window, in buckets."""
    by: dict[str, tuple[list[Any], Series]]
    """Per dimension outside the predicate, its values and one series row per value."""
    current: float
    """The current net statistic (statistic minus description cost)."""
