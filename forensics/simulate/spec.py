"""Scenario specifications: the data a simulation is generated from, parsed and checked.

A scenario is a TOML file in ``forensics/simulate/scenarios/`` (or a dict of
the same shape, as the random family builds). This module turns it into
frozen dataclasses and refuses anything inconsistent with a ``ConfigError``
that names the scenario, the key and the fix. It knows nothing about any
particular scenario. The format, key by key::

    base = "_fleet.toml"                        # optional: start from another file; top-level
                                                #   keys replace the base's, columns replace
                                                #   the base's column of the same name or
                                                #   are appended
    name, description, rows, start, end        # end exclusive; TOML datetimes (UTC)

    [traffic]                                   # when requests arrive and who sends them
    diurnal = [24 weights, UTC hours]
    weekly = [7 weights, Monday first]
    requests_per_user = 40                      # users = rows / this
    user_pareto = 1.3                           # heavy tail of requests per user
    user_cap = 400                              # largest user weight / smallest
    session_requests = 5                        # mean requests per session (geometric)
    request_gap_seconds = 90                    # mean pause between a session's requests

    [[column]]                                  # in generation order
    name = "platform"
    type = "category"                           # category (default), int, float or format
    per = "request"                             # or "session" / "user": drawn once per
                                                #   session / user (cases may only use
                                                #   columns of the same or a wider level)
    values = { a = 0.7, b = 0.3 }               # category: weights; or value = "a"
    dist = "lognormal"                          # int/float: lognormal (median, sigma),
                                                #   loguniform, uniform (low, high),
                                                #   choice (values = [...], weights = [...])
    format = "{platform}-{region}-{n:02d}"      # format: other categories and n in [0, n)
    [[column.case]]                             # first matching case wins
    where = { surface = ["x"] }                 # a predicate (see below)
    share = 1.0                                 # probability the case applies (a mixture)
    values = { a = 1.0 }                        # same keys as the column

    [quality]                                   # eval_score and user_feedback given quality
    good_eval = [a, b]                          # Beta parameters
    bad_eval = [a, b]
    feedback_share = 0.15                       # share of requests rated
    feedback_good = [p(-1), p(0), p(1)]
    feedback_bad = [p(-1), p(0), p(1)]

    [baseline]                                  # per-request symptom rates without any bug
    script_mix = 0.0002                         # a foreign-script run in the prose
    code_syntax_error = 0.015                   # a code block that fails to parse
    argmax_violation = 0.0002                   # a greedy request whose rank exceeds 1
    low_quality = 0.05                          # a bad answer: low eval, negative feedback
    repetition = 0.0                            # an answer looping one word to max_tokens
    empty_response = 0.0                        # a blank answer (output_tokens 0)
    truncated = 0.0                             # an answer run to max_tokens (beyond the
                                                #   natural: output_tokens drawn >= max_tokens)
                                                # (wrong_language: bugs only; the
                                                #   baseline has no answer language)
    [[baseline.rule]]                           # per slice, in order
    where = { model = ["m"] }
    set = { low_quality = 0.08 }                # or scale = {...}

    [[bug]]
    name, description, group                    # group: one bug listed per window
    where = {...}                               # where it can act
    start, end                                  # end omitted: still active
    intensity = 0.05                            # share of eligible requests hit, or
                                                #   [[time, value], ...] piecewise linear
    intensity_by = { column = { value = [[time, value], ...] } }   # own schedule per value
    multiplier = { column = { value = factor } }
    curve = { numeric_column = [[x, factor], ...] }                # piecewise linear
    sticky_by = "user_id"                       # hits concentrate on some users...
    sticky_rate = 0.4                           # ...who are hit this often
    reroute = { column = "new value" }          # hit requests change value
    effects = { script_mix = 0.7, low_quality = 0.5 }              # per hit request
    scripts = ["thai", "han"]                   # foreign scripts the bug writes
    answer_language = "en"                      # the language a wrong_language effect answers in
                                                #   (requests already in it are not hit)

    [[red_herring]]                             # not a bug: must not change rates in a slice
    kind = "mix_shift"                          # column, factors = {value = x}, schedule
    kind = "new_value"                          # column, value, schedule (share over time)
    kind = "event"                              # only a change event, no effect
    event = { ts, kind, description, scope }    # optional, written to events.csv

    [[event]]
    ts, kind, description, scope

A predicate maps a column to a list of values or to ``{gte = x, lt = y}``.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from forensics.errors import ConfigError

__all__ = [
    "ANSWER_EFFECTS",
    "EFFECTS",
    "EFFECT_SIGNALS",
    "ENGINE_COLUMNS",
    "LIMIT_EFFECTS",
    "NEEDED_COLUMNS",
    "Baseline",
    "BaselineRule",
    "Bug",
    "Case",
    "ColumnSpec",
    "Condition",
    "Draw",
    "Event",
    "Predicate",
    "Quality",
    "RedHerring",
    "Scenario",
    "Schedule",
    "Traffic",
    "iso_time",
    "merge_base",
    "parse_scenario",
    "to_micros",
]

EFFECTS = (
    "script_mix",
    "code_syntax_error",
    "argmax_violation",
    "low_quality",
    "repetition",
    "empty_response",
    "truncated",
    "wrong_language",
)
"""What a bug (or the baseline) can do to a request."""

ANSWER_EFFECTS = ("repetition", "empty_response", "truncated", "wrong_language")
"""Effects on an answer's form and language (issue 19's symptoms)."""

LIMIT_EFFECTS = ("repetition", "truncated")
"""Effects that run an answer to its max_tokens: the scenario needs a max_tokens column."""

EFFECT_SIGNALS: dict[str, tuple[str, ...]] = {
    "script_mix": ("script_mix",),
    "code_syntax_error": ("code_syntax_error",),
    "argmax_violation": ("argmax_violation",),
    "low_quality": ("low_eval", "negative_feedback"),
    "repetition": ("repetition", "truncated"),
    "empty_response": ("empty_response",),
    "truncated": ("truncated",),
    "wrong_language": ("wrong_language",),
}
"""The symptom signals (computed at ingest) each effect shows up in."""

ENGINE_COLUMNS = (
    "request_id",
    "ts",
    "user_id",
    "session_id",
    "response_text",
    "max_token_rank",
    "user_feedback",
    "eval_score",
    "finish_reason",
    "prompt_text",
)
"""Canonical columns the engine writes itself; a scenario must not define them
(``finish_reason`` is written when the scenario defines ``max_tokens``; ``prompt_text``
never)."""

NEEDED_COLUMNS = (
    "model",
    "platform",
    "routing_pool",
    "surface",
    "region",
    "server_id",
    "task",
    "sampler",
    "prompt_language",
    "prompt_tokens",
    "output_tokens",
    "batch_size",
    "temperature",
)
"""Canonical columns every scenario must define (so that every canonical column is written)."""

ColumnType = Literal["category", "int", "float", "format"]
Value = str | float


def to_micros(value: Any, what: str) -> int:
    """Microseconds since the epoch of a TOML datetime or an ISO-8601 string (UTC if naive).

    Examples
    --------
    >>> to_micros("1970-01-01T00:00:01Z", "start")
    1000000
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(
                f"{what}: {value!r} is not an ISO-8601 time; write e.g. 2024-01-31T06:00:00Z"
            ) from None
    if not isinstance(value, datetime):
        raise ConfigError(
            f"{what}: expected a date-time such as 2024-01-31T06:00:00Z, got {value!r}"
        )
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def iso_time(micros: int) -> str:
    """ISO-8601 UTC text of microseconds since the epoch.

    Examples
    --------
    >>> iso_time(1_500_000)
    '1970-01-01T00:00:01.500000Z'
    """
    seconds, rest = divmod(micros, 1_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest)
    return stamp.isoformat().replace("+00:00", "Z")


def _number(value: float) -> float:
    """An integral float as an int (200000 rather than 200000.0)."""
    return int(value) if float(value).is_integer() else value


@dataclass(frozen=True)
class Condition:
    """One column's part of a predicate: a set of values or a numeric range."""

    column: str
    """Column it tests."""
    values: tuple[Value, ...] | None = None
    """Allowed values (None for a range)."""
    gte: float | None = None
    """Inclusive lower bound of a range."""
    lt: float | None = None
    """Exclusive upper bound of a range."""

    def to_json(self) -> list[Value] | dict[str, float]:
        """The truth.json form: a list of values or ``{"gte": x, "lt": y}``.

        Examples
        --------
        >>> Condition("n", gte=64.0).to_json(), Condition("x", lt=0.5).to_json()
        ({'gte': 64}, {'lt': 0.5})
        """
        if self.values is not None:
            return list(self.values)
        return {k: _number(v) for k, v in (("gte", self.gte), ("lt", self.lt)) if v is not None}


@dataclass(frozen=True)
class Predicate:
    """A conjunction of conditions, one per column."""

    conditions: tuple[Condition, ...] = ()
    """The conditions, all of which must hold."""

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns the predicate tests."""
        return tuple(c.column for c in self.conditions)

    def to_json(self) -> dict[str, Any]:
        """The truth.json form: column -> list of values or range.

        Examples
        --------
        >>> Predicate((Condition("a", ("x",)), Condition("n", gte=64.0))).to_json()
        {'a': ['x'], 'n': {'gte': 64}}
        """
        return {c.column: c.to_json() for c in self.conditions}

    def replaced(self, column: str, value: Value) -> Predicate:
        """The same predicate with ``column`` restricted to ``value`` alone."""
        kept = tuple(c for c in self.conditions if c.column != column)
        return Predicate((*kept, Condition(column, (value,))))


@dataclass(frozen=True)
class Schedule:
    """A value over time: piecewise linear between points, flat beyond the ends."""

    points: tuple[tuple[int, float], ...]
    """(microseconds since the epoch, value) pairs, in time order."""

    def to_json(self) -> float | list[list[Any]]:
        """Points as ``[[iso_time, value], ...]``, or the value alone when constant."""
        if len(self.points) == 1:
            return self.points[0][1]
        return [[iso_time(t), v] for t, v in self.points]


@dataclass(frozen=True)
class Draw:
    """How a column's value is drawn for one slice of requests."""

    kind: Literal["choice", "constant", "lognormal", "loguniform", "uniform", "format"]
    """The distribution."""
    values: tuple[Value, ...] = ()
    """Possible values (choice) or the one value (constant)."""
    weights: tuple[float, ...] = ()
    """Probabilities of ``values`` (choice), summing to 1."""
    median: float = 0.0
    """Median (lognormal)."""
    sigma: float = 0.0
    """Standard deviation of the logarithm (lognormal)."""
    low: float = -math.inf
    """Smallest value (lognormal, loguniform, uniform)."""
    high: float = math.inf
    """Largest value (lognormal, loguniform, uniform)."""
    template: str = ""
    """Format string over other category columns and ``n`` (format)."""
    n: int = 1
    """``n`` runs over 0..n-1 (format)."""


@dataclass(frozen=True)
class Case:
    """A conditional distribution: rows matching ``where`` draw from ``draw`` (with ``share``)."""

    where: Predicate
    """Rows it applies to."""
    share: float
    """Probability that a matching row takes this case (below 1: a mixture)."""
    draw: Draw
    """The distribution for those rows."""


@dataclass(frozen=True)
class ColumnSpec:
    """One generated column."""

    name: str
    """Column name (canonical or extra)."""
    type: ColumnType
    """category, int, float or format (a string built from other columns)."""
    per: Literal["request", "session", "user"]
    """Drawn for each request, once per session, or once per user."""
    draw: Draw
    """Default distribution."""
    cases: tuple[Case, ...] = ()
    """Conditional distributions, first match wins."""

    @property
    def levels(self) -> tuple[str, ...]:
        """Every value a category column can take from its draws, in order of appearance."""
        seen: dict[str, None] = {}
        for draw in (self.draw, *(c.draw for c in self.cases)):
            for v in draw.values:
                seen[str(v)] = None
        return tuple(seen)


@dataclass(frozen=True)
class Traffic:
    """When requests arrive and who sends them."""

    diurnal: tuple[float, ...]
    """Relative traffic per UTC hour (24 values)."""
    weekly: tuple[float, ...]
    """Relative traffic per weekday, Monday first (7 values)."""
    requests_per_user: float
    """Average requests per user; sets the number of users."""
    user_pareto: float
    """Pareto shape of users' activity (smaller = heavier tail)."""
    user_cap: float
    """Largest ratio of a user's activity to the smallest."""
    session_requests: float
    """Mean requests per session (geometric)."""
    request_gap_seconds: float
    """Mean pause between two requests of a session (exponential)."""


@dataclass(frozen=True)
class Quality:
    """How a request's quality (good or bad) shows in eval_score and user_feedback."""

    good_eval: tuple[float, float]
    """Beta parameters of eval_score for good answers."""
    bad_eval: tuple[float, float]
    """Beta parameters of eval_score for bad answers."""
    feedback_share: float
    """Share of requests the user rated."""
    feedback_good: tuple[float, float, float]
    """Probabilities of feedback -1, 0, 1 for good answers."""
    feedback_bad: tuple[float, float, float]
    """Probabilities of feedback -1, 0, 1 for bad answers."""


@dataclass(frozen=True)
class BaselineRule:
    """Per-slice baseline rates: set or scale some effects' rates where ``where`` holds."""

    where: Predicate
    """Rows it applies to."""
    set: Mapping[str, float]
    """Rates replaced."""
    scale: Mapping[str, float]
    """Rates multiplied."""


@dataclass(frozen=True)
class Baseline:
    """Symptom rates without any bug, per effect, refined per slice by rules in order."""

    rates: Mapping[str, float]
    """Default rate per effect."""
    rules: tuple[BaselineRule, ...] = ()
    """Per-slice refinements, applied in order."""


@dataclass(frozen=True)
class Bug:
    """One injected bug acting in one window."""

    name: str
    """Unique name, as in truth.json."""
    description: str
    """What happened, one or two sentences."""
    group: str
    """Bug family (one bug listed per window shares a group)."""
    where: Predicate
    """Requests it can act on."""
    start: int
    """Onset, microseconds since the epoch."""
    end: int | None
    """End (exclusive), or None while still active."""
    intensity: Schedule
    """Share of eligible requests hit, over time."""
    intensity_column: str | None = None
    """Column whose values have their own schedules."""
    intensity_by: Mapping[str, Schedule] = field(default_factory=dict)
    """Own schedule per value of ``intensity_column``."""
    multipliers: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    """column -> value -> factor on the intensity."""
    curves: Mapping[str, tuple[tuple[float, float], ...]] = field(default_factory=dict)
    """numeric column -> piecewise-linear (x, factor) points on the intensity."""
    sticky_by: str | None = None
    """Hits concentrate on some values of this column (e.g. user_id)."""
    sticky_rate: float = 1.0
    """How often a susceptible user's eligible requests are hit."""
    reroute: tuple[str, str] | None = None
    """(column, new value) for hit requests."""
    effects: Mapping[str, float] = field(default_factory=dict)
    """effect -> probability per hit request."""
    scripts: tuple[str, ...] = ("thai", "han")
    """Foreign scripts a script_mix effect writes."""
    answer_language: str = "en"
    """The language a wrong_language effect answers in."""

    @property
    def truth_predicate(self) -> Predicate:
        """The requests the bug acted on: ``where``, with a reroute's new value."""
        if self.reroute is None:
            return self.where
        return self.where.replaced(*self.reroute)

    @property
    def symptoms(self) -> tuple[str, ...]:
        """Signals whose rate the bug raises."""
        return tuple(
            s for effect, rate in self.effects.items() if rate > 0 for s in EFFECT_SIGNALS[effect]
        )


@dataclass(frozen=True)
class Event:
    """A change event for events.csv."""

    ts: int
    """When, microseconds since the epoch."""
    kind: str
    """deploy, rollback, config, fix, launch..."""
    description: str
    """What changed."""
    scope: str
    """Where, e.g. ``platform=x; surface=y``."""


@dataclass(frozen=True)
class RedHerring:
    """A change that is not a bug: it must leave every rate within a slice unchanged."""

    name: str
    """Unique name, as in truth.json."""
    kind: Literal["mix_shift", "new_value", "event"]
    """A traffic-mix shift, a new value appearing, or only an event."""
    description: str
    """What it is and why it is not a bug."""
    column: str | None = None
    """Column affected (mix_shift, new_value)."""
    factors: Mapping[str, float] = field(default_factory=dict)
    """value -> weight factor at full strength (mix_shift)."""
    value: str | None = None
    """The new value (new_value)."""
    schedule: Schedule | None = None
    """Strength (mix_shift) or share of the new value (new_value) over time."""
    event: Event | None = None
    """Its change event, if any."""


@dataclass(frozen=True)
class Scenario:
    """A complete, checked scenario specification."""

    name: str
    """Name used by ``forensics simulate --scenario``."""
    description: str
    """One line for ``forensics simulate --list``."""
    rows: int
    """Default number of requests."""
    start: int
    """First instant, microseconds since the epoch."""
    end: int
    """End instant (exclusive)."""
    traffic: Traffic
    """Arrivals and users."""
    columns: tuple[ColumnSpec, ...]
    """Generated columns, in order."""
    quality: Quality
    """eval_score and user_feedback model."""
    baseline: Baseline
    """Symptom rates without bugs."""
    bugs: tuple[Bug, ...] = ()
    """Injected bugs."""
    red_herrings: tuple[RedHerring, ...] = ()
    """Changes that are not bugs."""
    events: tuple[Event, ...] = ()
    """Change events (red herrings' events are added to these)."""

    def column(self, name: str) -> ColumnSpec:
        """The spec of column ``name``."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def levels(self, name: str) -> tuple[str, ...]:
        """Every value category column ``name`` can take, including red herrings' and reroutes'."""
        seen = dict.fromkeys(self.column(name).levels)
        for rh in self.red_herrings:
            if rh.kind == "new_value" and rh.column == name and rh.value is not None:
                seen[rh.value] = None
        for bug in self.bugs:
            if bug.reroute and bug.reroute[0] == name:
                seen[bug.reroute[1]] = None
        return tuple(seen)

    def all_events(self) -> tuple[Event, ...]:
        """Events and red herrings' events, in time order."""
        extra = tuple(rh.event for rh in self.red_herrings if rh.event is not None)
        return tuple(sorted((*self.events, *extra), key=lambda e: (e.ts, e.kind, e.description)))


# -- parsing ---------------------------------------------------------------------------


class _Reader:
    """Reads one scenario mapping, naming the scenario and key in every error."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"scenario {self.source}: {key}: {message}")

    def get(
        self, data: Mapping[str, Any], key: str, where: str, kind: type | tuple[type, ...]
    ) -> Any:
        if key not in data:
            raise self.fail(f"{where}{key}", "is missing")
        value = data[key]
        if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
            raise self.fail(f"{where}{key}", f"expected {_kind_name(kind)}, got {value!r}")
        return value

    def number(
        self, data: Mapping[str, Any], key: str, where: str, default: float | None = None
    ) -> float:
        if key not in data and default is not None:
            return default
        return float(self.get(data, key, where, (int, float)))

    def probability(self, value: Any, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise self.fail(key, f"expected a probability in [0, 1], got {value!r}")
        return float(value)

    def unknown(self, data: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
        extra = sorted(set(data) - set(allowed))
        if extra:
            raise self.fail(
                where.rstrip(".") or "(top level)",
                f"unknown key(s) {', '.join(extra)}; allowed: {', '.join(allowed)}",
            )

    def time(self, value: Any, key: str) -> int:
        try:
            return to_micros(value, key)
        except ConfigError as exc:
            raise self.fail(key, str(exc).split(": ", 1)[1]) from None

    def schedule(self, value: Any, key: str) -> Schedule:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return Schedule(((0, float(value)),))
        if not isinstance(value, list) or not value:
            raise self.fail(key, "expected a number or a list of [time, value] points")
        points = []
        for i, point in enumerate(value):
            if not isinstance(point, list) or len(point) != 2:
                raise self.fail(f"{key}[{i}]", f"expected [time, value], got {point!r}")
            points.append(
                (
                    self.time(point[0], f"{key}[{i}]"),
                    self.number({"v": point[1]}, "v", f"{key}[{i}]."),
                )
            )
        if any(b[0] < a[0] for a, b in itertools.pairwise(points)):
            raise self.fail(key, "points must be in time order")
        return Schedule(tuple(points))

    def predicate(self, value: Any, key: str) -> Predicate:
        if not isinstance(value, Mapping):
            raise self.fail(key, "expected a table: column = [values] or {gte = x, lt = y}")
        conditions = []
        for column, spec in value.items():
            if isinstance(spec, Mapping):
                self.unknown(spec, ("gte", "lt"), f"{key}.{column}.")
                if not spec:
                    raise self.fail(f"{key}.{column}", "a range needs gte and/or lt")
                gte = self.number(spec, "gte", f"{key}.{column}.") if "gte" in spec else None
                lt = self.number(spec, "lt", f"{key}.{column}.") if "lt" in spec else None
                conditions.append(Condition(column, gte=gte, lt=lt))
            elif isinstance(spec, list) and spec:
                conditions.append(Condition(column, tuple(spec)))
            else:
                raise self.fail(
                    f"{key}.{column}", f"expected a non-empty list or a range, got {spec!r}"
                )
        return Predicate(tuple(conditions))


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(
        {
            "int": "integer",
            "float": "number",
            "str": "string",
            "list": "list",
            "dict": "table",
            "bool": "boolean",
        }.get(k.__name__, k.__name__)
        for k in kinds
    )


_LEVELS = {"user": 0, "session": 1, "request": 2}
"""Where a column is drawn, widest first: a column may depend on columns of its level or wider."""

_DRAW_KEYS = ("values", "value", "weights", "dist", "median", "sigma", "low", "high", "format", "n")


def _draw(r: _Reader, data: Mapping[str, Any], key: str, ctype: ColumnType) -> Draw:
    if ctype == "format":
        template = r.get(data, "format", key, str)
        n = int(r.number(data, "n", key, 1))
        if n < 1:
            raise r.fail(f"{key}n", "must be at least 1")
        return Draw("format", template=template, n=n)
    if "value" in data:
        value = data["value"]
        if ctype == "category" and not isinstance(value, str):
            raise r.fail(f"{key}value", f"a category value must be a string, got {value!r}")
        return Draw("constant", values=(value,), weights=(1.0,))
    if ctype == "category" or data.get("dist", "choice") == "choice":
        values = data.get("values")
        if isinstance(values, Mapping):
            names, weights = tuple(values), tuple(values.values())
        elif isinstance(values, list):
            names = tuple(values)
            weights = tuple(data.get("weights", [1.0] * len(names)))
        else:
            raise r.fail(f"{key}values", "expected {value = weight, ...}, [values] or value = x")
        if not names or len(names) != len(weights):
            raise r.fail(f"{key}weights", "needs one weight per value")
        if any(isinstance(w, bool) or not isinstance(w, int | float) or w < 0 for w in weights):
            raise r.fail(f"{key}values", "weights must be non-negative numbers")
        if ctype == "category" and not all(isinstance(v, str) for v in names):
            raise r.fail(f"{key}values", "category values must be strings")
        total = float(sum(weights))
        if total <= 0:
            raise r.fail(f"{key}values", "weights must not all be zero")
        return Draw("choice", values=names, weights=tuple(float(w) / total for w in weights))
    dist = data["dist"]
    if dist == "lognormal":
        draw = Draw(
            "lognormal",
            median=r.number(data, "median", key),
            sigma=r.number(data, "sigma", key),
            low=r.number(data, "low", key, -math.inf),
            high=r.number(data, "high", key, math.inf),
        )
        if draw.median <= 0 or draw.sigma <= 0:
            raise r.fail(f"{key}median", "lognormal needs median > 0 and sigma > 0")
        return draw
    if dist in ("loguniform", "uniform"):
        draw = Draw(dist, low=r.number(data, "low", key), high=r.number(data, "high", key))
        if not draw.low < draw.high or (dist == "loguniform" and draw.low <= 0):
            raise r.fail(
                f"{key}low",
                f"{dist} needs 0 < low < high" if dist == "loguniform" else "needs low < high",
            )
        return draw
    raise r.fail(
        f"{key}dist", f"unknown distribution {dist!r}; use lognormal, loguniform, uniform or choice"
    )


def _column(r: _Reader, data: Mapping[str, Any], i: int) -> ColumnSpec:
    key = f"column[{i}]."
    name = r.get(data, "name", key, str)
    key = f"column {name!r}: "
    r.unknown(data, ("name", "type", "per", "case", *_DRAW_KEYS), key)
    ctype = data.get("type", "category")
    if ctype not in ("category", "int", "float", "format"):
        raise r.fail(f"{key}type", f"unknown type {ctype!r}; use category, int, float or format")
    per = data.get("per", "request")
    if per not in _LEVELS:
        raise r.fail(f"{key}per", f"expected 'request', 'session' or 'user', got {per!r}")
    cases = []
    for j, case in enumerate(data.get("case", [])):
        ckey = f"{key}case[{j}]."
        r.unknown(case, ("where", "share", *_DRAW_KEYS), ckey)
        where = r.predicate(r.get(case, "where", ckey, dict), f"{ckey}where")
        share = r.probability(case.get("share", 1.0), f"{ckey}share")
        cases.append(Case(where, share, _draw(r, case, ckey, ctype)))
    return ColumnSpec(name, ctype, per, _draw(r, data, key, ctype), tuple(cases))


def _traffic(r: _Reader, data: Mapping[str, Any]) -> Traffic:
    r.unknown(
        data,
        (
            "diurnal",
            "weekly",
            "requests_per_user",
            "user_pareto",
            "user_cap",
            "session_requests",
            "request_gap_seconds",
        ),
        "traffic.",
    )
    diurnal = tuple(float(x) for x in r.get(data, "diurnal", "traffic.", list))
    weekly = tuple(float(x) for x in r.get(data, "weekly", "traffic.", list))
    if len(diurnal) != 24 or len(weekly) != 7 or min(diurnal + weekly) < 0:
        raise r.fail("traffic", "diurnal needs 24 and weekly 7 non-negative weights")
    return Traffic(
        diurnal,
        weekly,
        r.number(data, "requests_per_user", "traffic.", 40.0),
        r.number(data, "user_pareto", "traffic.", 1.3),
        r.number(data, "user_cap", "traffic.", 400.0),
        r.number(data, "session_requests", "traffic.", 5.0),
        r.number(data, "request_gap_seconds", "traffic.", 90.0),
    )


def _triple(r: _Reader, data: Mapping[str, Any], key: str) -> tuple[float, float, float]:
    values = r.get(data, key, "quality.", list)
    if len(values) != 3 or abs(sum(values) - 1) > 1e-6:
        raise r.fail(f"quality.{key}", "expected probabilities of -1, 0 and 1 summing to 1")
    return (float(values[0]), float(values[1]), float(values[2]))


def _pair(r: _Reader, data: Mapping[str, Any], key: str) -> tuple[float, float]:
    values = r.get(data, key, "quality.", list)
    if len(values) != 2 or min(values) <= 0:
        raise r.fail(f"quality.{key}", "expected two positive Beta parameters [a, b]")
    return (float(values[0]), float(values[1]))


def _quality(r: _Reader, data: Mapping[str, Any]) -> Quality:
    r.unknown(
        data,
        ("good_eval", "bad_eval", "feedback_share", "feedback_good", "feedback_bad"),
        "quality.",
    )
    return Quality(
        _pair(r, data, "good_eval"),
        _pair(r, data, "bad_eval"),
        r.probability(data.get("feedback_share", 0.15), "quality.feedback_share"),
        _triple(r, data, "feedback_good"),
        _triple(r, data, "feedback_bad"),
    )


def _rates(r: _Reader, data: Any, key: str, *, probability: bool = True) -> dict[str, float]:
    if not isinstance(data, Mapping):
        raise r.fail(key, f"expected a table of {', '.join(EFFECTS)}")
    r.unknown(data, EFFECTS, f"{key}.")
    if probability:
        return {k: r.probability(v, f"{key}.{k}") for k, v in data.items()}
    return {k: r.number(data, k, f"{key}.") for k in data}


def _no_baseline_language(r: _Reader, data: Any, key: str) -> None:
    """Refuse ``wrong_language`` in a baseline table: only a bug says which language."""
    if isinstance(data, Mapping) and "wrong_language" in data:
        raise r.fail(
            f"{key}.wrong_language",
            "the baseline has no answer language; give a bug the wrong_language effect "
            "and its answer_language instead",
        )


def _baseline(r: _Reader, data: Mapping[str, Any]) -> Baseline:
    r.unknown(data, (*EFFECTS, "rule"), "baseline.")
    _no_baseline_language(r, data, "baseline")
    rates = {e: 0.0 for e in EFFECTS} | _rates(
        r, {k: v for k, v in data.items() if k != "rule"}, "baseline"
    )
    rules = []
    for j, rule in enumerate(data.get("rule", [])):
        key = f"baseline.rule[{j}]"
        r.unknown(rule, ("where", "set", "scale"), f"{key}.")
        for table in ("set", "scale"):
            _no_baseline_language(r, rule.get(table), f"{key}.{table}")
        rules.append(
            BaselineRule(
                r.predicate(r.get(rule, "where", f"{key}.", dict), f"{key}.where"),
                _rates(r, rule.get("set", {}), f"{key}.set"),
                _rates(r, rule.get("scale", {}), f"{key}.scale", probability=False),
            )
        )
    return Baseline(rates, tuple(rules))


def _event(r: _Reader, data: Mapping[str, Any], key: str) -> Event:
    r.unknown(data, ("ts", "kind", "description", "scope"), f"{key}.")
    return Event(
        r.time(r.get(data, "ts", f"{key}.", (datetime, str)), f"{key}.ts"),
        r.get(data, "kind", f"{key}.", str),
        data.get("description", ""),
        data.get("scope", ""),
    )


_BUG_KEYS = (
    "name", "description", "group", "where", "start", "end", "intensity", "intensity_by",
    "multiplier", "curve", "sticky_by", "sticky_rate", "reroute", "effects", "scripts",
    "answer_language",
)  # fmt: skip


def _bug(r: _Reader, data: Mapping[str, Any], i: int) -> Bug:
    name = r.get(data, "name", f"bug[{i}].", str)
    key = f"bug {name!r}: "
    r.unknown(data, _BUG_KEYS, key)
    start = r.time(r.get(data, "start", key, (datetime, str)), f"{key}start")
    end = r.time(data["end"], f"{key}end") if data.get("end") is not None else None
    if end is not None and end <= start:
        raise r.fail(f"{key}end", "must be after start")
    intensity = r.schedule(data.get("intensity", 1.0), f"{key}intensity")
    by = data.get("intensity_by", {})
    if len(by) > 1:
        raise r.fail(f"{key}intensity_by", "give own schedules for the values of one column only")
    column = next(iter(by), None)
    schedules = {
        str(v): r.schedule(s, f"{key}intensity_by.{column}.{v}")
        for v, s in (by[column].items() if column else ())
    }
    multipliers = {
        col: {str(v): r.number(table, v, f"{key}multiplier.{col}.") for v in table}
        for col, table in data.get("multiplier", {}).items()
    }
    curves = {}
    for col, points in data.get("curve", {}).items():
        if (
            not isinstance(points, list)
            or not all(isinstance(p, list) and len(p) == 2 for p in points)
            or not points
        ):
            raise r.fail(f"{key}curve.{col}", "expected [[x, factor], ...] in increasing x")
        curve = tuple((float(x), float(f)) for x, f in points)
        if any(b[0] <= a[0] for a, b in itertools.pairwise(curve)):
            raise r.fail(f"{key}curve.{col}", "x must increase")
        curves[col] = curve
    reroute = data.get("reroute")
    if reroute is not None:
        if (
            not isinstance(reroute, Mapping)
            or len(reroute) != 1
            or not isinstance(next(iter(reroute.values())), str)
        ):
            raise r.fail(f"{key}reroute", 'expected one column = "new value"')
        reroute = next(iter(reroute.items()))
    effects = _rates(r, data.get("effects", {}), f"{key}effects")
    if not any(effects.values()):
        raise r.fail(f"{key}effects", f"a bug needs at least one effect among {', '.join(EFFECTS)}")
    answer_language = data.get("answer_language", "en")
    if not isinstance(answer_language, str):
        raise r.fail(f"{key}answer_language", 'expected a language tag, e.g. "en"')
    if "answer_language" in data and not effects.get("wrong_language"):
        raise r.fail(
            f"{key}answer_language",
            "is the language a wrong_language effect answers in; add that effect or remove it",
        )
    sticky_rate = r.probability(data.get("sticky_rate", 1.0), f"{key}sticky_rate")
    if sticky_rate == 0:
        raise r.fail(f"{key}sticky_rate", "must be above 0")
    return Bug(
        name=name,
        description=data.get("description", ""),
        group=data.get("group", name),
        where=r.predicate(r.get(data, "where", key, dict), f"{key}where"),
        start=start,
        end=end,
        intensity=intensity,
        intensity_column=column,
        intensity_by=schedules,
        multipliers=multipliers,
        curves=curves,
        sticky_by=data.get("sticky_by"),
        sticky_rate=sticky_rate,
        reroute=reroute,
        effects=effects,
        scripts=tuple(data.get("scripts", ("thai", "han"))),
        answer_language=answer_language,
    )


def _red_herring(r: _Reader, data: Mapping[str, Any], i: int) -> RedHerring:
    name = r.get(data, "name", f"red_herring[{i}].", str)
    key = f"red_herring {name!r}: "
    r.unknown(
        data,
        ("name", "kind", "description", "column", "factors", "value", "schedule", "event"),
        key,
    )
    kind = data.get("kind")
    if kind not in ("mix_shift", "new_value", "event"):
        raise r.fail(f"{key}kind", f"expected mix_shift, new_value or event, got {kind!r}")
    event = _event(r, data["event"], f"{key}event") if "event" in data else None
    if kind == "event":
        if event is None:
            raise r.fail(
                f"{key}event", "an event red herring needs event = {ts, kind, description, scope}"
            )
        return RedHerring(name, kind, data.get("description", ""), event=event)
    column = r.get(data, "column", key, str)
    schedule = r.schedule(r.get(data, "schedule", key, list), f"{key}schedule")
    if kind == "mix_shift":
        factors = {
            str(v): r.number(data["factors"], v, f"{key}factors.")
            for v in r.get(data, "factors", key, dict)
        }
        return RedHerring(
            name, kind, data.get("description", ""), column, factors, schedule=schedule, event=event
        )
    value = r.get(data, "value", key, str)
    return RedHerring(
        name, kind, data.get("description", ""), column, value=value, schedule=schedule, event=event
    )


def merge_base(base: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """A scenario mapping on top of its base: keys replace, columns replace by name or append.

    Examples
    --------
    >>> base = {"rows": 1, "column": [{"name": "a", "value": "x"}, {"name": "b", "value": "y"}]}
    >>> merged = merge_base(base, {"rows": 2, "column": [{"name": "b", "value": "z"}, {"name": "c", "value": "w"}]})
    >>> merged["rows"], [c["value"] for c in merged["column"]]
    (2, ['x', 'z', 'w'])
    """
    out = dict(base)
    for key, value in data.items():
        if key == "base":
            continue
        if key == "column":
            columns = list(out.get("column", []))
            names = [c.get("name") for c in columns]
            for column in value:
                if column.get("name") in names:
                    columns[names.index(column["name"])] = column
                else:
                    columns.append(column)
            out[key] = columns
        else:
            out[key] = value
    return out


_TOP_KEYS = (
    "name", "description", "rows", "start", "end", "traffic", "column", "quality", "baseline",
    "bug", "red_herring", "event",
)  # fmt: skip


def parse_scenario(data: Mapping[str, Any], *, source: str | None = None) -> Scenario:
    """Check a scenario mapping (parsed TOML) and build the ``Scenario``.

    Raises ``ConfigError`` naming the scenario, the key and what is expected.
    """
    r = _Reader(source or str(data.get("name", "?")))
    r.unknown(data, _TOP_KEYS, "")
    name = r.get(data, "name", "", str)
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", name):
        raise r.fail("name", "use lower-case letters, digits, '-', '_' and '.'")
    rows = int(r.number(data, "rows", ""))
    if rows < 1:
        raise r.fail("rows", "must be at least 1")
    start = r.time(r.get(data, "start", "", (datetime, str)), "start")
    end = r.time(r.get(data, "end", "", (datetime, str)), "end")
    if end - start < 3_600_000_000 or start % 3_600_000_000 or end % 3_600_000_000:
        raise r.fail("end", "start and end must be whole UTC hours, at least one hour apart")
    scenario = Scenario(
        name=name,
        description=r.get(data, "description", "", str),
        rows=rows,
        start=start,
        end=end,
        traffic=_traffic(r, r.get(data, "traffic", "", dict)),
        columns=tuple(_column(r, c, i) for i, c in enumerate(r.get(data, "column", "", list))),
        quality=_quality(r, r.get(data, "quality", "", dict)),
        baseline=_baseline(r, r.get(data, "baseline", "", dict)),
        bugs=tuple(_bug(r, b, i) for i, b in enumerate(data.get("bug", []))),
        red_herrings=tuple(
            _red_herring(r, h, i) for i, h in enumerate(data.get("red_herring", []))
        ),
        events=tuple(_event(r, e, f"event[{i}]") for i, e in enumerate(data.get("event", []))),
    )
    _check_consistency(r, scenario)
    return scenario


def _check_consistency(r: _Reader, s: Scenario) -> None:
    """Every name a scenario uses must exist, in the order it is generated."""
    names = [c.name for c in s.columns]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise r.fail("column", f"defined twice: {', '.join(sorted(dupes))}")
    reserved = set(names) & set(ENGINE_COLUMNS)
    if reserved:
        raise r.fail(
            "column", f"{', '.join(sorted(reserved))} are written by the engine; remove them"
        )
    missing = [n for n in NEEDED_COLUMNS if n not in names]
    if missing:
        raise r.fail("column", f"missing canonical column(s) {', '.join(missing)}; define them")
    types = {c.name: c for c in s.columns}
    known = {"user_id", "session_id"}
    for c in s.columns:
        for case in c.cases:
            _check_predicate(
                r, s, case.where, f"column {c.name!r}: case.where", types, available=known
            )
            narrower = [n for n in case.where.columns if _LEVELS[types[n].per] > _LEVELS[c.per]]
            if narrower:
                raise r.fail(
                    f"column {c.name!r}: case.where",
                    f"a per-{c.per} column can only depend on columns drawn per {c.per} or "
                    f"more widely, not on {', '.join(narrower)}",
                )
        if c.type == "format" and c.per != "request":
            raise r.fail(f"column {c.name!r}: per", "format columns are built per request")
        if c.type == "format":
            fields = re.findall(
                r"{(\w+)", c.draw.template + "".join(k.draw.template for k in c.cases)
            )
            for f in fields:
                if f != "n" and (f not in types or types[f].type != "category"):
                    raise r.fail(f"column {c.name!r}: format", f"{{{f}}} is not a category column")
        known.add(c.name)
    everything = set(names) | {"user_id", "session_id"}
    for j, rule in enumerate(s.baseline.rules):
        _check_predicate(r, s, rule.where, f"baseline.rule[{j}].where", types, available=everything)
    uses_limits = any(s.baseline.rates.get(e, 0) > 0 for e in LIMIT_EFFECTS) or any(
        b.effects.get(e, 0) > 0 for b in s.bugs for e in LIMIT_EFFECTS
    )
    if uses_limits and ("max_tokens" not in types or types["max_tokens"].type != "int"):
        raise r.fail(
            "column",
            f"the effects {', '.join(LIMIT_EFFECTS)} run answers to their limit: define an int "
            'column max_tokens (e.g. dist = "choice", values = [2048, 4096])',
        )
    bug_names = [b.name for b in s.bugs]
    if len(set(bug_names)) != len(bug_names):
        raise r.fail("bug", "bug names must be unique")
    for b in s.bugs:
        key = f"bug {b.name!r}: "
        if not s.start <= b.start < s.end:
            raise r.fail(f"{key}start", "must fall inside the scenario's [start, end)")
        _check_predicate(r, s, b.where, f"{key}where", types, available=everything)
        for col, table in b.multipliers.items():
            _check_values(r, s, col, tuple(table), f"{key}multiplier", types)
        if b.intensity_column:
            _check_values(
                r, s, b.intensity_column, tuple(b.intensity_by), f"{key}intensity_by", types
            )
        for col in b.curves:
            if col not in types or types[col].type not in ("int", "float"):
                raise r.fail(f"{key}curve.{col}", "curves apply to int or float columns")
        if (
            b.sticky_by is not None
            and b.sticky_by not in ("user_id", "session_id")
            and (b.sticky_by not in types or types[b.sticky_by].type != "category")
        ):
            raise r.fail(f"{key}sticky_by", "use user_id, session_id or a category column")
        if b.reroute is not None:
            col = b.reroute[0]
            if col not in types or types[col].type != "category":
                raise r.fail(f"{key}reroute", f"{col!r} is not a category column")
    for rh in s.red_herrings:
        key = f"red_herring {rh.name!r}: "
        if rh.column is None:
            continue
        if rh.column not in types or types[rh.column].type != "category":
            raise r.fail(f"{key}column", f"{rh.column!r} is not a category column")
        if rh.kind == "mix_shift":
            if types[rh.column].per == "user":
                raise r.fail(
                    f"{key}column", "a mix shift applies to per-request or per-session columns"
                )
            _check_values(r, s, rh.column, tuple(rh.factors), f"{key}factors", types)


def _check_values(
    r: _Reader,
    s: Scenario,
    column: str,
    values: tuple[Any, ...],
    key: str,
    types: Mapping[str, ColumnSpec],
) -> None:
    if column not in types:
        raise r.fail(key, f"unknown column {column!r}; columns: {', '.join(types)}")
    if types[column].type == "category":
        unknown = [v for v in values if str(v) not in s.levels(column)]
        if unknown:
            raise r.fail(
                key,
                f"{column} has no value(s) {', '.join(map(repr, unknown))}; "
                f"its values: {', '.join(s.levels(column))}",
            )


def _check_predicate(
    r: _Reader,
    s: Scenario,
    where: Predicate,
    key: str,
    types: Mapping[str, ColumnSpec],
    *,
    available: set[str],
) -> None:
    for cond in where.conditions:
        if cond.column not in available:
            raise r.fail(
                key,
                f"{cond.column!r} is not a column defined before this point; "
                f"available: {', '.join(sorted(available))}",
            )
        if cond.column in ("user_id", "session_id"):
            raise r.fail(key, f"{cond.column} cannot be used in a predicate")
        spec = types[cond.column]
        if spec.type == "format":
            raise r.fail(key, f"{cond.column} is a format column; use the columns it is built from")
        if cond.values is None:
            if spec.type == "category":
                raise r.fail(
                    key, f"{cond.column} is a category: give a list of values, not a range"
                )
        else:
            _check_values(r, s, cond.column, cond.values, key, types)
