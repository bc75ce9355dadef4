"""The response side of the field family: baseline quality with drift, and the outcome columns.

``draw_responses`` decides, per request and before any bug, what the answer
is (a draft of the pools), whether it is bad, whether its code is broken or a
stray run of letters slipped in, how long it would run, and every random draw
the outcome columns need later. Bugs (``kinds.py``) then edit these latents;
``outcome_columns`` turns them into the logged columns (output tokens, finish
reason, latency, status, max token rank, feedback, eval score) with no new
randomness, so the same latents give the same columns, and ``intended_signals``
says what each built-in and declared signal should read, from the latents alone.

Baselines drift: every symptom's rate has a slow trend over the period, a
weekly wobble and a day-to-day jitter, and each model's quality its own trend;
tasks, languages and models differ (some are always a bit worse).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from forensics.simulate.field.fleet import DAY_MS, Fleet
from forensics.simulate.field.phrases import FOREIGN_RUNS
from forensics.simulate.field.text import Pools, shows_run
from forensics.simulate.field.traffic import Traffic

__all__ = [
    "SLOW_MS",
    "Responses",
    "draw_responses",
    "intended_signals",
    "outcome_columns",
]

SLOW_MS = 60_000
"""The field family's declared ``slow`` signal: latency_ms above this (``mapping.toml``)."""

_BAD_BY_TASK = {"chat": 1.0, "code": 1.25, "summarize": 0.85, "extraction": 0.8,
                "analysis": 1.3, "translation": 1.1}  # fmt: skip
_BAD_BY_LANGUAGE = {"en": 1.0, "es": 1.05, "de": 1.0, "fr": 1.05, "pt-BR": 1.1, "ja": 1.15,
                    "zh-Hans": 1.1, "ko": 1.2, "th": 1.4, "id": 1.15, "vi": 1.3, "hi": 1.35}  # fmt: skip
_RUN_BY_LANGUAGE = {"ja": 0.0012, "zh-Hans": 0.0008, "ko": 0.001, "th": 0.0025, "hi": 0.002}
_OUTPUT_MEDIAN = {"chat": 250, "code": 600, "summarize": 300, "extraction": 220,
                  "analysis": 700, "translation": 120}  # fmt: skip
_FORMS_BY_TASK = {
    "chat": (("prose", 0.72), ("list", 0.2), ("python", 0.04), ("shell", 0.04)),
    "code": (("python", 0.7), ("shell", 0.15), ("prose", 0.1), ("json", 0.05)),
    "summarize": (("list", 0.6), ("prose", 0.4)),
    "extraction": (("json", 0.8), ("list", 0.1), ("prose", 0.1)),
    "analysis": (("prose", 0.4), ("list", 0.3), ("python", 0.2), ("json", 0.1)),
    "translation": (("translation", 1.0),),
}
_FEEDBACK_BY_CLIENT = {"ios": 0.06, "android": 0.06, "web": 0.04, "cli": 0.01}


@dataclass
class Responses:
    """Per-request latents of the answers (arrays aligned with the traffic)."""

    status: np.ndarray
    """HTTP status."""
    draft: np.ndarray
    """Draft id in the pools."""
    blank: np.ndarray
    """The answer is empty."""
    loop: np.ndarray
    """The answer is a degenerate loop running to max_tokens."""
    bad: np.ndarray
    """The answer is bad (graders and users see it)."""
    broken: np.ndarray
    """Its Python or JSON block is broken."""
    run: np.ndarray
    """Script of a run of letters inserted into it, or None."""
    argmax: np.ndarray
    """A greedy request took a token other than the most probable."""
    natural: np.ndarray
    """Output tokens the answer would take without a limit."""
    tool: np.ndarray
    """Ended in a tool call."""
    filtered: np.ndarray
    """Ended by the content filter."""
    slow: np.ndarray
    """Factor on latency (1 unless a bug slows it)."""
    queue_noise: np.ndarray
    latency_noise: np.ndarray
    eval_sampled: np.ndarray
    eval_good: np.ndarray
    eval_bad: np.ndarray
    feedback_draw: np.ndarray
    negative_draw: np.ndarray
    sampled_rank: np.ndarray
    violation_rank: np.ndarray
    error_latency: np.ndarray

    def copy(self) -> Responses:
        """An independent copy (bugs edit a copy; the original is the counterfactual)."""
        return replace(self, **{f.name: getattr(self, f.name).copy() for f in fields(self)})


def _drift(fleet: Fleet, ts: np.ndarray, rng: np.random.Generator, *, trend: float) -> np.ndarray:
    """exp(trend over the period + weekly wobble + day jitter), per request."""
    span = fleet.end - fleet.start
    x = (ts - fleet.start) / span
    a = rng.uniform(-trend, trend)
    b = rng.uniform(0.03, 0.12)
    phase = rng.uniform(0, 2 * np.pi)
    days = int(np.ceil(span / DAY_MS)) + 1
    jitter = rng.normal(0, 0.06, days)
    day = (ts - fleet.start) // DAY_MS
    week = 2 * np.pi * (ts - fleet.start) / (7 * DAY_MS)
    return np.exp(a * (x - 0.5) + b * np.sin(week + phase) + jitter[day])


def draw_responses(
    fleet: Fleet, traffic: Traffic, pools: Pools, rng: np.random.Generator
) -> Responses:
    """The answers before any bug."""
    c = traffic.columns
    n = traffic.rows
    ts = c["ts"]
    model_index = {m.name: i for i, m in enumerate(fleet.models)}
    mi = np.array([model_index[m] for m in c["model"]])
    quality = np.array([m.quality for m in fleet.models])[mi]
    code_quality = np.array([m.code_quality for m in fleet.models])[mi]
    verbosity = np.array([m.verbosity for m in fleet.models])[mi]
    small = np.array([m.size == "small" for m in fleet.models])[mi]
    model_trend = np.ones(n)
    for i in range(len(fleet.models)):
        mask = mi == i
        model_trend[mask] = _drift(fleet, ts[mask], rng, trend=0.3)

    task = c["task"]
    language = c["prompt_language"]
    p_bad = (
        0.04
        * np.vectorize(_BAD_BY_TASK.get, otypes=[float])(task)
        * np.vectorize(_BAD_BY_LANGUAGE.get, otypes=[float])(language)
        * quality
        * model_trend
        * _drift(fleet, ts, rng, trend=0.4)
        * (1 + 0.12 * np.log10(np.maximum(c["prompt_tokens"], 1000) / 1000))
    )
    bad = rng.random(n) < p_bad

    draft = np.empty(n, dtype=np.int64)
    for t, forms in _FORMS_BY_TASK.items():
        names, weights = zip(*forms, strict=True)
        for lang in np.unique(language[task == t]):
            mask = (task == t) & (language == lang)
            k = int(mask.sum())
            form = np.array(names)[rng.choice(len(names), k, p=np.array(weights))]
            out = np.empty(k, dtype=np.int64)
            for f in np.unique(form):
                ids = pools.ids(str(lang), str(f))
                sel = form == f
                out[sel] = ids[rng.integers(0, ids.size, int(sel.sum()))]
            draft[mask] = out

    p_broken = 0.012 * code_quality * np.where(task == "analysis", 0.7, 1.0)
    broken = pools.checked[draft] & (rng.random(n) < p_broken * _drift(fleet, ts, rng, trend=0.5))

    p_run = np.vectorize(lambda x: _RUN_BY_LANGUAGE.get(x, 0.0002), otypes=[float])(language)
    p_run = p_run * np.sqrt(quality) * _drift(fleet, ts, rng, trend=0.5)
    has_run = pools.insertable[draft] & (rng.random(n) < p_run)
    run = np.full(n, None, dtype=object)
    for lang in np.unique(language[has_run]):
        options = [s for s in FOREIGN_RUNS if shows_run(str(lang), s)]
        mask = has_run & (language == lang)
        run[mask] = np.array(options, dtype=object)[rng.integers(0, len(options), int(mask.sum()))]

    greedy = c["temperature"] == 0
    platform_factor = np.where(np.char.startswith(c["platform"].astype(str), "tpu"), 2.5, 1.0)
    argmax = greedy & (rng.random(n) < 0.0003 * platform_factor * _drift(fleet, ts, rng, trend=0.4))

    loop = rng.random(n) < 0.0006 * np.where(small, 2.0, 1.0)
    bad = bad | loop
    natural = (
        rng.lognormal(
            np.log(np.vectorize(_OUTPUT_MEDIAN.get, otypes=[float])(task) * verbosity), 0.8
        ).astype(np.int64)
        + 1
    )

    p429 = (0.002 + 0.02 * traffic.load**6) * np.where(c["customer_tier"] == "free", 2.0, 1.0)
    u = rng.random(n)
    status = np.select(
        [u < p429, u < p429 + 0.006 * traffic.load**8, u < p429 + 0.006 * traffic.load**8 + 0.0004],
        [429, 529, 500],
        200,
    ).astype(np.int64)

    sdk = np.char.startswith(c["client"].astype(str), "sdk")
    return Responses(
        status=status,
        draft=draft,
        blank=np.zeros(n, dtype=bool),
        loop=loop,
        bad=bad,
        broken=broken,
        run=run,
        argmax=argmax,
        natural=natural,
        tool=sdk & (rng.random(n) < 0.04),
        filtered=rng.random(n) < 0.0015,
        slow=np.ones(n),
        queue_noise=rng.lognormal(0, 0.5, n),
        latency_noise=rng.lognormal(0, 0.2, n),
        eval_sampled=rng.random(n) < fleet.eval_share,
        eval_good=rng.beta(8, 2.2, n),
        eval_bad=rng.beta(2, 5, n),
        feedback_draw=rng.random(n),
        negative_draw=rng.random(n),
        sampled_rank=np.minimum(rng.geometric(0.3, n), 200),
        violation_rank=rng.integers(2, 7, n),
        error_latency=rng.uniform(20, 400, n),
    )


def outcome_columns(fleet: Fleet, traffic: Traffic, r: Responses) -> dict[str, np.ndarray]:
    """The logged response columns; nullable numbers are float arrays with NaN for null.

    ``finish_reason`` holds None where the request failed; ``truncated`` is NaN there.
    """
    c = traffic.columns
    ok = r.status == 200
    length = ok & ~r.blank & ((r.natural >= c["max_tokens"]) | r.loop)
    tool = r.tool & ~length
    out = np.where(length, c["max_tokens"], r.natural)
    out = np.where(tool, np.minimum(out, 60), out)
    out = np.where(r.blank | ~ok, 0, out).astype(np.int64)
    finish = np.where(
        length, "length", np.where(tool, "tool_use", np.where(r.filtered, "content_filter", "stop"))
    ).astype(object)
    finish[~ok] = None

    platform_speed = {p.name: p.speed for p in fleet.platforms.values()}
    prefill_ms = {p.name: p.prefill_ms for p in fleet.platforms.values()}
    decode = _by_name({m.name: m.decode_ms for m in fleet.models}, c["model"])
    speed = _by_name(platform_speed, c["platform"])
    prefill = _by_name(prefill_ms, c["platform"])
    uncached = c["prompt_tokens"] - c["cached_tokens"]
    queue = 30 * r.queue_noise * (1 + 6 * traffic.load**4)
    latency = (
        (
            queue
            + uncached * prefill
            + c["cached_tokens"] * prefill / 8
            + out * decode * speed * (1 + c["batch_size"] / 128)
        )
        * r.latency_noise
        * r.slow
    )
    latency = np.where(
        ok, latency, np.where(r.status == 504, 120_000 + r.error_latency, r.error_latency)
    )

    greedy = c["temperature"] == 0
    rank = np.where(greedy, np.where(r.argmax, r.violation_rank, 1), r.sampled_rank).astype(float)
    rank[~ok | r.blank] = np.nan

    eval_score = np.where(r.bad, r.eval_bad * np.where(r.blank, 0.3, 1.0), r.eval_good)
    eval_score = np.where(r.eval_sampled & ok, np.round(eval_score, 3), np.nan)

    give = _by_name(_FEEDBACK_BY_CLIENT, c["client"], default=0.0) * np.where(r.bad, 2.0, 1.0)
    given = ok & (r.feedback_draw < give)
    negative = r.negative_draw < np.where(r.bad, 0.6, 0.03)
    feedback = np.where(given, np.where(negative, -1.0, 1.0), np.nan)

    truncated = np.where(ok, (finish == "length").astype(float), np.nan)
    return {
        "output_tokens": out,
        "finish_reason": finish,
        "truncated": truncated,
        "latency_ms": np.rint(latency).astype(np.int64),
        "status_code": r.status,
        "max_token_rank": rank,
        "user_feedback": feedback,
        "eval_score": eval_score,
    }


def _by_name(
    table: dict[str, float], names: np.ndarray, default: float | None = None
) -> np.ndarray:
    keys = np.array(list(table), dtype=object)
    values = np.array(list(table.values()), dtype=float)
    out = np.full(len(names), np.nan if default is None else default)
    for k, v in zip(keys, values, strict=True):
        out[names == k] = v
    return out


def intended_signals(
    traffic: Traffic, r: Responses, outcomes: dict[str, np.ndarray], pools: Pools
) -> dict[str, np.ndarray]:
    """What each signal should read per request: 1.0, 0.0 or NaN (null), from the latents.

    ``script_mix`` and ``code_syntax_error`` follow the drafts (a run shows when its
    script is foreign to the language; a block is checked when the draft holds one);
    ``length_limit`` and ``slow`` are the family's declared signals.
    """
    c = traffic.columns
    ok = r.status == 200
    has_text = ok & ~r.blank
    language = c["prompt_language"]
    shows = np.zeros(len(language), dtype=bool)
    has_run = r.run != None  # noqa: E711
    for script in set(r.run[has_run]):
        for lang in np.unique(language[has_run & (r.run == script)]):
            if shows_run(str(lang), str(script)):
                shows |= (r.run == script) & (language == lang)
    script = np.where(has_text, (shows & ~r.loop & pools.insertable[r.draft]).astype(float), np.nan)
    checked = has_text & ~r.loop & pools.checked[r.draft]
    code = np.where(checked, r.broken.astype(float), np.nan)
    rank = outcomes["max_token_rank"]
    argmax = np.where((c["temperature"] == 0) & ~np.isnan(rank), (rank > 1).astype(float), np.nan)
    fb = outcomes["user_feedback"]
    negative = np.where(np.isnan(fb), np.nan, (fb == -1).astype(float))
    ev = outcomes["eval_score"]
    low = np.where(np.isnan(ev), np.nan, (ev < 0.5).astype(float))
    return {
        "script_mix": script,
        "code_syntax_error": code,
        "argmax_violation": argmax,
        "negative_feedback": negative,
        "low_eval": low,
        "length_limit": outcomes["truncated"],
        "slow": (outcomes["latency_ms"] > SLOW_MS).astype(float),
    }
