"""The knobs of the counted-incident generator: every range a case is drawn from.

Following the published descriptions of root-cause-localisation benchmarks
(Squeeze's semi-synthetic cubes, RiskLoc's synthetic S/L/H sets): a cube of a
few attributes with a few to twenty values each, a baseline per leaf (a full
combination of values) with noise, and anomalies injected at one or several
attribute combinations ("elements") of different depths. Unlike those sets,
which hold one forecast and one real value per leaf, a case here is a series
of per-minute counts (requests and bad requests), so that the recent past and
the onset are part of the problem.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CaseParams"]


@dataclass(frozen=True)
class CaseParams:
    """Ranges a case is drawn from (``(low, high)`` pairs are drawn uniformly unless said)."""

    attributes: tuple[int, int] = (4, 6)
    """How many attributes the cube has."""
    values: tuple[int, int] = (3, 20)
    """How many values each attribute has."""
    leaves: tuple[int, int] = (500, 8000)
    """How many leaves (combinations of values that carry traffic) are drawn."""
    volume: tuple[float, float] = (20_000.0, 200_000.0)
    """Requests per minute over the whole cube at the seasonal mean (log-uniform)."""
    minutes: tuple[int, int] = (160, 240)
    """Length of the series in minutes."""
    history: int = 100
    """Fewest minutes before the onset."""
    tail: int = 10
    """Fewest minutes from the onset to the end of the series."""
    duration: tuple[int, int] = (10, 60)
    """How long the anomaly lasts (it may run past the end of the series)."""
    base_rate: tuple[float, float] = (0.003, 0.03)
    """The bad rate of the whole cube (log-uniform)."""
    value_effect_sigma: float = 0.35
    """Spread (log scale) of each value's multiplicative effect on the bad rate."""
    leaf_effect_sigma: float = 0.2
    """Spread (log scale) of each leaf's own effect on the bad rate."""
    volume_sigma: float = 0.7
    """Spread (log scale) of each leaf's volume around the product of its values' weights."""
    zipf: tuple[float, float] = (0.4, 1.2)
    """Exponent of the popularity of an attribute's values (Zipf-like)."""
    daily_volume: tuple[float, float] = (0.1, 0.5)
    """Amplitude of the daily cycle of the whole cube's volume."""
    value_volume: tuple[float, float] = (0.0, 0.3)
    """Amplitude of each value's own daily cycle (phases differ: the traffic mix moves)."""
    daily_rate: tuple[float, float] = (0.0, 0.15)
    """Amplitude of the daily cycle of the bad rate."""
    overdispersion: tuple[float, float] = (0.0, 0.25)
    """Coefficient of variation of a leaf's bad rate from one minute to the next."""
    causes: tuple[float, ...] = (0.5, 0.3, 0.2)
    """Probability of 1, 2, 3... cause elements (several elements fail at once)."""
    depths: tuple[float, ...] = (0.3, 0.45, 0.25)
    """Probability of an element of depth 1, 2, 3... (conditions in its conjunction)."""
    element_share: tuple[float, float] = (0.003, 0.4)
    """An element carries this share of the cube's requests at the onset..."""
    union_share: float = 0.6
    """...and all the causes of a case together at most this share (else no slice is to blame)."""
    ratio: tuple[float, float] = (2.0, 12.0)
    """How many times its baseline bad rate an element shows (log-uniform)..."""
    min_z: float = 7.0
    """...raised until the excess in one minute is this many Poisson deviations..."""
    min_excess: float = 10.0
    """...and this many bad requests (what one minute must show for an alert to fire)."""
    max_rate: float = 0.95
    """An anomalous leaf's bad rate is capped here."""
    uneven: tuple[float, float] = (0.5, 1.5)
    """Inside an element, each value of one other attribute scales the excess by this much."""
    precursor: float = 0.3
    """Probability that the first cause was already elevated before the onset..."""
    precursor_level: tuple[float, float] = (0.1, 0.35)
    """...by this share of its later excess..."""
    precursor_minutes: tuple[int, int] = (5, 30)
    """...for this many minutes."""
    blip: float = 0.2
    """Probability of a short unrelated blip earlier in the series..."""
    blip_share: tuple[float, float] = (0.1, 0.3)
    """...whose excess per minute is this share of the anomaly's..."""
    blip_minutes: tuple[int, int] = (1, 3)
    """...lasting this many minutes, at least ``blip_gap`` minutes before the onset."""
    blip_gap: int = 20
    """Fewest minutes between a blip and the onset."""
