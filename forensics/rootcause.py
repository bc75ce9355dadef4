"""Root causes: signatures one change explains, grouped, with the evidence for each link.

A signature is one slice's problem; one change often breaks several slices (a
configuration pushed to a platform hurts each model on it, and is rolled back
model by model). ``group_root_causes`` groups signatures into root causes by a
rule that reads only the signatures and the change events, and says why.

**The onset event of a signature.** Of the change events whose scope does not
exclude its slice (``forensics.scope``: an event scoped ``model=a`` is not the
cause of a problem of ``model in {b}``), those from ``lead_hours`` before the
start of its onset range to ``lag_hours`` after its end (a change comes before
what it causes; the onset is placed to the hour) are candidates. Its onset
event is the candidate whose scope the slice agrees with best: the largest
share of the scope's columns that the slice names with agreeing values (an
event scoped ``platform=tpu; sampler=x`` fits a slice of ``platform in {tpu}``
less well than one scoped ``platform=tpu``: had it caused the problem, the
problem would be confined to sampler x and the slice would say so; an
unscoped event shares 0); then the one nearest the onset range (an event
inside it is at distance 0); then the earlier. A signature may have none.

**Two signatures are linked** when all three hold:

1. *the same onset event*: both onsets are matched to the same change (their
   ends may differ: a fix often rolls out slice by slice);
2. *their symptom profiles agree*: the signal each was found on is elevated in
   the other (``Signature.signal`` in the other's ``signals``);
3. *their slices share a value*: a column both predicates constrain, on which
   they meet (a value in common, such as a platform, a sampler or a pool; or
   overlapping ranges).

A root cause is a group of signatures linked directly or through each other
(all share one onset event); a signature linked to none is a root cause of its
own. When nothing links two signatures, they stay apart: two problems that
start in the same hour with no shared event are two causes. Root causes are
numbered R1, R2... in the order of their strongest signature.

Examples
--------
>>> group_root_causes([], [])
[]
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from forensics.scope import Scope, parse_scope, scope_conflicts, scope_matches
from forensics.signature import Signature, _iso, describe_predicate

__all__ = [
    "RootCause",
    "RootCauseParams",
    "describe_root_causes",
    "group_root_causes",
    "headline",
    "onset_event",
    "root_causes_frame",
    "shared_conditions",
]

EventLike = Mapping[str, Any]
"""A change event: ``ts`` (an aware datetime), ``kind``, ``description``, ``scope``."""


@dataclass(frozen=True)
class RootCauseParams:
    """How close a change event must be to a signature's onset to be its onset event."""

    lead_hours: float = 72.0
    """An event may come this many hours before the onset range begins (a change can take
    a while to show: a slow rollout, little traffic at night). The same horizon as the
    events listed with a signature (``separation.evidence.EVENT_HORIZON_HOURS``)."""
    lag_hours: float = 1.0
    """...and this many hours after the last hour the onset may lie in (event times and
    the hour grid do not line up to the minute)."""


@dataclass(frozen=True)
class RootCause:
    """One root cause: the signatures one change explains, and why they are grouped."""

    id: str
    """R1, R2... in the order of their strongest signature."""
    signatures: tuple[str, ...]
    """Signature ids, strongest first."""
    slices: tuple[str, ...]
    """Each signature's slice as text, in the same order."""
    shared: dict[str, Any]
    """Conditions every member's slice holds (column -> values in common, or
    ``{"gte", "lt"}``); a lone signature's whole predicate; empty when members
    linked through each other have no value all of them share."""
    signals: tuple[str, ...]
    """Signals elevated in every member."""
    event: dict[str, Any] | None
    """The change event at its onset (``ts, kind, description, scope``), or None."""
    events: tuple[dict[str, Any], ...]
    """Matched events: the onset event (``near: "onset"``, with the ``signatures`` it
    starts) and each member's nearest end event (``near: "end"``, with its ``signature``)."""
    start: datetime
    """The earliest onset among its signatures (UTC)."""
    end: datetime | None
    """The latest end (UTC); None when a member is still active."""
    requests: int
    """Requests in its signatures' slices and windows (summed)."""
    why: tuple[str, ...]
    """The evidence: each link with its event, symptoms and shared values; for a
    signature kept apart, what it lacks."""

    @property
    def title(self) -> str:
        """A short name: its onset event's description, else its slice."""
        if self.event is not None:
            return str(self.event.get("description") or self.event.get("kind") or self.id)
        return self.slices[0] if len(self.slices) == 1 else ", ".join(self.signatures)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``forensics signatures --json``'s ``root_causes`` entries."""
        return {
            "id": self.id,
            "signatures": list(self.signatures),
            "slices": list(self.slices),
            "shared_conditions": self.shared,
            "signals": list(self.signals),
            "events": [_event_json(e) for e in self.events],
            "start": _iso(self.start),
            "end": _iso(self.end),
            "requests": self.requests,
            "why": list(self.why),
        }

    def describe(self) -> str:
        """Lines for the terminal: the cause, its slices, why."""
        head = f"{self.id}: {self.title} ({len(self.signatures)} signature"
        head += f"{'s' if len(self.signatures) != 1 else ''}: {', '.join(self.signatures)})"
        lines = [head]
        lines += [
            f"    {sid}  {where}" for sid, where in zip(self.signatures, self.slices, strict=True)
        ]
        lines += [f"    why: {w}" for w in self.why]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        items = "".join(
            f"<li><b>{html.escape(s)}</b> {html.escape(w)}</li>"
            for s, w in zip(self.signatures, self.slices, strict=True)
        )
        why = "".join(f"<li>{html.escape(w)}</li>" for w in self.why)
        return (
            f"<div><b>{html.escape(self.id)}</b> {html.escape(self.title)}<ul>{items}</ul>"
            f"<i>why</i><ul>{why}</ul></div>"
        )


# -- the rule, piece by piece ----------------------------------------------------------


def _rows(events: pl.DataFrame | Sequence[EventLike]) -> list[dict[str, Any]]:
    rows = events.to_dicts() if isinstance(events, pl.DataFrame) else [dict(e) for e in events]
    return [r for r in rows if isinstance(r.get("ts"), datetime)]


def onset_event(
    sig: Signature,
    events: pl.DataFrame | Sequence[EventLike],
    params: RootCauseParams | None = None,
) -> dict[str, Any] | None:
    """The change event matched to a signature's onset (see the module's rule), or None.

    The event comes back with ``hours_before``: hours from the event to the
    signature's onset (positive: the event came first).
    """
    p = params or RootCauseParams()
    low, high = sig.onset_range
    earliest = low - timedelta(hours=p.lead_hours)
    latest = high + timedelta(hours=p.lag_hours)
    best: tuple[float, float, datetime, int] | None = None
    chosen: dict[str, Any] | None = None
    for i, event in enumerate(_rows(events)):
        t = event["ts"]
        scope = parse_scope(event.get("scope"))
        if not earliest <= t <= latest or scope_conflicts(sig.predicate, scope):
            continue
        distance = max((low - t).total_seconds(), (t - high).total_seconds(), 0.0) / 3600
        key = (-_agreement(sig, scope), distance, t, i)
        if best is None or key < best:
            best, chosen = key, event
    if chosen is None:
        return None
    hours = round((sig.start - chosen["ts"]).total_seconds() / 3600, 1)
    return {**chosen, "hours_before": hours}


def _agreement(sig: Signature, scope: Scope) -> float:
    """The share of an event's scope the slice names with agreeing values (0 for no scope).

    An event scoped ``platform=tpu; sampler=x`` fits a slice ``platform in {tpu}``
    less well than one scoped ``platform=tpu``: had that change caused the
    problem, the problem would be confined to sampler x, and the slice would say so.
    """
    columns = scope.columns
    return len(scope_matches(sig.predicate, scope)) / len(columns) if columns else 0.0


def shared_conditions(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """The conditions two predicates have in common: per column both constrain, where they meet.

    Examples
    --------
    >>> shared_conditions({"platform": ["tpu"], "model": ["a"]},
    ...                   {"platform": ["tpu", "gpu"], "model": ["b"]})
    {'platform': ['tpu']}
    >>> shared_conditions({"batch_size": {"gte": 64}}, {"batch_size": {"gte": 32, "lt": 128}})
    {'batch_size': {'gte': 64, 'lt': 128}}
    >>> shared_conditions({"batch_size": {"gte": 64}}, {"batch_size": [16, 96]})
    {'batch_size': [96]}
    """
    out: dict[str, Any] = {}
    for column in a:
        if column not in b:
            continue
        meet = _meet(a[column], b[column])
        if meet is not None:
            out[column] = meet
    return out


def _meet(x: Any, y: Any) -> Any:
    if isinstance(x, Mapping) and isinstance(y, Mapping):
        lows = [v for v in (x.get("gte"), y.get("gte")) if v is not None]
        highs = [v for v in (x.get("lt"), y.get("lt")) if v is not None]
        low, high = (max(lows) if lows else None), (min(highs) if highs else None)
        if low is not None and high is not None and low >= high:
            return None
        return {k: v for k, v in (("gte", low), ("lt", high)) if v is not None}
    if isinstance(x, Mapping) or isinstance(y, Mapping):
        bounds, values = (x, y) if isinstance(x, Mapping) else (y, x)
        inside = [
            v
            for v in values
            if isinstance(v, int | float)
            and (bounds.get("gte") is None or v >= bounds["gte"])
            and (bounds.get("lt") is None or v < bounds["lt"])
        ]
        return inside or None
    common = [v for v in x if v in set(y)]
    return common or None


def _agree(a: Signature, b: Signature) -> bool:
    return a.signal in b.signals and b.signal in a.signals


# -- grouping -----------------------------------------------------------------------


def group_root_causes(
    signatures: Sequence[Signature],
    events: pl.DataFrame | Sequence[EventLike],
    *,
    params: RootCauseParams | None = None,
) -> list[RootCause]:
    """Group signatures into root causes (the rule is in this module's docstring).

    Parameters
    ----------
    signatures
        Signatures, strongest first (``wb.signatures()``).
    events
        Change events (``wb.events()``, or mappings with ``ts, kind, description, scope``).
    params
        How near an event must be to an onset.

    Returns
    -------
    list[RootCause]
        Every signature in exactly one root cause, in the order of their strongest signature.
    """
    sigs = list(signatures)
    onsets = [onset_event(s, events, params) for s in sigs]
    parent = list(range(len(sigs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    links: dict[tuple[int, int], dict[str, Any]] = {}
    apart: dict[tuple[int, int], list[str]] = {}
    for i in range(len(sigs)):
        for j in range(i + 1, len(sigs)):
            oi, oj = onsets[i], onsets[j]
            if oi is None or oj is None or not _same(oi, oj):
                continue
            a, b = sigs[i], sigs[j]
            shared = shared_conditions(a.predicate, b.predicate)
            missing = []
            if not _agree(a, b):
                missing.append(_disagreement(a, b))
            if not shared:
                missing.append("their slices share no value")
            if missing:
                apart[(i, j)] = missing
                continue
            links[(i, j)] = shared
            parent[root(j)] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(sigs)):
        groups.setdefault(root(i), []).append(i)
    causes = []
    for number, members in enumerate(sorted(groups.values(), key=min), 1):
        causes.append(_cause(f"R{number}", members, sigs, onsets, links, apart))
    return causes


def _same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in ("ts", "kind", "description", "scope"))


def _disagreement(a: Signature, b: Signature) -> str:
    parts = []
    if a.signal not in b.signals:
        parts.append(f"{a.id} was found on {a.signal}, not elevated in {b.id}")
    if b.signal not in a.signals:
        parts.append(f"{b.id} was found on {b.signal}, not elevated in {a.id}")
    return "their symptoms differ (" + "; ".join(parts) + ")"


def _cause(
    cause_id: str,
    members: list[int],
    sigs: list[Signature],
    onsets: list[dict[str, Any] | None],
    links: dict[tuple[int, int], dict[str, Any]],
    apart: dict[tuple[int, int], list[str]],
) -> RootCause:
    group = [sigs[i] for i in members]
    first = group[0]
    shared = dict(first.predicate)
    signals = list(first.signals)
    for sig in group[1:]:
        shared = shared_conditions(shared, sig.predicate)
        signals = [s for s in signals if s in sig.signals]
    event = onsets[members[0]]
    events: list[dict[str, Any]] = []
    if event is not None:
        events.append({"near": "onset", **_plain(event), "signatures": [s.id for s in group]})
    for sig in group:
        for e in sig.events:
            if e.get("near") == "end":
                events.append({**e, "signature": sig.id})
    why = []
    for (i, j), common in sorted(links.items()):
        if i in members:
            why.append(_link_text(sigs[i], sigs[j], event or {}, common))
    if event is None:
        why.append(
            f"{first.id}: no change event whose scope holds its slice comes within "
            "the onset horizon, so nothing links it to another signature"
        )
    elif len(group) == 1:
        why.append(
            f"{first.id} starts {_after(event)} {_event_text(event)}; no other signature "
            "starts at this change with the same symptoms and a shared slice value"
        )
    for (i, j), reasons in sorted(apart.items()):
        if (i in members) != (j in members):  # a pair inside the group is linked through others
            mine, other = (sigs[i], sigs[j]) if i in members else (sigs[j], sigs[i])
            why.append(
                f"{mine.id} is kept apart from {other.id}, which starts at the same change: "
                + "; ".join(reasons)
            )
    ends = [s.end for s in group]
    return RootCause(
        id=cause_id,
        signatures=tuple(s.id for s in group),
        slices=tuple(describe_predicate(s.predicate) for s in group),
        shared=shared,
        signals=tuple(signals),
        event=_plain(event) if event is not None else None,
        events=tuple(events),
        start=min(s.start for s in group),
        end=None if any(e is None for e in ends) else max(e for e in ends if e is not None),
        requests=sum(s.requests for s in group),
        why=tuple(why),
    )


def _plain(event: Mapping[str, Any]) -> dict[str, Any]:
    return {k: event.get(k) for k in ("ts", "kind", "description", "scope")}


def _after(event: Mapping[str, Any]) -> str:
    hours = event.get("hours_before")
    if hours is None or abs(hours) < 0.05:
        return "at"
    return f"{abs(hours):g} h {'after' if hours > 0 else 'before'}"


def _event_text(event: Mapping[str, Any]) -> str:
    ts = event["ts"]
    when = ts.strftime("%Y-%m-%d %H:%M") if isinstance(ts, datetime) else str(ts)
    text = f"the {event.get('kind') or 'change'} of {when} UTC"
    if event.get("description"):
        text += f" ({event['description']})"
    if event.get("scope"):
        text += f", scoped {event['scope']}"
    return text


def _link_text(
    a: Signature, b: Signature, event: Mapping[str, Any], shared: Mapping[str, Any]
) -> str:
    both = [s for s in a.signals if s in b.signals]
    found = (
        f"both found on {a.signal}"
        if a.signal == b.signal
        else f"{a.id} found on {a.signal}, {b.id} on {b.signal}"
    )
    return (
        f"{a.id} and {b.id} both start at {_event_text(event)}; both show "
        f"{', '.join(both)} ({found}); "
        f"both slices hold {describe_predicate(dict(shared))}"
    )


# -- output -------------------------------------------------------------------------


def _event_json(event: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (_iso(v) if isinstance(v, datetime) else v) for k, v in event.items()}


def headline(causes: Sequence[RootCause]) -> str:
    """The headline: "N root causes affecting M slices" (each signature is one slice).

    Examples
    --------
    >>> headline([])
    'no root cause: no signature'
    """
    if not causes:
        return "no root cause: no signature"
    slices = sum(len(c.signatures) for c in causes)
    n, m = len(causes), slices
    return f"{n} root cause{'s' if n != 1 else ''} affecting {m} slice{'s' if m != 1 else ''}"


def describe_root_causes(causes: Sequence[RootCause]) -> str:
    """The headline, then each root cause's lines (``RootCause.describe``)."""
    return "\n".join([headline(causes) + ":", *(c.describe() for c in causes)])


def root_causes_frame(causes: Sequence[RootCause]) -> pl.DataFrame:
    """One row per root cause.

    Columns: ``id, title, signatures`` (ids, comma-separated), ``slices``
    (one per line), ``shared`` (its shared conditions as text; null when
    none), ``signals,
    event_ts, event, start, end`` (null: still active), ``requests, why``
    (one reason per line).

    Examples
    --------
    >>> root_causes_frame([]).columns[:3]
    ['id', 'title', 'signatures']
    """
    return pl.DataFrame(
        [
            (
                c.id,
                c.title,
                ", ".join(c.signatures),
                "\n".join(c.slices),
                describe_predicate(c.shared) if c.shared else None,
                ", ".join(c.signals),
                c.event["ts"] if c.event else None,
                (f"{c.event.get('kind')}: {c.event.get('description') or ''}" if c.event else None),
                c.start,
                c.end,
                c.requests,
                "\n".join(c.why),
            )
            for c in causes
        ],
        schema={
            "id": pl.Utf8,
            "title": pl.Utf8,
            "signatures": pl.Utf8,
            "slices": pl.Utf8,
            "shared": pl.Utf8,
            "signals": pl.Utf8,
            "event_ts": pl.Datetime("us", "UTC"),
            "event": pl.Utf8,
            "start": pl.Datetime("us", "UTC"),
            "end": pl.Datetime("us", "UTC"),
            "requests": pl.Int64,
            "why": pl.Utf8,
        },
        orient="row",
    )
