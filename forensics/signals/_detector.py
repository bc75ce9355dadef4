"""The Detector type and the thresholds detectors share."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass

import duckdb

__all__ = ["Detector", "SignalParams"]


@dataclass(frozen=True)
class SignalParams:
    """Thresholds of the detectors; each is bound as a named SQL parameter."""

    low_eval_threshold: float = 0.5
    """``low_eval`` fires when ``eval_score`` is below this."""
    script_mix_min_run: int = 1
    """Shortest run of foreign-script characters that counts as a mix."""
    script_mix_max_share: float = 0.5
    """Above this share of letters in a foreign script, the answer is written in that
    script on purpose (a translation), not corrupted."""

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
    sql: Callable[[SignalParams], str]
    """Builds the SQL boolean expression (null where undefined), using ``$param`` names."""
    register: Callable[[duckdb.DuckDBPyConnection], None] | None = None
    """Registers Python functions the SQL calls, if any."""
