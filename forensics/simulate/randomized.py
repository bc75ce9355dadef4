"""The random scenario family: a different scenario, with its own dimensions and bugs, per seed.

``random_scenario(seed, knobs)`` returns a scenario mapping of the same shape
as a scenario TOML file (checked by the same parser), drawn from its own
stream of the seed. Dimension values get random names; an extra,
non-canonical column is always present; 0 to ``max_bugs`` bugs get random
predicates (1-3 conditions over categories, the extra column and batch size
ranges), windows (some still active), effects and, sometimes, a sticky
reroute. The knobs (ranges and shares) live in ``scenarios/random.toml``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from forensics.simulate.text import load_library

__all__ = ["random_scenario"]

_SYLLABLES = (
    "ka", "lo", "mi", "ne", "ru", "ta", "vo", "shi", "zen", "pa",
    "ri", "do", "fu", "gi", "ho", "ya", "ke", "su", "mo", "ti",
)  # fmt: skip
"""Building blocks of random value names."""

_START = datetime(2024, 1, 1, tzinfo=UTC)
"""First instant of every random scenario (a Monday)."""

_TASKS = ("chat", "code", "summarise", "analysis")
"""Tasks the text library composes."""

_EFFECT_RATES = {
    "script_mix": (0.5, 0.9),
    "code_syntax_error": (0.4, 0.8),
    "argmax_violation": (0.6, 1.0),
    "low_quality": (0.3, 0.6),
}
"""Range of each effect's probability per hit request; the family draws among these (the
effects on answers' form and language need a max_tokens column and are left to the library)."""


def _word(rng: np.random.Generator) -> str:
    return "".join(_SYLLABLES[i] for i in rng.integers(len(_SYLLABLES), size=2))


def _names(rng: np.random.Generator, prefix: str, k: int) -> list[str]:
    names: list[str] = []
    while len(names) < k:
        name = f"{prefix}-{_word(rng)}"
        if name not in names:
            names.append(name)
    return names


def _weights(
    rng: np.random.Generator, values: Sequence[str], floor: float = 0.15
) -> dict[str, float]:
    raw = rng.dirichlet(np.full(len(values), 2.0)) + floor
    raw /= raw.sum()
    return {v: round(float(w), 4) for v, w in zip(values, raw, strict=True)}


def _between(rng: np.random.Generator, bounds: Sequence[float]) -> int:
    return int(rng.integers(int(bounds[0]), int(bounds[1]) + 1))


def _dimensions(
    rng: np.random.Generator,
) -> tuple[list[dict[str, Any]], dict[str, dict[str, float]], str]:
    """The columns, the marginal share of each category value, and the extra column's name."""
    surfaces = _weights(rng, _names(rng, "s", _between(rng, (2, 3))))
    regions = _weights(rng, _names(rng, "r", _between(rng, (2, 4))))
    others = [code for code in load_library().languages if code != "en"]
    picked = [others[i] for i in rng.choice(len(others), _between(rng, (2, 4)), replace=False)]
    english = float(rng.uniform(0.6, 0.85))
    languages = {"en": round(english, 4)} | {
        k: round(v * (1 - english), 4) for k, v in _weights(rng, picked).items()
    }
    models = _weights(rng, _names(rng, "m", _between(rng, (3, 6))))
    platform_names = _names(rng, "hw", _between(rng, (2, 3)))
    platforms = _weights(rng, platform_names)
    samplers = _names(rng, "smp", 2)
    sampler_mix = _weights(rng, samplers)
    extra = f"{_word(rng)}_{_word(rng)}"
    extras = _weights(rng, _names(rng, "v", _between(rng, (3, 5))))
    tasks = _weights(rng, _TASKS)
    pools = _weights(rng, _names(rng, "pool", _between(rng, (2, 3))))
    first_surface = next(iter(surfaces))
    columns: list[dict[str, Any]] = [
        {"name": "surface", "per": "user", "values": surfaces},
        {"name": "region", "per": "user", "values": regions},
        {"name": "prompt_language", "per": "user", "values": languages},
        {"name": "model", "per": "session", "values": models},
        {
            "name": "platform",
            "values": platforms,
            "case": [
                {"where": {"surface": [first_surface]}, "values": _weights(rng, platform_names)}
            ],
        },
        {
            "name": "sampler",
            "value": samplers[0],
            "case": [{"where": {"platform": [platform_names[0]]}, "values": sampler_mix}],
        },
        {"name": extra, "values": extras},
        {"name": "task", "per": "session", "values": tasks},
        {
            "name": "prompt_tokens",
            "type": "int",
            "dist": "lognormal",
            "median": float(rng.uniform(500, 3000)),
            "sigma": 1.3,
            "low": 5,
            "high": 200_000,
        },
        {"name": "routing_pool", "values": pools},
        {
            "name": "output_tokens",
            "type": "int",
            "dist": "lognormal",
            "median": float(rng.uniform(200, 800)),
            "sigma": 0.9,
            "low": 1,
            "high": 32_000,
        },
        {
            "name": "batch_size",
            "type": "int",
            "dist": "choice",
            "values": [1, 2, 4, 8, 16, 32, 64, 128, 256],
            "weights": [0.04, 0.06, 0.1, 0.16, 0.2, 0.18, 0.12, 0.09, 0.05],
        },
        {
            "name": "temperature",
            "type": "float",
            "dist": "choice",
            "values": [0.0, 0.3, 0.7, 1.0],
            "weights": _greedy_weights(rng),
        },
        {"name": "server_id", "type": "format", "format": "{platform}-{region}-{n:02d}", "n": 8},
    ]
    sampler_share = {
        samplers[0]: 1 - platforms[platform_names[0]] * (1 - sampler_mix[samplers[0]]),
        samplers[1]: platforms[platform_names[0]] * sampler_mix[samplers[1]],
    }
    marginals = {
        "surface": surfaces,
        "region": regions,
        "model": models,
        "platform": platforms,
        "sampler": sampler_share,
        extra: extras,
        "routing_pool": pools,
    }
    return columns, marginals, extra


def _greedy_weights(rng: np.random.Generator) -> list[float]:
    greedy = float(rng.uniform(0.2, 0.5))
    return [
        round(greedy, 4),
        round((1 - greedy) * 0.25, 4),
        round((1 - greedy) * 0.5, 4),
        round((1 - greedy) * 0.25, 4),
    ]


_BATCH_SHARE = {32: 0.44, 64: 0.26, 128: 0.14}
"""Share of requests with batch_size >= the key (from the batch_size weights above)."""


def _predicate(
    rng: np.random.Generator,
    marginals: Mapping[str, Mapping[str, float]],
    knobs: Mapping[str, Any],
    *,
    reroute: bool,
) -> tuple[dict[str, Any], float]:
    """A random predicate of 1-3 conditions and its (approximate) share of traffic."""
    low, high = knobs["conditions"]
    for _ in range(200):
        k = _between(rng, (low, high))
        columns = [c for c in marginals if c != "routing_pool"] + ["batch_size"]
        chosen = [columns[i] for i in rng.choice(len(columns), min(k, len(columns)), replace=False)]
        where: dict[str, Any] = {}
        share = 1.0
        if reroute:
            pool = next(iter(marginals["routing_pool"]))
            where["routing_pool"] = [pool]
            share *= marginals["routing_pool"][pool]
            chosen = chosen[: max(0, k - 1)]
        for column in chosen:
            if column == "batch_size":
                bound = [32, 64, 128][int(rng.integers(3))]
                where[column] = {"gte": bound}
                share *= _BATCH_SHARE[bound]
                continue
            values = list(marginals[column])
            n = 1 if len(values) <= 2 else _between(rng, (1, 2))
            picked = [values[i] for i in rng.choice(len(values), n, replace=False)]
            where[column] = picked
            share *= sum(marginals[column][v] for v in picked)
        if share >= knobs["min_population_share"]:
            return where, share
    return ({"routing_pool": [next(iter(marginals["routing_pool"]))]} if reroute else {}), 1.0


def _scope(where: Mapping[str, Any]) -> str:
    parts = []
    for column, spec in where.items():
        if isinstance(spec, Mapping):
            parts.append(f"{column}>={spec['gte']}")
        else:
            parts.append(f"{column}={','.join(spec)}")
    return "; ".join(parts)


def _bugs(
    rng: np.random.Generator,
    marginals: Mapping[str, Mapping[str, float]],
    knobs: Mapping[str, Any],
    end: datetime,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    bugs: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for i in range(int(rng.integers(0, knobs["max_bugs"] + 1))):
        reroute = bool(rng.random() < knobs["reroute_share"])
        where, _ = _predicate(rng, marginals, knobs, reroute=reroute)
        length = timedelta(
            hours=int(rng.integers(knobs["bug_days"][0] * 24, knobs["bug_days"][1] * 24 + 1))
        )
        span_hours = int((end - _START - length - timedelta(days=3)) / timedelta(hours=1))
        start = _START + timedelta(days=3, hours=int(rng.integers(0, max(1, span_hours))))
        active = bool(rng.random() < knobs["still_active_share"])
        stop = None if active else min(end, start + length)
        if reroute:
            effects = {"low_quality": round(float(rng.uniform(0.4, 0.6)), 3)}
        else:
            kinds = tuple(_EFFECT_RATES)
            chosen = rng.choice(len(kinds), _between(rng, (1, 2)), replace=False)
            effects = {
                kinds[j]: round(float(rng.uniform(*_EFFECT_RATES[kinds[j]])), 3)
                for j in sorted(chosen)
            }
        name = f"bug-{i + 1}-{_word(rng)}"
        bug: dict[str, Any] = {
            "name": name,
            "description": f"Random bug {i + 1}: {', '.join(effects)} where {_scope(where)}.",
            "where": where,
            "start": start,
            "intensity": round(float(rng.uniform(0.06, 0.2)), 3),
            "effects": effects,
        }
        if stop is not None:
            bug["end"] = stop
        if reroute:
            pool = where["routing_pool"][0]
            bug["reroute"] = {"routing_pool": f"{pool}-overflow-{i + 1}"}
            bug["sticky_by"] = "user_id"
            bug["sticky_rate"] = round(float(rng.uniform(0.3, 0.6)), 3)
        bugs.append(bug)
        events.append(
            {
                "ts": start,
                "kind": "deploy",
                "description": f"Change behind {name}",
                "scope": _scope(where),
            }
        )
        if stop is not None and stop < end:
            events.append(
                {
                    "ts": stop,
                    "kind": "rollback",
                    "description": f"Rollback of {name}",
                    "scope": _scope(where),
                }
            )
    return bugs, events


def random_scenario(seed: int, knobs: Mapping[str, Any]) -> dict[str, Any]:
    """A scenario mapping drawn from ``seed`` (deterministic), shaped as a scenario TOML.

    Examples
    --------
    >>> from forensics.simulate import SCENARIOS
    >>> a = random_scenario(3, SCENARIOS["random"].data)
    >>> a == random_scenario(3, SCENARIOS["random"].data), a == random_scenario(4, SCENARIOS["random"].data)
    (True, False)
    """
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 1])))
    days = _between(rng, knobs["days"])
    end = _START + timedelta(days=days)
    columns, marginals, extra = _dimensions(rng)
    bugs, events = _bugs(rng, marginals, knobs, end)
    red_herrings: list[dict[str, Any]] = []
    if rng.random() < knobs["red_herring_share"]:
        at = _START + timedelta(days=int(rng.integers(2, max(3, days - 7))))
        red_herrings.append(
            {
                "name": "task-mix-shift",
                "kind": "mix_shift",
                "description": "More code tasks for a few days: raw rates move, per-task rates do not.",
                "column": "task",
                "factors": {"code": round(float(rng.uniform(2.0, 3.0)), 2)},
                "schedule": [
                    [at, 0.0],
                    [at + timedelta(days=1), 1.0],
                    [at + timedelta(days=4), 1.0],
                    [at + timedelta(days=5), 0.0],
                ],
            }
        )
    benign = _START + timedelta(hours=int(rng.integers(24, days * 24 - 24)))
    red_herrings.append(
        {
            "name": "benign-deploy",
            "kind": "event",
            "description": "A deploy that changes nothing.",
            "event": {
                "ts": benign,
                "kind": "deploy",
                "description": f"Routine {extra} update",
                "scope": "",
            },
        }
    )
    return {
        "name": "random",
        "description": knobs["description"],
        "rows": knobs["rows"],
        "start": _START,
        "end": end,
        "traffic": {
            "diurnal": [
                0.5,
                0.42,
                0.36,
                0.34,
                0.36,
                0.42,
                0.55,
                0.7,
                0.85,
                0.95,
                1.0,
                1.02,
                1.02,
                1.04,
                1.08,
                1.1,
                1.1,
                1.06,
                1.0,
                0.94,
                0.86,
                0.76,
                0.66,
                0.57,
            ],
            "weekly": [1.0, 1.03, 1.04, 1.02, 0.95, 0.6, 0.55],
            "requests_per_user": 40,
            "user_pareto": 1.3,
            "user_cap": 400,
            "session_requests": 5,
            "request_gap_seconds": 90,
        },
        "column": columns,
        "quality": {
            "good_eval": [9.0, 2.2],
            "bad_eval": [2.2, 4.0],
            "feedback_share": 0.15,
            "feedback_good": [0.05, 0.2, 0.75],
            "feedback_bad": [0.5, 0.3, 0.2],
        },
        "baseline": {
            "script_mix": 0.0002,
            "code_syntax_error": 0.015,
            "argmax_violation": 0.0002,
            "low_quality": 0.05,
            "rule": [{"where": {"task": ["analysis"]}, "scale": {"code_syntax_error": 0.3}}],
        },
        "bug": bugs,
        "red_herring": red_herrings,
        "event": events,
    }
