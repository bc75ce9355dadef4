"""The cube of a counted case: attributes, their values, and the leaves that carry traffic.

A leaf is one combination of values (one per attribute). Leaves are drawn by
picking each attribute's value by its popularity (Zipf-like weights), so that
popular values meet often and the cube is sparse like real traffic; each leaf
gets a volume (requests per minute at the seasonal mean) and a baseline bad
rate (the cube's rate times each value's effect times the leaf's own).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from forensics.simulate.counted.params import CaseParams

__all__ = ["ATTRIBUTE_NAMES", "DAY_MINUTES", "Cube", "draw_cube", "minutes_of_day"]

DAY_MINUTES = 1440

ATTRIBUTE_NAMES: tuple[str, ...] = (
    "region", "zone", "pool", "client", "version", "os", "isp", "tier", "service", "api",
)  # fmt: skip
"""Names a case's attributes are drawn from."""


@dataclass(frozen=True)
class Cube:
    """The attributes of a case and its leaves."""

    attributes: tuple[str, ...]
    """Attribute names, in column order."""
    values: tuple[tuple[str, ...], ...]
    """Each attribute's values."""
    codes: np.ndarray
    """Leaves x attributes: each leaf's value index per attribute."""
    volume: np.ndarray
    """Each leaf's requests per minute at the seasonal mean."""
    rate: np.ndarray
    """Each leaf's baseline bad rate."""
    value_phase: tuple[np.ndarray, ...]
    """Per attribute, each value's phase of its own daily volume cycle (radians)."""
    value_amplitude: tuple[np.ndarray, ...]
    """Per attribute, each value's amplitude of that cycle."""
    daily: tuple[float, float]
    """Amplitude and phase of the whole cube's daily volume cycle."""
    daily_rate: tuple[float, float]
    """Amplitude and phase of the daily cycle of the bad rate."""
    overdispersion: float
    """Coefficient of variation of a leaf's bad rate from one minute to the next."""

    @property
    def leaves(self) -> int:
        """Number of leaves."""
        return int(self.codes.shape[0])

    def expected(self, minute_of_day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Expected requests and baseline bad rate per minute (rows) and leaf (columns).

        The whole cube's volume follows its daily cycle, each value's its own
        (phases differ, so the mix drifts); the rate follows its daily cycle.
        """
        angle = 2 * np.pi * np.asarray(minute_of_day, dtype=float)[:, None] / DAY_MINUTES
        amplitude, phase = self.daily
        volume = (1.0 + amplitude * np.sin(angle + phase)) * self.volume
        for d in range(len(self.attributes)):
            codes = self.codes[:, d]
            volume = volume * (
                1.0 + self.value_amplitude[d][codes] * np.sin(angle + self.value_phase[d][codes])
            )
        amplitude, phase = self.daily_rate
        rate = (1.0 + amplitude * np.sin(angle + phase)) * self.rate
        return volume, rate

    def mask(self, element: dict[str, str]) -> np.ndarray:
        """Leaves inside an element (a conjunction attribute -> value)."""
        inside = np.ones(self.leaves, dtype=bool)
        for name, value in element.items():
            d = self.attributes.index(name)
            inside &= self.codes[:, d] == self.values[d].index(value)
        return inside


def minutes_of_day(start: datetime, minutes: int) -> np.ndarray:
    """The minute of the day (0-1439) of each minute of a series starting at ``start``."""
    return (start.hour * 60 + start.minute + np.arange(minutes)) % DAY_MINUTES


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def draw_cube(rng: np.random.Generator, params: CaseParams) -> Cube:
    """Draw the attributes, values, leaves, volumes and baseline rates of a case."""
    count = int(rng.integers(params.attributes[0], params.attributes[1], endpoint=True))
    names = tuple(str(n) for n in rng.choice(ATTRIBUTE_NAMES, size=count, replace=False))
    cardinalities = rng.integers(params.values[0], params.values[1], endpoint=True, size=count)
    values = tuple(
        tuple(f"{name}-{i + 1:02d}" for i in range(int(c)))
        for name, c in zip(names, cardinalities, strict=True)
    )
    weights = []
    for c in cardinalities:
        w = 1.0 / np.arange(1, c + 1) ** _uniform(rng, params.zipf)
        weights.append(rng.permutation(w / w.sum()))
    wanted = int(rng.integers(params.leaves[0], params.leaves[1], endpoint=True))
    wanted = min(wanted, int(np.prod(cardinalities.astype(float))))
    drawn = np.column_stack([rng.choice(len(w), size=wanted * 3, p=w) for w in weights]).astype(
        np.int32
    )
    _, first = np.unique(drawn, axis=0, return_index=True)
    codes = drawn[np.sort(first)[:wanted]]
    popularity = np.prod([weights[d][codes[:, d]] for d in range(count)], axis=0)
    volume = popularity * rng.lognormal(0.0, params.volume_sigma, size=len(codes))
    total = float(np.exp(rng.uniform(*np.log(params.volume))))
    volume *= total / volume.sum()
    base = float(np.exp(rng.uniform(*np.log(params.base_rate))))
    effects = [rng.lognormal(0.0, params.value_effect_sigma, size=int(c)) for c in cardinalities]
    rate = base * np.prod([effects[d][codes[:, d]] for d in range(count)], axis=0)
    rate *= rng.lognormal(0.0, params.leaf_effect_sigma, size=len(codes))
    rate = np.minimum(rate, 0.5)
    phases = tuple(rng.uniform(0, 2 * np.pi, size=int(c)) for c in cardinalities)
    amplitudes = tuple(
        rng.uniform(params.value_volume[0], params.value_volume[1], size=int(c))
        for c in cardinalities
    )
    daily = (_uniform(rng, params.daily_volume), float(rng.uniform(0, 2 * np.pi)))
    daily_rate = (_uniform(rng, params.daily_rate), float(rng.uniform(0, 2 * np.pi)))
    cv = _uniform(rng, params.overdispersion)
    return Cube(names, values, codes, volume, rate, phases, amplitudes, daily, daily_rate, cv)
