"""The simulation engine: a ``Scenario`` in, request rows (Arrow) and ground-truth counts out.

Generation is vectorised with numpy and deterministic for a seed:

1. Traffic for the whole range (``traffic.py``: sessions, users, arrival
   times), per-user and per-session columns, and every per-user random draw
   (sticky keys, new values) come from one ``Generator(PCG64(seed))``.
2. Rows are then made in time-ordered chunks, each with its own generator
   (``PCG64(SeedSequence([seed, chunk]))``): columns in spec order (cases,
   mixtures, red herrings' mix shifts and new values), baseline symptoms
   per slice, bugs in order (eligibility, intensity over time and per value,
   stickiness, reroutes, effects), then quality (eval_score, user_feedback),
   texts (pool index; per-row Python only for corrupted rows) and format
   columns (built after reroutes, so rerouted requests name their new servers).

Ground truth is tallied as rows are made and never written to the rows.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
from scipy import special

from forensics.errors import ConfigError
from forensics.schema import CANONICAL_COLUMNS
from forensics.signals import SignalParams
from forensics.simulate.spec import (
    EFFECTS,
    Bug,
    ColumnSpec,
    Draw,
    Predicate,
    Scenario,
    Schedule,
)
from forensics.simulate.text import (
    FOREIGN_CODE_SHARE,
    Pools,
    TextLibrary,
    build_pools,
    corrupt,
    load_library,
)
from forensics.simulate.traffic import HOUR, make_traffic, positions

__all__ = ["CHUNK_ROWS", "HOUR", "generate", "output_columns"]

CHUNK_ROWS = 1_000_000
"""Rows made per chunk (and per Parquet row group)."""

SAMPLED_RANK_P = 0.35
"""Geometric parameter of max_token_rank for sampled (temperature > 0) requests."""

LOW_EVAL = SignalParams().low_eval_threshold
"""eval_score below this counts as low_eval (the detector's default threshold)."""


@dataclass
class SignalTally:
    """Running counts for one symptom signal of one bug, over its truth population."""

    defined: int = 0
    """Rows of the population where the signal is defined."""
    observed: int = 0
    """Of those, rows where it is true (whatever the cause)."""
    baseline_expected: float = 0.0
    """Expected true rows without this bug (the baseline rates)."""
    injected: int = 0
    """Rows this bug turned (for low_eval / negative_feedback: turned bad) that were not already."""
    expected_excess: float = 0.0
    """Expected true rows this bug adds."""

    def as_json(self) -> dict[str, Any]:
        """The truth.json form."""
        rate = self.observed / self.defined if self.defined else None
        base = self.baseline_expected / self.defined if self.defined else None
        return {
            "defined_rows": self.defined,
            "observed": self.observed,
            "baseline_expected": round(self.baseline_expected, 2),
            "expected_excess": round(self.expected_excess, 2),
            "observed_excess": round(self.observed - self.baseline_expected, 2),
            "injected": self.injected,
            "rate_inside": None if rate is None else round(rate, 6),
            "rate_baseline": None if base is None else round(base, 6),
        }


@dataclass
class BugTally:
    """Running counts for one bug: its truth population, hits and signals."""

    population: int = 0
    """Rows matching the truth predicate inside the window."""
    hits: int = 0
    """Rows the bug hit."""
    users: set[int] = field(default_factory=set)
    """Users with at least one hit request."""
    signals: dict[str, SignalTally] = field(default_factory=dict)
    """Per symptom signal."""


@dataclass
class _Chunk:
    """The columns of one chunk while it is being made."""

    n: int
    ts: np.ndarray
    cats: dict[str, np.ndarray] = field(default_factory=dict)
    nums: dict[str, np.ndarray] = field(default_factory=dict)


class _Context:
    """Everything fixed for a run: the scenario, levels, pools, traffic, per-user/session draws."""

    def __init__(self, scenario: Scenario, rows: int, seed: int) -> None:
        self.s = scenario
        self.rows = rows
        self.seed = seed
        self.lib: TextLibrary = load_library()
        self.levels = {
            c.name: scenario.levels(c.name) for c in scenario.columns if c.type == "category"
        }
        self.code_of = {name: {v: i for i, v in enumerate(lv)} for name, lv in self.levels.items()}
        self.specs = {c.name: c for c in scenario.columns}
        self.has_limits = "max_tokens" in self.specs
        # Answer languages of wrong_language bugs get pools too (after the prompts' own).
        prompt_langs = self.levels["prompt_language"]
        for b in scenario.bugs:
            if (
                b.effects.get("wrong_language", 0) > 0
                and b.answer_language not in self.lib.languages
            ):
                raise ConfigError(
                    f"scenario {scenario.name}: bug {b.name!r}: answer_language "
                    f"{b.answer_language!r} is not a language of the text library "
                    f"(forensics/simulate/texts.toml): {', '.join(self.lib.languages)}"
                )
        self.languages = list(prompt_langs) + sorted(
            {b.answer_language for b in scenario.bugs if b.effects.get("wrong_language", 0) > 0}
            - set(prompt_langs)
        )
        self.pools: Pools = build_pools(self.lib, self.languages, self.levels["task"])
        self.language_code = {lang: i for i, lang in enumerate(self.languages)}
        self.wrong_detectable = _wrong_language_detectable(self, scenario)
        self.loops: dict[int, str] = {}
        rng = np.random.Generator(np.random.PCG64(seed))
        traffic = make_traffic(scenario, rows, rng)
        self.ts, self.users, self.sessions = traffic.ts, traffic.users, traffic.sessions
        self.n_users = traffic.n_users
        self.session_start, self.session_user = traffic.session_start, traffic.session_user
        self.user_names = pa.array([f"u{i:07d}" for i in range(self.n_users)], pa.string())
        # Per-user columns, then per-session ones (which may depend on the user's).
        users = _Chunk(self.n_users, np.zeros(self.n_users, dtype=np.int64))
        sessions = _Chunk(len(self.session_start), self.session_start)
        self.level_values: dict[str, np.ndarray] = {}
        for spec in scenario.columns:
            if spec.per == "user":
                _draw_column(self, users, spec, rng)
                self.level_values[spec.name] = _values(users, spec.name)
                _set(sessions, spec, self.level_values[spec.name][self.session_user])
        for spec in scenario.columns:
            if spec.per == "session":
                _draw_column(self, sessions, spec, rng)
                self.level_values[spec.name] = _values(sessions, spec.name)
        # Sticky bugs: each user's (session's) position on the line of all requests, in a
        # random order; a bug hits those before a threshold, so the share of requests
        # from susceptible users is the threshold itself, whoever the heavy users are.
        self.sticky_u: dict[str, np.ndarray] = {}
        for bug in scenario.bugs:
            if bug.sticky_by == "user_id":
                self.sticky_u[bug.name] = positions(
                    np.bincount(self.users, minlength=self.n_users), rng
                )
            elif bug.sticky_by == "session_id":
                counts = np.bincount(self.sessions, minlength=len(self.session_start))
                self.sticky_u[bug.name] = positions(counts, rng)
            elif bug.sticky_by is not None:
                self.sticky_u[bug.name] = rng.random(len(self.levels[bug.sticky_by]))
        self.new_value_u = {
            rh.name: rng.random(
                self.n_users if self.specs[rh.column].per == "user" else len(self.session_start)
            )
            for rh in scenario.red_herrings
            if rh.kind == "new_value" and rh.column and self.specs[rh.column].per != "request"
        }
        # Foreign alphabets per (language, script set): set 0 = the baseline's (every
        # foreign script), set b + 1 = bug b's scripts.
        langs = self.levels["prompt_language"]
        sets: list[tuple[str, ...] | None] = [None, *(b.scripts for b in scenario.bugs)]
        self.alphabets = [
            [
                "".join(self.lib.scripts[x] for x in self.lib.foreign_scripts(lang, wanted))
                for wanted in sets
            ]
            for lang in langs
        ]
        self.feasible = np.array([[bool(a) for a in row] for row in self.alphabets])


def _values(chunk: _Chunk, name: str) -> np.ndarray:
    return chunk.cats[name] if name in chunk.cats else chunk.nums[name]


def _set(chunk: _Chunk, spec: ColumnSpec, values: np.ndarray) -> None:
    (chunk.cats if spec.type == "category" else chunk.nums)[spec.name] = values


# -- columns ---------------------------------------------------------------------------


def _mask(ctx: _Context, chunk: _Chunk, where: Predicate) -> np.ndarray:
    """Rows of a chunk matching a predicate."""
    out = np.ones(chunk.n, dtype=bool)
    for cond in where.conditions:
        if cond.column in chunk.cats:
            wanted = [ctx.code_of[cond.column][str(v)] for v in cond.values or ()]
            out &= np.isin(chunk.cats[cond.column], wanted)
            continue
        values = chunk.nums[cond.column]
        if cond.values is not None:
            out &= np.isin(values, np.asarray(cond.values, dtype=float))
        if cond.gte is not None:
            out &= values >= cond.gte
        if cond.lt is not None:
            out &= values < cond.lt
    return out


def _interp(schedule: Schedule, t: np.ndarray) -> np.ndarray:
    xs = np.array([p[0] for p in schedule.points], dtype=float)
    ys = np.array([p[1] for p in schedule.points], dtype=float)
    return np.interp(t.astype(float), xs, ys)


def _draw_category(
    ctx: _Context,
    spec: ColumnSpec,
    draw: Draw,
    rows: np.ndarray,
    chunk: _Chunk,
    rng: np.random.Generator,
) -> np.ndarray:
    codes = np.array([ctx.code_of[spec.name][str(v)] for v in draw.values], dtype=np.int32)
    if draw.kind == "constant":
        return np.full(len(rows), codes[0], dtype=np.int32)
    weights = np.asarray(draw.weights)
    shifts = [rh for rh in ctx.s.red_herrings if rh.kind == "mix_shift" and rh.column == spec.name]
    if not shifts:
        return codes[rng.choice(len(codes), size=len(rows), p=weights)]
    w = np.broadcast_to(weights, (len(rows), len(codes))).copy()
    for rh in shifts:
        assert rh.schedule is not None
        strength = _interp(rh.schedule, chunk.ts[rows])[:, None]
        factors = np.array([rh.factors.get(str(v), 1.0) for v in draw.values])
        w *= 1 + (factors - 1) * strength
    cum = np.cumsum(w, axis=1)
    u = rng.random(len(rows))[:, None] * cum[:, -1:]
    return codes[np.minimum((cum < u).sum(axis=1), len(codes) - 1)]


def _draw_numeric(spec: ColumnSpec, draw: Draw, n: int, rng: np.random.Generator) -> np.ndarray:
    if draw.kind == "constant":
        out = np.full(n, float(draw.values[0]))
    elif draw.kind == "choice":
        out = np.asarray(draw.values, dtype=float)[
            rng.choice(len(draw.values), size=n, p=draw.weights)
        ]
    elif draw.kind == "lognormal":
        mu = math.log(draw.median)
        lo = special.ndtr((math.log(draw.low) - mu) / draw.sigma) if draw.low > 0 else 0.0
        hi = (
            special.ndtr((math.log(draw.high) - mu) / draw.sigma)
            if math.isfinite(draw.high)
            else 1.0
        )
        u = lo + (hi - lo) * rng.random(n)
        out = np.exp(mu + draw.sigma * special.ndtri(u))
    elif draw.kind == "loguniform":
        out = np.exp(rng.uniform(math.log(draw.low), math.log(draw.high), n))
    else:
        out = rng.uniform(draw.low, draw.high, n)
    if spec.type == "int":
        out = np.rint(out)
        if draw.kind in ("lognormal", "loguniform", "uniform"):
            out = np.clip(
                out,
                math.ceil(draw.low) if math.isfinite(draw.low) else None,
                math.floor(draw.high) if math.isfinite(draw.high) else None,
            )
        return out.astype(np.int64)
    return out


def _assign_cases(
    ctx: _Context, chunk: _Chunk, spec: ColumnSpec, rng: np.random.Generator
) -> np.ndarray:
    """Index of the case each row takes (first match, with its share), -1 for the default."""
    assigned = np.full(chunk.n, -1, dtype=np.int32)
    for j, case in enumerate(spec.cases):
        m = (assigned == -1) & _mask(ctx, chunk, case.where)
        if case.share < 1:
            m &= rng.random(chunk.n) < case.share
        assigned[m] = j
    return assigned


def _draw_column(ctx: _Context, chunk: _Chunk, spec: ColumnSpec, rng: np.random.Generator) -> None:
    """Draw one column for every row of a chunk: first matching case, else the default."""
    assigned = _assign_cases(ctx, chunk, spec, rng)
    draws = [spec.draw, *(c.draw for c in spec.cases)]
    if spec.type == "category":
        out = np.zeros(chunk.n, dtype=np.int32)
        for j, draw in enumerate(draws):
            rows = np.flatnonzero(assigned == j - 1)
            if len(rows):
                out[rows] = _draw_category(ctx, spec, draw, rows, chunk, rng)
        chunk.cats[spec.name] = out
    else:
        values = np.zeros(chunk.n, dtype=np.int64 if spec.type == "int" else float)
        for j, draw in enumerate(draws):
            rows = np.flatnonzero(assigned == j - 1)
            if len(rows):
                values[rows] = _draw_numeric(spec, draw, len(rows), rng)
        chunk.nums[spec.name] = values


def _new_values(
    ctx: _Context,
    chunk: _Chunk,
    spec: ColumnSpec,
    users: np.ndarray,
    sessions: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Red herrings that make a new value appear: a growing share takes it.

    Per-user and per-session columns switch whole users / sessions (a session keeps
    the value it started with).
    """
    for rh in ctx.s.red_herrings:
        if rh.kind != "new_value" or rh.column != spec.name:
            continue
        assert rh.schedule is not None
        assert rh.value is not None
        if spec.per == "user":
            u, t = ctx.new_value_u[rh.name][users], chunk.ts
        elif spec.per == "session":
            u, t = ctx.new_value_u[rh.name][sessions], ctx.session_start[sessions]
        else:
            u, t = rng.random(chunk.n), chunk.ts
        share = np.where(t >= rh.schedule.points[0][0], _interp(rh.schedule, t), 0.0)
        chunk.cats[spec.name][u < share] = ctx.code_of[spec.name][rh.value]


def _format_column(
    ctx: _Context, chunk: _Chunk, spec: ColumnSpec, rng: np.random.Generator
) -> pa.Array:
    """A string column built from category columns and a number: dictionary-encoded."""
    assigned = _assign_cases(ctx, chunk, spec, rng)
    draws = [spec.draw, *(c.draw for c in spec.cases)]
    fields = sorted({f for d in draws for f in _fields(d.template)})
    n = np.array([d.n for d in draws])[assigned + 1]
    number = (rng.random(chunk.n) * n).astype(np.int64)
    key = (assigned + 1).astype(np.int64)
    for f in fields:
        key = key * len(ctx.levels[f]) + chunk.cats[f]
    key = key * int(n.max()) + number
    uniq, inverse = np.unique(key, return_inverse=True)
    first = np.zeros(len(uniq), dtype=np.int64)
    first[inverse[::-1]] = np.arange(chunk.n)[::-1]
    names = []
    for row in first:
        values = {f: ctx.levels[f][chunk.cats[f][row]] for f in fields}
        names.append(draws[assigned[row] + 1].template.format(n=int(number[row]), **values))
    return pa.DictionaryArray.from_arrays(
        pa.array(inverse.astype(np.int32)), pa.array(names, pa.string())
    )


def _fields(template: str) -> list[str]:
    import string

    return [f for _, f, _, _ in string.Formatter().parse(template) if f and f != "n"]


# -- symptoms and bugs -------------------------------------------------------------------


def _baseline_rates(ctx: _Context, chunk: _Chunk) -> dict[str, np.ndarray]:
    rates = {e: np.full(chunk.n, ctx.s.baseline.rates.get(e, 0.0)) for e in EFFECTS}
    for rule in ctx.s.baseline.rules:
        m = _mask(ctx, chunk, rule.where)
        for e, v in rule.set.items():
            rates[e][m] = v
        for e, v in rule.scale.items():
            rates[e][m] *= v
    return {e: np.clip(r, 0.0, 1.0) for e, r in rates.items()}


def _in_window(bug: Bug, ts: np.ndarray) -> np.ndarray:
    m = ts >= bug.start
    if bug.end is not None:
        m &= ts < bug.end
    return m


def _intensity(ctx: _Context, chunk: _Chunk, bug: Bug, rows: np.ndarray) -> np.ndarray:
    t = chunk.ts[rows]
    p = _interp(bug.intensity, t)
    if bug.intensity_column:
        codes = chunk.cats[bug.intensity_column][rows]
        for value, schedule in bug.intensity_by.items():
            m = codes == ctx.code_of[bug.intensity_column][value]
            p[m] = _interp(schedule, t[m])
    for column, table in bug.multipliers.items():
        if column in chunk.cats:
            factor = np.ones(len(ctx.levels[column]))
            for value, f in table.items():
                factor[ctx.code_of[column][value]] = f
            p *= factor[chunk.cats[column][rows]]
        else:
            values = chunk.nums[column][rows]
            for value, f in table.items():
                p[values == float(value)] *= f
    for column, points in bug.curves.items():
        xs, fs = zip(*points, strict=True)
        p *= np.interp(chunk.nums[column][rows].astype(float), xs, fs)
    return np.clip(p, 0.0, 1.0)


def _hits(
    ctx: _Context,
    chunk: _Chunk,
    bug: Bug,
    rows: np.ndarray,
    keys: tuple[np.ndarray, np.ndarray],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Which eligible rows the bug hits (independently, or concentrated on sticky keys), and p."""
    p = _intensity(ctx, chunk, bug, rows)
    v = rng.random(len(rows))
    if bug.sticky_by is None:
        return rows[v < p], p
    users, sessions = keys
    if bug.sticky_by == "user_id":
        key = users[rows]
    elif bug.sticky_by == "session_id":
        key = sessions[rows]
    else:
        key = chunk.cats[bug.sticky_by][rows]
    u = ctx.sticky_u[bug.name][key]
    r = bug.sticky_rate
    # A key is susceptible while its position is below p / r; susceptible keys are hit
    # with probability r, so the share hit stays p and the same keys are hit again.
    hit = np.where(p <= r, (u < p / r) & (v < r), v < p)
    return rows[hit], p


# -- one chunk -----------------------------------------------------------------------------


@dataclass
class _Outcome:
    """Per-row symptom state of one chunk, baseline and after the bugs."""

    rates: dict[str, np.ndarray]
    """Baseline rate per effect."""
    base: dict[str, np.ndarray]
    """Effect flags from the baseline alone."""
    flags: dict[str, np.ndarray]
    """Effect flags after every bug."""
    template: np.ndarray
    """Pool template index."""
    has_code: np.ndarray
    """The response holds a code block."""
    greedy: np.ndarray
    """temperature == 0."""
    rank: np.ndarray
    """max_token_rank."""
    mix_set: np.ndarray
    """Script set of the foreign run (-1 none, 0 baseline, b + 1 bug b)."""
    code_set: np.ndarray
    """Who broke the code block (-1 nobody, 0 baseline, b + 1 bug b)."""
    replaced: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    """The answer was replaced by one in another language."""
    hits: dict[str, np.ndarray] = field(default_factory=dict)
    """Rows each bug hit."""
    p_hit: dict[str, np.ndarray] = field(default_factory=dict)
    """Per bug and row, the probability the bug hit it."""
    marks: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    """Per bug and effect, the rows it set."""
    eval_score: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """eval_score."""
    rated: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    """The user gave feedback."""
    feedback: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """user_feedback where rated."""


def _baseline(ctx: _Context, chunk: _Chunk, rng: np.random.Generator) -> _Outcome:
    n = chunk.n
    rates = _baseline_rates(ctx, chunk)
    lang, task = chunk.cats["prompt_language"], chunk.cats["task"]
    pools = ctx.pools
    template = pools.start[lang, task] + (rng.random(n) * pools.size[lang, task]).astype(np.int64)
    has_code = pools.has_code[template]
    greedy = chunk.nums["temperature"] == 0
    base = {
        "script_mix": (rng.random(n) < rates["script_mix"]) & ctx.feasible[lang, 0],
        "code_syntax_error": has_code & (rng.random(n) < rates["code_syntax_error"]),
        "argmax_violation": greedy & (rng.random(n) < rates["argmax_violation"]),
        "low_quality": rng.random(n) < rates["low_quality"],
    }
    # Effects on the answer's form and language (drawn only when a rate asks for them, so
    # scenarios without them make the same draws as before they existed).
    for effect in ("repetition", "empty_response", "wrong_language"):
        rate = rates[effect]
        base[effect] = (rng.random(n) < rate) if rate.any() else np.zeros(n, dtype=bool)
    base["wrong_language"] &= False  # the baseline never answers in another language
    truncated = np.zeros(n, dtype=bool)
    if ctx.has_limits:
        truncated = chunk.nums["output_tokens"] >= chunk.nums["max_tokens"]
        if rates["truncated"].any():
            truncated |= rng.random(n) < rates["truncated"]
    base["truncated"] = truncated
    rank = np.where(greedy, 1, np.minimum(rng.geometric(SAMPLED_RANK_P, n), 64)).astype(np.int64)
    rank[base["argmax_violation"]] = 1 + rng.geometric(0.6, int(base["argmax_violation"].sum()))
    return _Outcome(
        rates=rates,
        base=base,
        flags={e: f.copy() for e, f in base.items()},
        template=template,
        has_code=has_code.copy(),
        greedy=greedy,
        rank=rank,
        mix_set=np.where(base["script_mix"], 0, -1),
        code_set=np.where(base["code_syntax_error"], 0, -1),
        replaced=np.zeros(n, dtype=bool),
    )


def _apply_bugs(
    ctx: _Context,
    chunk: _Chunk,
    out: _Outcome,
    keys: tuple[np.ndarray, np.ndarray],
    rng: np.random.Generator,
) -> None:
    lang = chunk.cats["prompt_language"]
    for b, bug in enumerate(ctx.s.bugs):
        rows = np.flatnonzero(_in_window(bug, chunk.ts) & _mask(ctx, chunk, bug.where))
        hits, p = _hits(ctx, chunk, bug, rows, keys, rng)
        out.hits[bug.name] = hits
        p_hit = np.zeros(chunk.n)
        if bug.reroute is not None:
            column, value = bug.reroute
            chunk.cats[column][hits] = ctx.code_of[column][value]
            p_hit[hits] = 1.0  # the truth population is exactly the rerouted requests
        else:
            p_hit[rows] = p
        out.p_hit[bug.name] = p_hit
        out.marks[bug.name] = {}
        for effect in EFFECTS:
            rate = bug.effects.get(effect, 0.0)
            if rate <= 0:
                continue
            got = hits[rng.random(len(hits)) < rate]
            if effect == "script_mix":
                got = got[ctx.feasible[lang[got], b + 1]]
                out.mix_set[got] = b + 1
            elif effect == "code_syntax_error":
                got = got[out.has_code[got]]
                out.code_set[got] = b + 1
            elif effect == "argmax_violation":
                out.rank[got] = np.maximum(out.rank[got], 1 + rng.geometric(0.5, len(got)))
            elif effect == "wrong_language":
                got = _answer_in(ctx, chunk, out, bug, got, rng)
            mark = np.zeros(chunk.n, dtype=bool)
            mark[got] = True
            out.flags[effect] |= mark
            out.marks[bug.name][effect] = mark
            if effect == "repetition":  # a loop runs to the limit: truncated too
                out.flags["truncated"] |= mark
                out.marks[bug.name]["truncated"] = mark | out.marks[bug.name].get(
                    "truncated", np.zeros(chunk.n, dtype=bool)
                )
    _settle_answers(ctx, chunk, out)


def _answer_in(
    ctx: _Context,
    chunk: _Chunk,
    out: _Outcome,
    bug: Bug,
    rows: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Give ``rows`` an answer from the bug's answer language; return those the detector sees.

    Requests whose prompt is already in that language are not hit. The answer is a
    template of the same task in that language; whether ``wrong_language`` fires on it
    (enough prose, identified) was settled per template (``ctx.wrong_detectable``).
    """
    target = ctx.language_code[bug.answer_language]
    rows = rows[chunk.cats["prompt_language"][rows] != target]
    task = chunk.cats["task"][rows]
    start, size = ctx.pools.start[target, task], ctx.pools.size[target, task]
    chosen = start + (rng.random(len(rows)) * size).astype(np.int64)
    out.template[rows] = chosen
    out.has_code[rows] = ctx.pools.has_code[chosen]
    out.replaced[rows] = True
    return rows[ctx.wrong_detectable[chosen]]


def _settle_answers(ctx: _Context, chunk: _Chunk, out: _Outcome) -> None:
    """Settle the answers replaced by a loop, a blank or another language.

    They lose the corruption drawn for the original text (its foreign runs and broken
    code are gone), and token counts follow: a blank answer has none, a loop or a
    truncated answer reached the limit.
    """
    blank = out.flags["empty_response"]
    looped = out.flags["repetition"] & ~blank
    out.flags["wrong_language"] &= ~blank & ~looped
    gone = blank | looped | out.replaced
    if not gone.any() and not ctx.has_limits:
        return
    out.has_code[blank | looped] = False
    out.mix_set[gone] = -1
    out.code_set[gone] = -1
    for effect in ("script_mix", "code_syntax_error"):
        out.flags[effect] &= ~gone
        out.base[effect] &= ~gone
    if ctx.has_limits:
        used, limit = chunk.nums["output_tokens"], chunk.nums["max_tokens"]
        at_limit = out.flags["truncated"] & ~blank
        used[at_limit] = limit[at_limit]
        used[:] = np.minimum(used, limit)
        used[blank] = 0
        out.flags["truncated"] &= ~blank


def _quality(ctx: _Context, out: _Outcome, rng: np.random.Generator) -> None:
    """eval_score and user_feedback from each request's quality (bad or good)."""
    q = ctx.s.quality
    n = len(out.template)
    bad = out.flags["low_quality"]
    a = np.where(bad, q.bad_eval[0], q.good_eval[0])
    b = np.where(bad, q.bad_eval[1], q.good_eval[1])
    out.eval_score = np.round(rng.beta(a, b), 3)
    out.rated = rng.random(n) < q.feedback_share
    u = rng.random(n)
    p_neg = np.where(bad, q.feedback_bad[0], q.feedback_good[0])
    p_zero = np.where(bad, q.feedback_bad[1], q.feedback_good[1])
    out.feedback = np.where(u < p_neg, -1, np.where(u < p_neg + p_zero, 0, 1)).astype(np.int64)


def _make_chunk(ctx: _Context, lo: int, hi: int, tallies: dict[str, BugTally]) -> pa.Table:
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([ctx.seed, lo // CHUNK_ROWS])))
    chunk = _Chunk(hi - lo, ctx.ts[lo:hi])
    users, sessions = ctx.users[lo:hi], ctx.sessions[lo:hi]
    for spec in ctx.s.columns:
        if spec.type == "format":
            continue
        if spec.per == "request":
            _draw_column(ctx, chunk, spec, rng)
        else:
            keys = users if spec.per == "user" else sessions
            _set(chunk, spec, ctx.level_values[spec.name][keys].copy())
        if spec.type == "category":
            _new_values(ctx, chunk, spec, users, sessions, rng)
    out = _baseline(ctx, chunk, rng)
    _apply_bugs(ctx, chunk, out, (users, sessions), rng)
    _quality(ctx, out, rng)
    text_indices, extra_texts = _texts(ctx, out, chunk.cats["prompt_language"], rng)
    _tally(ctx, chunk, out, users, tallies)
    return _table(ctx, chunk, lo, users, sessions, rng, out, text_indices, extra_texts)


def _texts(
    ctx: _Context, out: _Outcome, lang: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, list[str]]:
    """Template index per row; corrupted rows point past the pool to their own text."""
    indices = out.template.astype(np.int32)
    extra: list[str] = []
    offset = len(ctx.pools.texts)
    for row in np.flatnonzero((out.mix_set >= 0) | (out.code_set >= 0)):
        lg, mix, code = int(lang[row]), int(out.mix_set[row]), int(out.code_set[row])
        code_alphabet = None
        if code > 0 and rng.random() < FOREIGN_CODE_SHARE:
            code_alphabet = ctx.alphabets[lg][code] or None
        extra.append(
            corrupt(
                ctx.pools.templates[out.template[row]],
                rng,
                prose_alphabet=ctx.alphabets[lg][mix] if mix >= 0 else None,
                code_alphabet=code_alphabet,
                break_code=code >= 0,
            )
        )
        indices[row] = offset + len(extra) - 1
    blank = out.flags["empty_response"]
    if blank.any():
        extra.append("")
        indices[blank] = offset + len(extra) - 1
    for template in np.unique(out.template[out.flags["repetition"] & ~blank]):
        rows = out.flags["repetition"] & ~blank & (out.template == template)
        extra.append(_loop_text(ctx, int(template)))
        indices[rows] = offset + len(extra) - 1
    return indices, extra


LOOP_CHARS = 1600
"""Length of a degenerate answer (about 400 tokens of one repeated unit)."""


def _loop_text(ctx: _Context, template: int) -> str:
    """The degenerate answer a template's text turns into: its start, then one unit on loop.

    The unit is a word of its first prose part (two letters where words are not spaced),
    chosen from the text itself, so the same template always loops the same way.
    """
    if template in ctx.loops:
        return ctx.loops[template]
    prose = next(t for k, t in ctx.pools.templates[template].parts if k == "prose")
    words = [w for w in prose.split() if any(c.isalpha() for c in w)]
    pick = zlib.crc32(prose.encode())
    if len(words) >= 4:
        unit = words[pick % len(words)] + " "
        start = prose[: prose.index(unit.strip())]
    else:
        letters = [i for i, c in enumerate(prose[:-1]) if c.isalpha() and prose[i + 1].isalpha()]
        at = letters[pick % len(letters)] if letters else 0
        unit, start = prose[at : at + 2] or "ok", prose[:at]
    text = start + unit * (LOOP_CHARS // len(unit))
    ctx.loops[template] = text
    return text


def _wrong_language_detectable(ctx: _Context, scenario: Scenario) -> np.ndarray:
    """Per template: would ``wrong_language`` name its language when it answers another's prompt.

    True for the templates of each wrong_language bug's answer language whose prose is
    long enough and is identified as that language (a code task's answer is mostly
    code: too little prose). Other templates: False (never used for another language).
    """
    out = np.zeros(len(ctx.pools.texts), dtype=bool)
    answer_langs = {
        b.answer_language for b in scenario.bugs if b.effects.get("wrong_language", 0) > 0
    }
    if not answer_langs:
        return out
    from forensics.signals import wrong_language as wl

    params = SignalParams()
    for lang in answer_langs:
        code = ctx.language_code[lang]
        for j in range(len(ctx.levels["task"])):
            first = int(ctx.pools.start[code, j])
            for i in range(first, first + int(ctx.pools.size[code, j])):
                other = "de" if lang != "de" else "en"  # any prompt language but the answer's
                verdict = wl.judge(
                    ctx.pools.texts[i],
                    other,
                    None,
                    min_letters=params.wrong_language_min_letters,
                    min_confidence=params.wrong_language_min_confidence,
                )
                out[i] = bool(verdict)
    return out


def _tally(
    ctx: _Context, chunk: _Chunk, out: _Outcome, users: np.ndarray, tallies: dict[str, BugTally]
) -> None:
    """Count, per bug, its truth population and each of its signals inside it.

    ``expected_excess`` sums, over the population, the chance the bug hit a row
    times the chance it then changed the signal: what the bug adds on average.
    """
    q = ctx.s.quality
    low_good = float(special.betainc(*q.good_eval, LOW_EVAL))
    low_bad = float(special.betainc(*q.bad_eval, LOW_EVAL))
    lang = chunk.cats["prompt_language"]
    rates, base, flags = out.rates, out.base, out.flags
    for b, bug in enumerate(ctx.s.bugs):
        t = tallies[bug.name]
        pop = _in_window(bug, chunk.ts) & _mask(ctx, chunk, bug.truth_predicate)
        t.population += int(pop.sum())
        t.hits += len(out.hits[bug.name])
        t.users.update(np.unique(users[out.hits[bug.name]]).tolist())
        for effect, e in bug.effects.items():
            if e <= 0:
                continue
            mark = out.marks[bug.name].get(effect, np.zeros(chunk.n, dtype=bool))
            new = mark & ~base[effect]
            ph = out.p_hit[bug.name] * e
            r = rates[effect]
            if effect == "script_mix":
                base_rate = r * ctx.feasible[lang, 0]
                add = ph * ctx.feasible[lang, b + 1] * (1 - base_rate)
                _add(t, "script_mix", pop, flags[effect], base_rate, new, add)
            elif effect == "code_syntax_error":
                _add(t, effect, pop & out.has_code, flags[effect], r, new, ph * (1 - r))
            elif effect == "argmax_violation":
                _add(t, effect, pop & out.greedy, out.rank > 1, r, new, ph * (1 - r))
            elif effect in ("repetition", "empty_response", "wrong_language"):
                _add(t, effect, pop, flags[effect], r, new, ph * (1 - r))
                if effect == "repetition" and ctx.has_limits and "truncated" not in bug.effects:
                    _add_truncated(t, pop, out, out.marks[bug.name]["truncated"], ph)
            elif effect == "truncated":
                _add_truncated(t, pop, out, mark, ph)
            else:
                low = r * low_bad + (1 - r) * low_good
                _add(
                    t,
                    "low_eval",
                    pop,
                    out.eval_score < LOW_EVAL,
                    low,
                    new,
                    ph * (1 - r) * (low_bad - low_good),
                )
                neg = r * q.feedback_bad[0] + (1 - r) * q.feedback_good[0]
                gain = ph * (1 - r) * (q.feedback_bad[0] - q.feedback_good[0])
                _add(t, "negative_feedback", pop & out.rated, out.feedback == -1, neg, new, gain)


def _add_truncated(
    t: BugTally, pop: np.ndarray, out: _Outcome, mark: np.ndarray, p_hit: np.ndarray
) -> None:
    """The truncated tally: answers at their limit, against those at it without any bug."""
    natural = out.base["truncated"].astype(float)
    _add(t, "truncated", pop, out.flags["truncated"], natural, mark & ~out.base["truncated"],
         p_hit * (1 - natural))  # fmt: skip


def _add(
    t: BugTally,
    signal: str,
    defined: np.ndarray,
    value: np.ndarray,
    baseline: np.ndarray,
    injected: np.ndarray,
    excess: np.ndarray,
) -> None:
    tally = t.signals.setdefault(signal, SignalTally())
    tally.defined += int(defined.sum())
    tally.observed += int((value & defined).sum())
    tally.baseline_expected += float(np.broadcast_to(baseline, defined.shape)[defined].sum())
    tally.injected += int((injected & defined).sum())
    tally.expected_excess += float(excess[defined].sum())


def _dictionary(indices: np.ndarray, values: list[str]) -> pa.DictionaryArray:
    """A dictionary array with unique values (Parquet writes no dictionary when values repeat)."""
    first: dict[str, int] = {}
    remap = np.array([first.setdefault(v, len(first)) for v in values], dtype=np.int32)
    return pa.DictionaryArray.from_arrays(
        pa.array(remap[indices], pa.int32()), pa.array(list(first), pa.string())
    )


def _strings(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """``prefix`` + zero-padded numbers, as an Arrow string array (vectorised in Polars)."""
    frame = pl.DataFrame({"x": numbers})
    out = frame.select(pl.lit(prefix) + pl.col("x").cast(pl.String).str.zfill(width)).to_series()
    return out.to_arrow().cast(pa.string())


def _table(
    ctx: _Context,
    chunk: _Chunk,
    lo: int,
    users: np.ndarray,
    sessions: np.ndarray,
    rng: np.random.Generator,
    out: _Outcome,
    text_indices: np.ndarray,
    extra_texts: list[str],
) -> pa.Table:
    n = chunk.n
    columns: dict[str, pa.Array] = {
        "request_id": _strings("req-", np.arange(lo, lo + n), 10),
        "ts": pa.array(chunk.ts // 1000, pa.timestamp("ms", tz="UTC")),
        "user_id": pa.DictionaryArray.from_arrays(pa.array(users, pa.int32()), ctx.user_names),
        "session_id": _strings("s", sessions, 8),
        "response_text": _dictionary(text_indices, [*ctx.pools.texts, *extra_texts]),
        "max_token_rank": pa.array(out.rank, pa.int64()),
        "user_feedback": pa.array(out.feedback, pa.int64(), mask=~out.rated),
        "eval_score": pa.array(out.eval_score, pa.float64()),
    }
    if ctx.has_limits:
        at_limit = chunk.nums["output_tokens"] >= chunk.nums["max_tokens"]
        columns["finish_reason"] = pa.DictionaryArray.from_arrays(
            pa.array(at_limit.astype(np.int32)), pa.array(["stop", "length"], pa.string())
        )
    for spec in ctx.s.columns:
        if spec.type == "format":
            columns[spec.name] = _format_column(ctx, chunk, spec, rng)
        elif spec.type == "category":
            columns[spec.name] = pa.DictionaryArray.from_arrays(
                pa.array(chunk.cats[spec.name], pa.int32()),
                pa.array(ctx.levels[spec.name], pa.string()),
            )
        else:
            columns[spec.name] = pa.array(
                chunk.nums[spec.name], pa.int64() if spec.type == "int" else pa.float64()
            )
    return pa.table({name: columns[name] for name in output_columns(ctx.s)})


def output_columns(s: Scenario) -> list[str]:
    """Column order of requests.parquet: canonical columns first, then the scenario's extras.

    Every canonical column is written but ``max_tokens`` and ``finish_reason``, written
    when the scenario defines ``max_tokens``, and ``prompt_text``, never written.
    """
    defined = {c.name for c in s.columns}
    optional = {"max_tokens": "max_tokens" in defined, "finish_reason": "max_tokens" in defined}
    optional["prompt_text"] = False
    canonical = [c.name for c in CANONICAL_COLUMNS if optional.get(c.name, True)]
    return canonical + [c.name for c in s.columns if c.name not in canonical]


def generate(
    scenario: Scenario, *, rows: int, seed: int
) -> tuple[Iterator[pa.Table], dict[str, BugTally]]:
    """Make ``rows`` requests of ``scenario``: an iterator of Arrow chunks, and the tallies.

    The tallies fill as the iterator is consumed.
    """
    ctx = _Context(scenario, rows, seed)
    tallies = {bug.name: BugTally() for bug in scenario.bugs}

    def chunks() -> Iterator[pa.Table]:
        for lo in range(0, rows, CHUNK_ROWS):
            yield _make_chunk(ctx, lo, min(rows, lo + CHUNK_ROWS), tallies)

    return chunks(), tallies
