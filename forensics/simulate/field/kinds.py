"""The kinds of incident of the field family: one planner each, drawing its bugs from a seed.

A planner sees the world (fleet), the traffic and the responses before any
bug, and returns the bugs of one run. Everything is drawn: which dimension,
which values, the window (onsets and ends at arbitrary minutes), the share
hit, the effects. A draw is kept only when it covers at least
``MIN_POPULATION`` requests and its main symptom would add at least
``MIN_EXCESS`` over what the same rows show without it (a bug nobody could
see is not a test of anything), and a new value only when its main symptom's
rate is above every sibling's; otherwise the planner draws again from the
same stream, so a seed still gives one answer.

Kinds: ``new-value`` (a release, snapshot, replica or customer bad from its
first request), ``numeric-edge`` (a threshold off the power-of-two grid),
``effect-columns`` (a bug that changes logged columns: loops to max_tokens,
blank answers, latency), ``observable-subset`` (a symptom that can only show
on part of the bug's rows), ``overlap`` (two bugs with different symptoms
sharing rows and time), ``null`` (no bug).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np

from forensics.simulate.field.bugs import Bug, apply_bug, population, sibling_rates
from forensics.simulate.field.fleet import DAY_MS, HOUR_MS, MINUTE_MS, Event, Fleet, iso
from forensics.simulate.field.responses import Responses, intended_signals, outcome_columns
from forensics.simulate.field.text import Pools
from forensics.simulate.field.traffic import Traffic

__all__ = ["KINDS", "MIN_EXCESS", "MIN_POPULATION", "Planner", "visible"]

MIN_EXCESS = 40
"""A drawn bug must add at least this many requests with its main symptom..."""

MIN_POPULATION = 1000
"""...and cover at least this many requests (its slice during its window)."""

ATTEMPTS = 40
"""Draws a planner tries before giving up (an error names the kind and seed)."""

BATCH_EDGES = (48, 80, 96, 112, 160, 200)
"""batch_size thresholds (none a power of two)."""

PROMPT_EDGES = (50_000, 100_000, 150_000, 200_000)
"""prompt_tokens thresholds (none a power of two)."""

T = TypeVar("T")

Planner = Callable[[Fleet, Traffic, Responses, Pools, np.random.Generator], list[Bug]]


def _minute(rng: np.random.Generator, t: float) -> int:
    """``t`` moved to an arbitrary minute that is not on the hour."""
    t = int(t) - int(t) % MINUTE_MS
    if t % HOUR_MS == 0:
        t += int(rng.integers(1, 59)) * MINUTE_MS
    return t


def _window(
    rng: np.random.Generator, fleet: Fleet, lo: float, hi: float, days: tuple[float, float],
    *, open_end: float = 0.2,
) -> tuple[int, int | None]:  # fmt: skip
    span = fleet.end - fleet.start
    start = _minute(rng, fleet.start + rng.uniform(lo, hi) * span)
    if rng.random() < open_end:
        return start, None
    end = _minute(rng, start + rng.uniform(*days) * DAY_MS)
    return start, (end if end < fleet.end - HOUR_MS else None)


def _scope_text(where: dict[str, tuple[str, ...]]) -> str:
    return "; ".join(f"{c}={','.join(v)}" for c, v in where.items())


def _events(bug_where: dict[str, tuple[str, ...]], start: int, end: int | None, what: str,
            rng: np.random.Generator, *, cause: float = 0.75) -> tuple[Event, ...]:  # fmt: skip
    """A deploy just before the onset (most bugs have one) and a rollback at the end."""
    out = []
    scope = _scope_text(bug_where)
    if rng.random() < cause:
        out.append(Event(start - int(rng.integers(0, 20)) * MINUTE_MS, "deploy", what, scope))
    if end is not None and rng.random() < 0.8:
        out.append(Event(end, "rollback", f"rolled back: {what}", scope))
    return tuple(out)


def visible(
    bug: Bug, fleet: Fleet, traffic: Traffic, base: Responses, pools: Pools,
    before: dict[str, np.ndarray],
) -> bool:  # fmt: skip
    """Whether the bug is big enough to test anything.

    It needs ``MIN_POPULATION`` requests, ``MIN_EXCESS`` more with its main symptom than
    without it (``before``: the signals without any bug), and, for a new value, a main
    symptom above every sibling's rate.
    """
    inside = population(traffic, bug)
    if inside.sum() < MIN_POPULATION:
        return False
    changed = base.copy()
    apply_bug(bug, traffic, changed, pools, np.random.default_rng(7))
    after = intended_signals(traffic, changed, outcome_columns(fleet, traffic, changed), pools)
    gained = {s: np.nansum(after[s][inside]) - np.nansum(before[s][inside]) for s in bug.symptoms}
    main = max(gained, key=lambda s: gained[s])
    if gained[main] < MIN_EXCESS:
        return False
    if bug.siblings is None:
        return True
    siblings = sibling_rates(bug, traffic, after, main)
    return siblings["max"] is None or float(np.nanmean(after[main][inside])) > siblings["max"]


def _keep(
    draw: Callable[[np.random.Generator], list[Bug] | None], kind: str,
    fleet: Fleet, traffic: Traffic, base: Responses, pools: Pools, rng: np.random.Generator,
) -> list[Bug]:  # fmt: skip
    before = intended_signals(traffic, base, outcome_columns(fleet, traffic, base), pools)
    for _ in range(ATTEMPTS):
        bugs = draw(rng)
        if bugs and all(visible(b, fleet, traffic, base, pools, before) for b in bugs):
            return bugs
    raise RuntimeError(f"{kind}: no visible bug in {ATTEMPTS} draws (rows too few?)")


def _choice(rng: np.random.Generator, options: list[T], weights: list[float] | None = None) -> T:
    """One of ``options`` (with ``weights`` if given)."""
    p = None if weights is None else np.array(weights) / np.sum(weights)
    return options[int(rng.choice(len(options), p=p))]


def _common(traffic: Traffic, mask: np.ndarray, column: str, share: float) -> list[str]:
    """Values of ``column`` holding at least ``share`` of the masked rows."""
    values, counts = np.unique(traffic.columns[column][mask].astype(str), return_counts=True)
    total = counts.sum()
    return [str(v) for v, k in zip(values, counts, strict=True) if total and k / total >= share]


# -- new-value ----------------------------------------------------------------------


def plan_new_value(
    fleet: Fleet, traffic: Traffic, base: Responses, pools: Pools, rng: np.random.Generator
) -> list[Bug]:
    """A value that did not exist before, degraded from its first request."""
    span = fleet.end - fleet.start

    def draw(rng: np.random.Generator) -> list[Bug] | None:
        variant = _choice(
            rng, ["client", "snapshot", "replica", "customer"], [0.45, 0.2, 0.2, 0.15]
        )
        where: dict[str, tuple[str, ...]]
        parent: dict[str, tuple[str, ...]]
        effects: tuple[str, ...]
        end: int | None = None
        if variant == "client":
            options = [
                rel for rels in fleet.releases.values() for rel in rels
                if fleet.start + 0.1 * span <= rel.at <= fleet.end - 5 * DAY_MS
            ]  # fmt: skip
            if not options:
                return None
            rel = options[int(rng.integers(len(options)))]
            where = {"client": (rel.client,), "client_version": (rel.version,)}
            start, column = rel.at, "client_version"
            parent = {"client": (rel.client,)}
            effects = _choice(rng, [("quality",), ("code",), ("loop",)], [0.5, 0.2, 0.3])
            what = f"{rel.client} {rel.version}"
            stories: dict[tuple[str, ...], str] = {
                ("quality",): "drops the conversation history, so answers miss the context",
                ("code",): "sends a stop sequence that cuts JSON and code blocks",
                ("loop",): "stops sending the stop sequence, so answers loop until max_tokens",
            }
            story = stories[effects]
        elif variant == "snapshot":
            if not fleet.snapshots:
                return None
            snap = fleet.snapshots[int(rng.integers(len(fleet.snapshots)))]
            where = {"model_version": (snap.version,)}
            start, column = snap.steps[0][0], "model_version"
            parent = {"model": (snap.model,)}
            end = next((t for t, s in snap.steps if s == 0), None)
            effects = _choice(rng, [("quality",), ("script", "code"), ("loop",)], [0.5, 0.3, 0.2])
            what = f"{snap.model} snapshot {snap.version}"
            story = "is worse than the snapshot it replaces from its first request"
        elif variant == "replica":
            added = [x for x in fleet.replicas if x.start is not None]
            if not added:
                return None
            rep = added[int(rng.integers(len(added)))]
            where = {"server_id": (rep.name,)}
            start, column, end = int(rep.start or 0), "server_id", rep.end
            parent = {}
            effects = _choice(rng, [("script", "code"), ("argmax",), ("quality",)], [0.5, 0.3, 0.2])
            what = f"replica {rep.name}"
            story = "came up on faulty hardware"
        else:
            onboarded = [o for o in fleet.orgs if o.start is not None]
            if not onboarded:
                return None
            org = onboarded[int(rng.integers(len(onboarded)))]
            where = {"org_id": (org.name,)}
            start, column = int(org.start or 0), "org_id"
            parent = {}
            effects = _choice(rng, [("quality",), ("code",), ("loop",)], [0.5, 0.25, 0.25])
            what = f"customer {org.name}"
            story = (
                "is onboarded with a routing rule that sends its traffic to a misconfigured pool"
            )
        rows = population(traffic, Bug("x", "new-value", where, start, end, 1.0, effects, ""))
        if rows.sum() < 300:
            return None
        if rng.random() < 0.25:  # scoped: only one task of that value
            tasks = _common(traffic, rows, "task", 0.3)
            if tasks:
                where = {**where, "task": (tasks[int(rng.integers(len(tasks)))],)}
        intensity = {
            ("quality",): rng.uniform(0.5, 0.9),
            ("code",): rng.uniform(0.3, 0.7),
            ("loop",): rng.uniform(0.15, 0.4),
            ("script", "code"): rng.uniform(0.05, 0.25),
            ("argmax",): rng.uniform(0.1, 0.5),
        }[effects]
        name = f"new-{column.replace('_', '-')}-{where[column][0]}"
        return [
            Bug(
                name=name,
                kind="new-value",
                where=where,
                start=start,
                end=end,
                intensity=float(intensity),
                effects=effects,
                scripts=(_choice(rng, ["Han", "Thai", "Hangul"]),),
                siblings=column,
                siblings_within=parent,
                description=f"{what} {story} ({_scope_text(where)}; from its first request "
                f"{iso(start)}; {intensity:.0%} of its requests hit).",
            )
        ]

    return _keep(draw, "new-value", fleet, traffic, base, pools, rng)


# -- numeric-edge -------------------------------------------------------------------


def plan_numeric_edge(
    fleet: Fleet, traffic: Traffic, base: Responses, pools: Pools, rng: np.random.Generator
) -> list[Bug]:
    """A bug above a threshold that is not a power of two."""

    def draw(rng: np.random.Generator) -> list[Bug] | None:
        column = _choice(rng, ["batch_size", "prompt_tokens"], [0.6, 0.4])
        if column == "batch_size":
            start, end = _window(rng, fleet, 0.15, 0.6, (3, 12), open_end=0.25)
        else:  # long prompts are rarer: their bugs last longer before anyone looks
            start, end = _window(rng, fleet, 0.15, 0.5, (5, 15), open_end=0.35)
        where: dict[str, tuple[str, ...]] = {}
        if column == "batch_size":
            edge = int(_choice(rng, list(BATCH_EDGES)))
            if rng.random() < 0.5:
                big = [p.name for p in fleet.platforms.values() if p.max_batch > edge * 1.5]
                if not big:
                    return None
                where = {"platform": (big[int(rng.integers(len(big)))],)}
            effects = _choice(
                rng, [("argmax",), ("script", "code"), ("quality",)], [0.45, 0.35, 0.2]
            )
            story = {
                ("argmax",): "a sampler kernel miscomputes the top token",
                ("script", "code"): "a kernel overruns its buffer and corrupts the output",
                ("quality",): "a scheduler drops part of the KV cache",
            }[effects]
        else:
            edge = int(_choice(rng, list(PROMPT_EDGES)))
            if rng.random() < 0.4:
                long = [m.name for m in fleet.models if m.context >= 1_000_000]
                where = {"model": (long[int(rng.integers(len(long)))],)}
            effects = _choice(rng, [("quality",), ("loop",), ("script", "code")], [0.5, 0.3, 0.2])
            story = {
                ("quality",): "context truncation silently drops the middle of the prompt",
                ("loop",): "the attention kernel for long prompts degenerates into loops",
                ("script", "code"): "the long-context kernel corrupts the output",
            }[effects]
        bug = Bug("x", "numeric-edge", where, start, end, 1.0, effects, "",
                  ranges={column: (float(edge), None)})  # fmt: skip
        inside = population(traffic, bug)
        scope = population(traffic, Bug("x", "", where, start, end, 1.0, effects, ""))
        if inside.sum() < 200 or inside.sum() > 0.7 * scope.sum():
            return None
        intensity = {
            ("argmax",): rng.uniform(0.15, 0.5),
            ("script", "code"): rng.uniform(0.05, 0.2),
            ("quality",): rng.uniform(0.35, 0.75),
            ("loop",): rng.uniform(0.2, 0.5),
        }[effects]
        what = f"{column} >= {edge}" + (f" on {_scope_text(where)}" if where else "")
        return [
            Bug(
                name=f"edge-{column.replace('_', '-')}-{edge}",
                kind="numeric-edge",
                where=where,
                ranges={column: (float(edge), None)},
                start=start,
                end=end,
                intensity=float(intensity),
                effects=effects,
                scripts=(_choice(rng, ["Han", "Thai", "Cyrillic"]),),
                events=_events(
                    where or {"platform": tuple(sorted(fleet.platforms))},
                    start,
                    end,
                    f"runtime update ({column} handling)",
                    rng,
                ),
                description=f"From {iso(start)}, {story} for requests with {what}; "
                f"{intensity:.0%} of them hit.",
            )
        ]

    return _keep(draw, "numeric-edge", fleet, traffic, base, pools, rng)


# -- effect-columns -----------------------------------------------------------------


def plan_effect_columns(
    fleet: Fleet, traffic: Traffic, base: Responses, pools: Pools, rng: np.random.Generator
) -> list[Bug]:
    """A bug whose effect changes logged columns (which must never be taken for its cause)."""

    def draw(rng: np.random.Generator) -> list[Bug] | None:
        where: dict[str, tuple[str, ...]]
        if rng.random() < 0.5:
            groups: dict[tuple[str, str], list[str]] = {}
            for rep in fleet.replicas:
                if rep.start is None and rep.end is None:
                    groups.setdefault((rep.region, rep.platform), []).append(rep.name)
            racks = [names for names in groups.values() if len(names) >= 3]
            if not racks:
                return None
            names = sorted(racks[int(rng.integers(len(racks)))])
            k = int(rng.integers(2, min(4, len(names) - 1) + 1))
            first = int(rng.integers(0, len(names) - k + 1))
            where = {"server_id": tuple(names[first : first + k])}
        else:
            region = fleet.regions[int(rng.integers(len(fleet.regions)))]
            platform = region.platforms[int(rng.integers(len(region.platforms)))]
            where = {"region": (region.name,), "platform": (platform,)}
        effects = _choice(rng, [("loop",), ("blank",), ("slow",)], [0.4, 0.3, 0.3])
        start, end = _window(rng, fleet, 0.15, 0.75, (1, 6), open_end=0.15)
        intensity = {("loop",): rng.uniform(0.1, 0.35), ("blank",): rng.uniform(0.2, 0.5),
                     ("slow",): rng.uniform(0.5, 1.0)}[effects]  # fmt: skip
        story = {
            ("loop",): "decoding degenerates into repetition until max_tokens",
            ("blank",): "answers come back empty",
            ("slow",): "a network change slows every answer several times and some time out",
        }[effects]
        return [
            Bug(
                name=f"effect-{effects[0]}",
                kind="effect-columns",
                where=where,
                start=start,
                end=end,
                intensity=float(intensity),
                effects=effects,
                timeout_share=float(rng.uniform(0.15, 0.35)) if effects == ("slow",) else 0.0,
                events=_events(where, start, end, "serving stack update", rng),
                description=f"On {_scope_text(where)} from {iso(start)}: {story} "
                f"({intensity:.0%} of requests).",
            )
        ]

    return _keep(draw, "effect-columns", fleet, traffic, base, pools, rng)


# -- observable-subset --------------------------------------------------------------


def plan_observable_subset(
    fleet: Fleet, traffic: Traffic, base: Responses, pools: Pools, rng: np.random.Generator
) -> list[Bug]:
    """A bug whose symptom can only show on part of its rows."""

    def draw(rng: np.random.Generator) -> list[Bug] | None:
        scope = _choice(rng, ["platform", "model-platform", "region"], [0.5, 0.25, 0.25])
        where: dict[str, tuple[str, ...]]
        if scope == "platform":
            where = {
                "platform": (sorted(fleet.platforms)[int(rng.integers(len(fleet.platforms)))],)
            }
        elif scope == "model-platform":
            model = fleet.models[int(rng.integers(len(fleet.models)))]
            where = {"model": (model.name,),
                     "platform": (model.platforms[int(rng.integers(len(model.platforms)))],)}  # fmt: skip
        else:
            where = {"region": (fleet.regions[int(rng.integers(len(fleet.regions)))].name,)}
        start, end = _window(rng, fleet, 0.15, 0.7, (2, 8), open_end=0.2)
        if rng.random() < 0.5:
            effects: tuple[str, ...] = ("script",)
            scripts = _choice(rng, [("Han",), ("Han", "Hiragana"), ("Thai",), ("Hangul",)])
            intensity = rng.uniform(0.05, 0.2)
            story = f"output corruption inserts {'/'.join(scripts)} letters into the prose"
        else:
            effects = _choice(rng, [("argmax",), ("argmax", "quality")])
            scripts = ("Han",)
            intensity = rng.uniform(0.2, 0.6)
            story = "a sampler bug picks a non-top token" + (
                " and answers get worse" if "quality" in effects else ""
            )
        return [
            Bug(
                name=f"subset-{effects[0]}",
                kind="observable-subset",
                where=where,
                start=start,
                end=end,
                intensity=float(intensity),
                effects=effects,
                scripts=scripts,
                events=_events(where, start, end, "runtime update", rng),
                description=f"On {_scope_text(where)} from {iso(start)}, {story} "
                f"({intensity:.0%} of requests); it shows only where it can "
                "(a foreign script, a greedy request).",
            )
        ]

    return _keep(draw, "observable-subset", fleet, traffic, base, pools, rng)


# -- overlap ------------------------------------------------------------------------


def plan_overlap(
    fleet: Fleet, traffic: Traffic, base: Responses, pools: Pools, rng: np.random.Generator
) -> list[Bug]:
    """A misrouting (worse answers) and an output corruption sharing rows and time."""

    def draw(rng: np.random.Generator) -> list[Bug] | None:
        variant = _choice(rng, ["model-region", "pool-region", "model-tier"])
        model = fleet.models[int(rng.integers(len(fleet.models)))].name
        region = fleet.regions[int(rng.integers(len(fleet.regions)))].name
        where_a: dict[str, tuple[str, ...]]
        if variant == "model-region":
            where_a = {"model": (model,), "region": (region,)}
        elif variant == "pool-region":
            where_a = {"routing_pool": ("priority",), "region": (region,)}
        else:
            where_a = {"model": (model,), "customer_tier": (str(rng.choice(["free", "pro"])),)}
        start_a, end_a = _window(rng, fleet, 0.1, 0.5, (5, 12), open_end=0.15)
        a = Bug("misrouting", "overlap", where_a, start_a, end_a, float(rng.uniform(0.3, 0.6)),
                ("quality",), "")  # fmt: skip
        rows_a = population(traffic, a)
        if rows_a.sum() < 500:
            return None
        a_end = end_a if end_a is not None else fleet.end
        lo = start_a - 2 * DAY_MS
        start_b = _minute(rng, rng.uniform(max(lo, fleet.start + DAY_MS), a_end - DAY_MS))
        end_b = _minute(rng, start_b + rng.uniform(2, 6) * DAY_MS)
        end_b_opt = end_b if end_b < fleet.end - HOUR_MS else None
        platforms = _common(traffic, rows_a, "platform", 0.25)
        if not platforms:
            return None
        where_b: dict[str, tuple[str, ...]] = {
            "platform": (platforms[int(rng.integers(len(platforms)))],)
        }
        b = Bug("corruption", "overlap", where_b, start_b, end_b_opt, float(rng.uniform(0.05, 0.2)),
                ("script", "code"), "")  # fmt: skip
        both = population(traffic, a) & population(traffic, b)
        if both.sum() < 0.1 * rows_a.sum():
            return None
        scripts = (_choice(rng, ["Han", "Thai", "Hangul"]),)
        return [
            Bug(
                name="misrouting",
                kind="overlap",
                where=where_a,
                start=start_a,
                end=end_a,
                intensity=a.intensity,
                effects=a.effects,
                events=_events(where_a, start_a, end_a, "router rule change", rng),
                description=f"From {iso(start_a)}, requests of {_scope_text(where_a)} are "
                f"routed to a pool serving a quantised model: {a.intensity:.0%} of answers "
                "are worse (low eval, negative feedback).",
            ),
            Bug(
                name="corruption",
                kind="overlap",
                where=where_b,
                start=start_b,
                end=end_b_opt,
                intensity=b.intensity,
                effects=b.effects,
                scripts=scripts,
                events=_events(where_b, start_b, end_b_opt, "driver update", rng),
                description=f"From {iso(start_b)}, a driver bug on {_scope_text(where_b)} "
                f"corrupts {b.intensity:.0%} of answers ({scripts[0]} letters in the text, "
                "broken code blocks), overlapping the misrouting in rows and time.",
            ),
        ]

    return _keep(draw, "overlap", fleet, traffic, base, pools, rng)


def plan_null(
    fleet: Fleet, traffic: Traffic, base: Responses, pools: Pools, rng: np.random.Generator
) -> list[Bug]:
    """No bug: only the world's benign changes (mix shifts, launches, releases, drift)."""
    return []


KINDS: dict[str, Planner] = {
    "new-value": plan_new_value,
    "numeric-edge": plan_numeric_edge,
    "effect-columns": plan_effect_columns,
    "observable-subset": plan_observable_subset,
    "overlap": plan_overlap,
    "null": plan_null,
}
"""Every kind and its planner."""
