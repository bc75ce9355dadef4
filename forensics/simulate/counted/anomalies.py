"""What goes wrong in a counted case: the cause elements, when, how much, and a distraction.

A cause is an element (a conjunction of attribute values) whose leaves show a
higher bad rate from the onset on. Several causes fail at once in some cases
(two regions, or a region and a pool of another region): their elements share
one attribute with different values, so they never overlap and the set of
elements is the exact truth. Depths differ between cases and between the
causes of one case. Inside an element the excess is uneven: each value of one
other attribute scales it (some clients are hit harder than others), so a
finer conjunction that keeps only the hardest-hit values explains less than
the element. Some first causes were already elevated, less, before the onset;
some cases hold a short, weaker blip elsewhere earlier on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from forensics.simulate.counted.cube import Cube, minutes_of_day
from forensics.simulate.counted.params import CaseParams

__all__ = ["Blip", "Cause", "Onset", "Plan", "draw_plan"]

ATTEMPTS = 200
"""Draws tried before an element that fits is given up."""


@dataclass(frozen=True)
class Cause:
    """One element that fails."""

    element: dict[str, str]
    """The conjunction: attribute -> value."""
    ratio: float
    """Its bad rate during the anomaly, in multiples of its baseline (before the uneven spread)."""
    uneven: np.ndarray
    """Per leaf of the cube, the factor on this cause's excess (1 outside the uneven attribute)."""
    uneven_attribute: str | None
    """The attribute whose values scale the excess unevenly, if any."""
    precursor_minutes: int = 0
    """Minutes before the onset during which it was already elevated (0: not)."""
    precursor_level: float = 0.0
    """During those minutes, this share of its later excess."""


@dataclass(frozen=True)
class Blip:
    """A short unrelated rise earlier in the series (not part of the truth)."""

    element: dict[str, str]
    """Where."""
    ratio: float
    """How much."""
    start: int
    """First minute."""
    minutes: int
    """How long."""


@dataclass(frozen=True)
class Plan:
    """The timeline and the injected anomalies of a case."""

    minutes: int
    """Length of the series."""
    onset: int
    """Minute the anomaly starts (the truth's onset)."""
    end: int
    """Minute it ends (exclusive; ``minutes`` when it runs to the end)."""
    causes: tuple[Cause, ...]
    """The elements that fail (the truth)."""
    blip: Blip | None
    """A distraction, or None."""


def _choice(rng: np.random.Generator, probabilities: tuple[float, ...]) -> int:
    p = np.asarray(probabilities, dtype=float)
    return int(rng.choice(len(p), p=p / p.sum())) + 1


def _element_at(
    rng: np.random.Generator, cube: Cube, dims: list[int], allowed: np.ndarray
) -> dict[str, str]:
    """The values of ``dims`` of a leaf drawn by volume among the allowed leaves."""
    weights = np.where(allowed, cube.volume, 0.0)
    leaf = int(rng.choice(cube.leaves, p=weights / weights.sum()))
    return {cube.attributes[d]: cube.values[d][cube.codes[leaf, d]] for d in sorted(dims)}


def _ratio_for(
    rng: np.random.Generator, onset: Onset, inside: np.ndarray, params: CaseParams
) -> float | None:
    """A ratio drawn log-uniformly, raised until the onset's excess is large enough.

    Large enough: ``min_z`` Poisson deviations and ``min_excess`` requests in the
    onset minute. None when even the highest rate an element may show would not get there.
    """
    expected = float((onset.volume[inside] * onset.rate[inside]).sum())
    ratio = float(np.exp(rng.uniform(*np.log(params.ratio))))
    ratio = max(ratio, 1.0 + params.min_z / float(np.sqrt(max(expected, 1e-9))))
    ratio = max(ratio, 1.0 + params.min_excess / max(expected, 1e-9))
    reachable = params.max_rate / max(float(onset.rate[inside].max()), 1e-9)
    return ratio if ratio * 1.05 <= reachable else None


def _uneven(
    rng: np.random.Generator, cube: Cube, element: dict[str, str], params: CaseParams
) -> tuple[np.ndarray, str | None]:
    free = [d for d, name in enumerate(cube.attributes) if name not in element]
    if not free:
        return np.ones(cube.leaves), None
    d = int(rng.choice(free))
    factors = rng.uniform(params.uneven[0], params.uneven[1], size=len(cube.values[d]))
    return factors[cube.codes[:, d]], cube.attributes[d]


def _draw_causes(
    rng: np.random.Generator, cube: Cube, onset: Onset, params: CaseParams
) -> tuple[Cause, ...] | None:
    count = _choice(rng, params.causes)
    attributes = len(cube.attributes)
    shared = int(rng.integers(attributes))
    total = float(onset.volume.sum())
    causes: list[Cause] = []
    taken = np.zeros(cube.leaves, dtype=bool)
    for _ in range(count):
        for _ in range(ATTEMPTS):
            depth = min(_choice(rng, params.depths), attributes)
            others = [d for d in range(attributes) if d != shared]
            extra: list[int] = (
                [int(d) for d in rng.choice(others, size=depth - 1, replace=False)]
                if depth > 1
                else []
            )
            dims = [shared, *(int(d) for d in extra)] if count > 1 else None
            if dims is None:
                dims = [int(d) for d in rng.choice(attributes, size=depth, replace=False)]
            used = {c.element.get(cube.attributes[shared]) for c in causes}
            allowed = ~np.isin(
                cube.codes[:, shared],
                [cube.values[shared].index(v) for v in used if v is not None],
            )
            if not allowed.any():
                return None
            element = _element_at(rng, cube, dims, allowed)
            inside = cube.mask(element)
            share = float(onset.volume[inside].sum()) / total
            if not params.element_share[0] <= share <= params.element_share[1]:
                continue
            if (inside & taken).any():
                continue
            if float(onset.volume[inside | taken].sum()) > params.union_share * total:
                continue
            ratio = _ratio_for(rng, onset, inside, params)
            if ratio is None:
                continue
            uneven, attribute = _uneven(rng, cube, element, params)
            causes.append(Cause(element, ratio, uneven, attribute))
            taken |= inside
            break
        else:
            return None
    return tuple(causes)


def _draw_blip(
    rng: np.random.Generator,
    cube: Cube,
    causes: tuple[Cause, ...],
    onset: Onset,
    params: CaseParams,
) -> Blip | None:
    minutes = int(rng.integers(params.blip_minutes[0], params.blip_minutes[1], endpoint=True))
    latest = onset.minute - params.blip_gap - minutes
    if latest < 1:
        return None
    excess = sum(
        float((onset.volume * onset.rate * (c.ratio - 1) * c.uneven)[cube.mask(c.element)].sum())
        for c in causes
    )
    for _ in range(ATTEMPTS):
        depth = min(_choice(rng, params.depths[:2]), len(cube.attributes))
        dims = [int(d) for d in rng.choice(len(cube.attributes), size=depth, replace=False)]
        element = _element_at(rng, cube, dims, np.ones(cube.leaves, dtype=bool))
        if any(element == c.element for c in causes):
            continue
        inside = cube.mask(element)
        expected = float((onset.volume[inside] * onset.rate[inside]).sum())
        share = float(rng.uniform(*params.blip_share))
        ratio = 1.0 + share * excess / max(expected, 1e-9)
        if ratio * float(onset.rate[inside].max()) > params.max_rate:
            continue
        start = int(rng.integers(1, latest, endpoint=True))
        return Blip(element, ratio, start, minutes)
    return None


@dataclass(frozen=True)
class Onset:
    """The onset minute and what each leaf expects then."""

    minute: int
    """Minutes from the start."""
    volume: np.ndarray
    """Each leaf's expected requests that minute."""
    rate: np.ndarray
    """Each leaf's baseline bad rate that minute."""


def draw_plan(
    rng: np.random.Generator, cube: Cube, start: datetime, params: CaseParams
) -> Plan | None:
    """Draw the timeline, the causes and the distraction; None when no cause fits this cube."""
    minutes = int(rng.integers(params.minutes[0], params.minutes[1], endpoint=True))
    first = int(rng.integers(params.history, minutes - params.tail, endpoint=True))
    duration = int(rng.integers(params.duration[0], params.duration[1], endpoint=True))
    volume, rate = cube.expected(minutes_of_day(start, minutes)[first : first + 1])
    onset = Onset(first, volume[0], rate[0])
    causes = _draw_causes(rng, cube, onset, params)
    if causes is None:
        return None
    if rng.random() < params.precursor:
        lead = causes[0]
        before = int(
            rng.integers(params.precursor_minutes[0], params.precursor_minutes[1], endpoint=True)
        )
        level = float(rng.uniform(*params.precursor_level))
        causes = (
            Cause(lead.element, lead.ratio, lead.uneven, lead.uneven_attribute, before, level),
            *causes[1:],
        )
    blip = _draw_blip(rng, cube, causes, onset, params) if rng.random() < params.blip else None
    return Plan(minutes, first, min(minutes, first + duration), causes, blip)
