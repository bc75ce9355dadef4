"""argmax_violation: a greedy request did not take the most probable token.

With ``temperature`` 0 the sampler must pick the rank-1 token every step, so a
``max_token_rank`` above 1 is the direct fingerprint of a broken top-k. Null for
non-greedy requests and where either input is missing.
"""

from __future__ import annotations

from collections.abc import Set

from forensics.signals._detector import Detector, SignalParams


def _sql(params: SignalParams, present: Set[str]) -> str:
    return (
        "CASE WHEN temperature IS NULL OR max_token_rank IS NULL OR temperature <> 0 "
        "THEN NULL ELSE max_token_rank > 1 END"
    )


DETECTOR = Detector(
    name="argmax_violation",
    description="Greedy request (temperature 0) whose response used a token other than the most probable",
    requires=("temperature", "max_token_rank"),
    sql=_sql,
)
