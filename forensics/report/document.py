"""The report as a document: blocks (headings, paragraphs, tables, charts...) built once.

Both renderers (``render_html``, ``render_markdown``) walk the same blocks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from forensics.findings import View
from forensics.report.evidence import (
    Evidence,
    _parse,
    numbered_events,
)
from forensics.report.figure import Figure
from forensics.report.formatting import (
    _anchor,
    _clip,
    _hours,
    _num,
    _pct,
    _pp,
    _range,
    _rate,
    _ratio,
    _sh,
    _time,
    _when_range,
    _window_text,
)
from forensics.rootcause import RootCause, headline
from forensics.stats import format_p_value

if TYPE_CHECKING:
    from forensics.explain import Explanation
    from forensics.report.investigation import Investigation
    from forensics.report.provenance import Provenance
    from forensics.signature import Signature


# -- the document: blocks, then HTML or Markdown --------------------------------------


@dataclass(frozen=True)
class _Span:
    text: str
    style: Literal["b", "code", "link"] = "b"
    href: str = ""


_Inline = str | _Span


@dataclass(frozen=True)
class _Heading:
    level: int
    text: str
    anchor: str
    toc: bool = True


@dataclass(frozen=True)
class _Para:
    spans: tuple[_Inline, ...]
    kind: Literal["p", "lead", "muted"] = "p"


@dataclass(frozen=True)
class _Table:
    header: tuple[str, ...]
    rows: tuple[tuple[_Inline, ...], ...]
    align: str = ""
    """One letter per column: l (left), r (right, one line: numbers), n (left, one line)."""
    caption: str = ""
    compact: bool = False
    """As narrow as its content, rather than the full width."""


@dataclass(frozen=True)
class _Chart:
    figure: Figure
    number: int


@dataclass(frozen=True)
class _Code:
    text: str
    label: str = ""


@dataclass(frozen=True)
class _Facts:
    items: tuple[tuple[str, str, str], ...]
    """(label, value, detail)."""


@dataclass(frozen=True)
class _Note:
    title: str
    text: str
    meta: str


@dataclass(frozen=True)
class _Section:
    """Opens (``start``) or closes a section that prints on a new page."""

    start: bool


@dataclass(frozen=True)
class _Bullets:
    """A list, one item of inline spans per entry."""

    items: tuple[tuple[_Inline, ...], ...]


_Block = _Heading | _Para | _Table | _Chart | _Code | _Facts | _Note | _Section | _Bullets


def _document(inv: Investigation) -> list[_Block]:
    prov = inv.provenance
    doc: list[_Block] = [_Heading(1, inv.title, "title", toc=False)]
    counter = iter(range(1, 10_000))
    when = _when_range(prov.first, prov.last)
    doc.append(
        _Para(
            (
                f"Database {prov.database} · {prov.requests:,} requests, {when} · "
                f"{prov.events:,} change events · report written "
                f"{_time(datetime.now(UTC))} by forensics {prov.packages.get('forensics', '?')}"
                + (" · privacy mode: ids hashed, no response text stored" if prov.privacy else ""),
            ),
            "muted",
        )
    )
    doc += _summary(inv)
    doc += _explained(inv)
    doc += _root_causes(inv)
    doc += _watch_alerts(inv)
    if inv.notes:
        doc.append(_Heading(2, "Notes", "notes"))
        for note in inv.notes:
            doc.append(_Note(note.title, note.text, f"written {_time(note.created_at)}"))
    if inv.overview is not None:
        doc.append(_Heading(2, "Timeline", "timeline"))
        doc.append(_Chart(inv.overview, next(counter)))
        doc += _events_table(inv)
    for sig in inv.signatures:
        doc += _signature_section(sig, inv.evidence.get(sig.id), counter)
    for i, explanation in enumerate(inv.explanations, 1):
        doc += _explanation_section(explanation, i)
    if inv.views:
        doc.append(_Section(True))
        doc.append(_Heading(2, "Pinned views", "views"))
        for i, view in enumerate(inv.views, 1):
            doc += _view_section(view, i, counter)
        doc.append(_Section(False))
    if inv.charts:
        doc.append(_Heading(2, "Charts", "charts"))
        for figure in inv.charts:
            doc.append(_Chart(figure, next(counter)))
    doc.append(_Section(True))
    doc += _data_quality(prov)
    doc += _method(inv)
    doc.append(_Section(False))
    return doc


def _summary(inv: Investigation) -> list[_Block]:
    from forensics import charts

    doc: list[_Block] = [_Heading(2, "Summary", "summary")]
    sigs = inv.signatures
    if not sigs:
        if inv.search is not None:
            text = (
                "The signature search found no distinct problem: no slice and window "
                "where a signal rises significantly above its baseline."
            )
        else:
            text = "No signature search is part of this investigation."
        doc.append(_Para((text,), "lead"))
        return doc
    n = len(sigs)
    doc.append(
        _Para(
            (
                _Span(f"{headline(inv.root_causes)}."),
                " A root cause is a change and the slices of traffic it broke: signatures "
                "that start at the same change event, show the same symptoms and share a "
                "value of their slices (how each was grouped, and why, is under Root "
                "causes). Every rate comes with its 95% interval and every time is UTC.",
            ),
            "lead",
        )
    )
    doc.append(_root_cause_table(inv.root_causes))
    doc.append(
        _Para(
            (
                f"The signature search separated {n} slice{'s' if n != 1 else ''} "
                f"(signature{'s' if n != 1 else ''}), strongest first: each a slice of the "
                "traffic, a time window and the symptoms that rose in it.",
            ),
        )
    )
    rows = []
    for s in sigs:
        rows.append(
            (
                _Span(s.id, "link", f"sig-{_anchor(s.id)}"),
                charts.describe_where(s.predicate),
                f"{_time(s.start)}\n→ {_time(s.end) if s.end else 'still active'}",
                ", ".join([s.signal, *(x for x in s.signals if x != s.signal)]),
                f"{s.requests:,}",
                "n/a" if s.users is None else f"{s.users:,}",
                _pp(s.excess_rate, *s.ci).replace(" [", "\n["),
                format_p_value(s.p_value),
            )
        )
    doc.append(
        _Table(
            (
                "id",
                "slice",
                "window (UTC)",
                "symptoms (found on first)",
                "requests",
                "users",
                "excess rate [95% CI]",
                "adjusted p",
            ),
            tuple(rows),
            "llnlrrrr",
        )
    )
    doc.append(
        _Para(
            (
                "Excess rate: the rate of the symptom the problem was found on, inside its "
                "slice and window, minus its baseline rate, in percentage points. "
                "Adjusted p: how sure the search is that the problem is real, valid after "
                "the search: Bonferroni over every slice, window and signal it could have "
                "chosen, calibrated on searches of data with no bug.",
            ),
            "muted",
        )
    )
    return doc


def _explained(inv: Investigation) -> list[_Block]:
    """The moments explained, one line each with its first candidate (under the summary)."""
    if not inv.explanations:
        return []
    items = []
    for i, e in enumerate(inv.explanations, 1):
        first = e.items[0] if e.items else None
        items.append(
            (
                _Span(f"X{i}", "link", f"explain-{i}"),
                f" {_explanation_title(e)}: "
                + (
                    f"{first.description} ({_pct(first.share, 0)} of the excess)"
                    if first is not None
                    else "no slice raised"
                ),
            )
        )
    return [
        _Para(("Moments explained (wb.explain), each with its first candidate:",)),
        _Bullets(tuple(items)),
    ]


def _root_cause_table(causes: Sequence[RootCause]) -> _Table:
    from forensics import charts

    rows = []
    for c in causes:
        event = c.event
        change = "no matching change event"
        if event is not None:
            change = f"{_time(event.get('ts'))} {event.get('kind') or ''}: {event.get('description') or ''}"
        rows.append(
            (
                _Span(c.id, "link", f"cause-{_anchor(c.id)}"),
                change,
                ", ".join(c.signatures),
                charts.describe_where(c.shared) if c.shared else "no value all of them share",
                ", ".join(c.signals),
                f"{_time(c.start)}\n→ {_time(c.end) if c.end else 'still active'}",
                f"{c.requests:,}",
            )
        )
    return _Table(
        (
            "root cause",
            "change at its onset",
            "signatures",
            "shared by their slices",
            "symptoms in all",
            "window (UTC)",
            "requests",
        ),
        tuple(rows),
        "lllllnr",
    )


def _root_causes(inv: Investigation) -> list[_Block]:
    from forensics import charts

    if not inv.root_causes:
        return []
    by_id = {s.id: s for s in inv.signatures}
    doc: list[_Block] = [
        _Heading(2, "Root causes", "root-causes"),
        _Para(
            (
                "Signatures are grouped when their onsets match the same change event "
                "(in time, and in scope: an event whose scope excludes a slice is not its "
                "cause), the signal each was found on is elevated in the other, and their "
                "slices share a value; ends may differ, as fixes roll out slice by slice. "
                "A signature linked to none is a root cause of its own. See "
                "forensics.rootcause for the rule.",
            ),
            "muted",
        ),
    ]
    for c in inv.root_causes:
        doc.append(_Heading(3, f"{c.id} · {c.title}", f"cause-{_anchor(c.id)}"))
        spans: list[_Inline] = ["Slices: "]
        for i, sid in enumerate(c.signatures):
            sig = by_id.get(sid)
            spans.append(_Span(sid, "link", f"sig-{_anchor(sid)}"))
            where = charts.describe_where(sig.predicate) if sig is not None else ""
            spans.append(f" ({where})" + ("; " if i < len(c.signatures) - 1 else "."))
        doc.append(_Para(tuple(spans)))
        if c.events:
            doc.append(
                _Table(
                    ("near", "of", "time (UTC)", "kind", "description", "scope"),
                    tuple(
                        (
                            str(e.get("near", "")),
                            ", ".join(e.get("signatures") or [str(e.get("signature", ""))]),
                            _time(e.get("ts")),
                            *_event_cells(e),
                        )
                        for e in c.events
                    ),
                    "llnlll",
                    caption="The change at its onset and the nearest change at each slice's end.",
                )
            )
        doc.append(_Para(("Why:",), "muted"))
        doc.append(_Bullets(tuple((w,) for w in c.why)))
    return doc


def _watch_alerts(inv: Investigation) -> list[_Block]:
    """The watch's alerts (``forensics watch``), newest first, when the database was watched."""
    alerts = inv.alerts
    if alerts.height == 0:
        return []
    rows = tuple(
        (
            str(a["id"]),
            str(a["kind"]),
            _time(a["at"]),
            str(a["signal"]),
            str(a["where"]),
            _time(_parse(a["start"])) if a["start"] else "",
            _time(_parse(a["end"])) if a["end"] else "open",
            f"{a['excess_requests']:,.0f}",
        )
        for a in alerts.iter_rows(named=True)
    )
    return [
        _Heading(2, "Watch alerts", "alerts"),
        _Table(
            ("alert", "kind", "data to (UTC)", "signal", "where", "onset", "end", "excess"),
            rows,
            "lnnllnnr",
            caption="Calls: wb.alerts() (raised by forensics watch)",
        ),
    ]


def _events_table(inv: Investigation) -> list[_Block]:
    if inv.events.height == 0:
        return []
    matched: dict[tuple[Any, ...], list[str]] = {}
    for c in inv.root_causes:
        for e in c.events:
            key = _event_key(e)
            if e.get("near") == "onset":
                matched.setdefault(key, []).append(
                    f"onset of {', '.join(e.get('signatures') or [])} ({c.id})"
                )
            else:
                matched.setdefault(key, []).append(f"end of {e.get('signature')}")
    rows = tuple(
        (
            str(e["label"]),
            _time(e["ts"]),
            *_event_cells(e),
            "; ".join(matched.get(_event_key(e), [])),
        )
        for e in numbered_events(inv.events).iter_rows(named=True)
    )
    return [
        _Table(
            ("event", "time (UTC)", "kind", "description", "scope", "matched to"),
            rows,
            "lnllll",
            caption="Calls: wb.events(), wb.root_causes(signatures)",
        )
    ]


def _event_cells(event: Mapping[str, Any]) -> tuple[str, str, str]:
    """An event's kind, description and scope as table cells."""
    kind, description, scope = (str(event.get(k) or "") for k in ("kind", "description", "scope"))
    return kind, description, scope


def _event_key(event: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(event.get(k) for k in ("ts", "kind", "description", "scope"))


def _signature_section(sig: Signature, ev: Evidence | None, counter: Iterable[int]) -> list[_Block]:
    from forensics import charts

    numbers = iter(counter)
    doc: list[_Block] = [
        _Section(True),
        _Heading(2, f"{sig.id} · {charts.describe_where(sig.predicate)}", f"sig-{_anchor(sig.id)}"),
    ]
    primary = next((m for m in sig.symptoms if m.signal == sig.signal), None)
    excess = f"≈ {sig.excess_requests:,.0f}"
    if primary is not None and abs(primary.n_inside * sig.excess_rate - sig.excess_requests) < 1:
        excess += f" [{primary.n_inside * sig.ci[0]:,.0f}, {primary.n_inside * sig.ci[1]:,.0f}]"
    doc.append(
        _Para(
            (
                "Requests with ",
                _Span(charts.describe_where(sig.predicate)),
                f" from {_time(sig.start)} to {_time(sig.end) if sig.end else 'the end of the data (still active)'}"
                f" show {', '.join(sig.signals)} above their baseline: "
                f"{sig.requests:,} requests"
                + ("" if sig.users is None else f" from {sig.users:,} users")
                + f", and {excess} more "
                f"{sig.signal} than the baseline rate predicts.",
            ),
            "lead",
        )
    )
    onset = _range(*sig.onset_range)
    end = _range(*sig.end_range) if sig.end_range else "still active"
    facts = [
        ("excess rate", _pp(sig.excess_rate, *sig.ci), f"{sig.signal}, 95% CI"),
        ("excess requests", excess, f"more {sig.signal} than the baseline predicts"),
        ("requests", f"{sig.requests:,}", "in the slice during the window"),
        (
            "users",
            "n/a" if sig.users is None else f"{sig.users:,}",
            "distinct users among them" if sig.users is not None else "counted rows name no users",
        ),
        (
            "adjusted p",
            format_p_value(sig.p_value),
            "valid after the search (Bonferroni, calibrated on bug-free data)",
        ),
        (
            "odds ratio",
            _ratio(sig.odds_ratio, *sig.odds_ratio_ci),
            "joint binomial GLM, 95% CI",
        ),
        ("onset", onset, "95% range (UTC)"),
        ("end", end, "95% range (UTC)"),
    ]
    doc.append(_Facts(tuple(facts)))
    doc.append(
        _Heading(3, "Symptoms: inside vs baseline", f"sig-{_anchor(sig.id)}-symptoms", False)
    )
    doc.append(_Para((f"Baseline: {sig.baseline}.",), "muted"))
    doc.append(
        _Table(
            (
                "signal",
                "inside [95% CI]",
                "requests inside",
                "baseline [95% CI]",
                "requests in baseline",
                "p (one-sided)",
                "elevated",
            ),
            tuple(
                (
                    _Span(m.signal) if m.elevated else m.signal,
                    _rate(m.rate_inside, *m.ci_inside),
                    f"{m.k_inside:,} of {m.n_inside:,}",
                    _rate(m.rate_baseline, *m.ci_baseline),
                    f"{m.k_baseline:,} of {m.n_baseline:,}",
                    format_p_value(m.p_value),
                    "yes" if m.elevated else "no",
                )
                for m in sig.symptoms
            ),
            "lrrrrrl",
        )
    )
    if sig.events:
        doc.append(
            _Heading(3, "Change events near onset and end", f"sig-{_anchor(sig.id)}-events", False)
        )
        doc.append(
            _Table(
                ("near", "time (UTC)", "hours away", "kind", "description", "scope"),
                tuple(
                    (
                        str(e.get("near", "")),
                        _time(e.get("ts")),
                        _hours(e.get("hours_away")),
                        *_event_cells(e),
                    )
                    for e in sig.events
                ),
                "lnrlll",
            )
        )
    if ev is None:
        doc.append(_Section(False))
        return doc
    doc.append(_Heading(3, "Change-point view", f"sig-{_anchor(sig.id)}-timeline", False))
    doc.append(_Chart(ev.timeline, next(numbers)))
    if ev.comparison is not None:
        doc.append(
            _Heading(3, "What is different in its window", f"sig-{_anchor(sig.id)}-compare", False)
        )
        doc.append(_Chart(ev.comparison, next(numbers)))
        doc.append(_top_slices_table(ev.top_slices))
    if ev.exposure is not None and ev.exposure_figure is not None:
        doc.append(_Heading(3, "User exposure", f"sig-{_anchor(sig.id)}-exposure", False))
        doc.append(_Chart(ev.exposure_figure, next(numbers)))
        exp = ev.exposure
        doc.append(
            _Table(
                ("measure", "estimate [95% CI]"),
                tuple((m, _rate(e, lo, hi)) for m, e, lo, hi in exp.summary().iter_rows()),
                "lr",
                caption=(
                    f"{exp.users_affected:,} of {exp.users:,} users affected; repeat ratio "
                    f"{_num(exp.repeat_ratio, '.2f')}× (about 1 when requests are independent, "
                    "far above 1 when the problem sticks to users)."
                ),
                compact=True,
            )
        )
    if ev.examples is not None and ev.examples.height:
        doc.append(_Heading(3, "Example requests", f"sig-{_anchor(sig.id)}-examples", False))
        doc.append(
            _Table(
                ("request", "time", "signals", "response (evidence in « »)"),
                tuple(
                    (r["request_id"], _time(r["ts"]), r["signals"], r["excerpt"])
                    for r in ev.examples.iter_rows(named=True)
                ),
                "nnnl",
                caption=(
                    f"{ev.examples.height} of {sig.id}'s requests with {sig.signal}, "
                    f"drawn by hash: {ev.examples_call}"
                ),
            )
        )
    for reason in ev.missing:
        doc.append(_Para((f"Not shown: {reason}",), "muted"))
    doc.append(_Section(False))
    return doc


def _explanation_title(e: Explanation) -> str:
    return f"{e.signal or 'signal'} at {_time(e.at)}"


def _explanation_section(e: Explanation, i: int) -> list[_Block]:
    """A moment explained: when, against what, and the ranked candidates with intervals."""
    from forensics.explain.result import describe_grain, describe_where

    anchor = f"explain-{i}"
    doc: list[_Block] = [_Section(True), _Heading(2, f"X{i} · {_explanation_title(e)}", anchor)]
    if e.found and e.within is not None:
        how = f"the most anomalous moment in {_window_text(*e.within)}"
    elif e.found:
        how = "the most anomalous moment of the data"
    else:
        how = "the moment asked"
    first = e.items[0] if e.items else None
    lead: tuple[_Inline, ...] = (
        f"Which slices explain {e.signal or 'the signal'} at {_time(e.at)} ({how}): ",
        *(
            (
                _Span(first.description),
                f" holds {_pct(first.share, 0)} of the excess, its rate "
                f"{_rate(first.rate, *first.ci)} against a baseline of {_pct(first.baseline_rate)}.",
            )
            if first is not None
            else ("no slice is raised above its baseline.",)
        ),
    )
    doc.append(_Para(lead, "lead"))
    rise = f", times the rest of the traffic's rise ×{e.factor:.2f}" if e.factor > 1 else ""
    facts = [
        ("moment", _time(e.at), f"{how}; buckets of {describe_grain(e.grain)}"),
        (
            "baseline",
            f"{e.baseline_buckets} buckets",
            f"each slice's own recent past{rise}",
        ),
        ("requests", describe_where(e.where) if e.where else "all", "what was explained"),
        ("candidates", f"{len(e.items)}", "ranked: the explanation, then coarser and finer ones"),
    ]
    doc.append(_Facts(tuple(facts)))
    doc.append(
        _Para(
            (
                f"Baseline: each slice's own rate over the {e.baseline_buckets} buckets of "
                f"{describe_grain(e.grain)} before the moment{rise}. Share: the candidate's "
                "excess over the moment's whole excess; score: the evidence it is raised "
                "(log-likelihood ratio over the dispersion, nats).",
            ),
            "muted",
        )
    )
    doc.append(
        _Table(
            (
                "#",
                "candidate",
                "role",
                "share of the excess",
                "rate [95% CI]",
                "baseline rate",
                "signal / requests",
                "score",
            ),
            tuple(
                (
                    str(rank),
                    c.description.replace("; ", "\n"),  # one element a line
                    c.role,
                    _pct(c.share, 0),
                    _rate(c.rate, *c.ci),
                    _pct(c.baseline_rate),
                    f"{c.signal_count:,} of {c.requests:,}",
                    f"{c.score:.1f}",
                )
                for rank, c in enumerate(e.items, 1)
            ),
            "rllrrrrr",
            caption=f"Call: {e.call()}",
        )
    )
    doc.append(_Section(False))
    return doc


def _top_slices_table(top: pl.DataFrame) -> _Table:
    rows = []
    for r in top.iter_rows(named=True):
        rows.append(
            (
                f"{r['dimension']} = {r['value']}",
                _rate(r["rate_incident"], r["ci_low"], r["ci_high"]),
                _pct(r["rate_baseline"])
                + (
                    " (all values: none of its own)"
                    if r["n_baseline"] == 0 and r["rate_baseline"] is not None
                    else ""
                ),
                _pp(r["diff"], r["diff_low"], r["diff_high"]),
                format_p_value(r["p_adjusted"]),
                _pct(r["explains"], 0) if r["explains"] is not None else "–",
            )
        )
    return _Table(
        (
            "slice",
            "incident rate [95% CI]",
            "baseline rate",
            "difference [95% CI]",
            "p (BH-adjusted)",
            "share of the excess",
        ),
        tuple(rows),
        "lrrrrr",
        caption=f"The comparison's top {len(rows)} slices.",
    )


def _view_section(view: View, i: int, counter: Iterable[int]) -> list[_Block]:
    from forensics import charts

    numbers = iter(counter)
    doc: list[_Block] = [_Heading(3, view.title or f"View {i}", f"view-{i}", True)]
    details = [
        f"signal {view.signal}",
        f"filters: {charts.describe_where(view.where)}",
        f"grain: {view.grain}",
    ]
    if view.by:
        details.append(f"by {' / '.join(view.by)}")
    if view.incident:
        details.append(f"incident window {_window_text(*view.incident)}")
    details.append(f"pinned {_time(view.created_at)}")
    doc.append(_Para((" · ".join(details),), "muted"))
    if view.note:
        doc.append(_Note("", view.note, "note"))
    if view.chart:
        doc.append(_Chart(Figure.of(view.chart, title=view.title, calls=view.calls), next(numbers)))
    elif view.calls:
        doc.append(_Code("\n".join(view.calls), "reproduce"))
    return doc


def _data_quality(prov: Provenance) -> list[_Block]:
    doc: list[_Block] = [_Heading(2, "Data quality", "data-quality")]
    files = prov.files
    read = sum(int(f["rows_read"]) for f in files)
    accepted = sum(int(f["accepted"]) for f in files)
    rejected = sum(int(f["rejected"]) for f in files)
    duplicates = sum(int(f["duplicates"]) for f in files)
    skipped = sum(int(f.get("skipped") or 0) for f in files)
    spans = (
        f" + {skipped:,} OTLP spans that are not GenAI inferences (HTTP, database, tool "
        "calls...), counted, not loaded"
        if skipped
        else ""
    )
    doc.append(
        _Para(
            (
                f"{len(files)} input file{'s' if len(files) != 1 else ''}: {read:,} rows read = "
                f"{accepted:,} accepted + {rejected:,} rejected + {duplicates:,} exact "
                f"duplicates skipped{spans}. Rejected rows are kept in the rejected_rows table "
                "with their reason; nothing is dropped silently.",
            ),
        )
    )
    if files:
        doc.append(
            _Table(
                (
                    "file",
                    "sha256",
                    "format",
                    "rows read",
                    "accepted",
                    "rejected",
                    "duplicates",
                    "ingested (UTC)",
                ),
                tuple(
                    (
                        str(f["path"]),
                        _Span(str(f["sha256"]), "code"),
                        str(f["format"]),
                        f"{int(f['rows_read']):,}",
                        f"{int(f['accepted']):,}",
                        f"{int(f['rejected']):,}",
                        f"{int(f['duplicates']):,}",
                        _time(f.get("ingested_at")),
                    )
                    for f in files
                ),
                "lllrrrrn",
                caption="Calls: wb.files()",
            )
        )
    doc.append(_Heading(3, "Rejected rows by reason", "rejected", False))
    if not prov.rejected:
        doc.append(_Para(("No row was rejected.",), "muted"))
    else:
        doc.append(
            _Table(
                ("file", "reason", "rows", "example: row", "column", "bad value", "raw row"),
                tuple(
                    (
                        str(r["source_file"]),
                        str(r["reason"]),
                        f"{int(r['rows']):,}",
                        _num(r["example"].get("row_number"), ","),
                        str(r["example"].get("column") or ""),
                        _clip(r["example"].get("bad_value"), 80),
                        _Span(str(r["example"].get("raw") or ""), "code"),
                    )
                    for r in prov.rejected
                ),
                "llrrlll",
                caption=(
                    "Calls: wb.rejected_by_reason(), wb.rejected(reason=...)"
                    + (" · raw rows are redacted (privacy mode)" if prov.privacy else "")
                ),
            )
        )
    return doc


_METHOD = (
    "Rates carry 95% Wilson intervals; differences of rates (excess rates) 95% Newcombe "
    "intervals; rankings over many slices Benjamini–Hochberg-adjusted p-values. "
    "Signatures come from a scan over every slice and time window of each signal "
    "against a baseline model of that signal, refined to a minimal predicate and "
    "explained away one at a time, so that a problem is reported once; their p-values "
    "hold after the search (Bonferroni over every slice, window and signal it could have "
    "chosen, calibrated on searches of bug-free data), and their odds "
    "ratios come from one binomial GLM per signal fitted with every signature at once "
    "(see forensics.separation). Times are UTC; windows include their start and exclude "
    "their end."
)


def _method(inv: Investigation) -> list[_Block]:
    prov = inv.provenance
    doc: list[_Block] = [
        _Heading(2, "Method and reproducibility", "method"),
        _Para((_METHOD,)),
    ]
    db = prov.database
    commands = []
    for sim in prov.simulations:
        commands.append(
            f"forensics simulate --scenario {_sh(sim['scenario'])} --rows {sim['rows']} "
            f"--seed {sim['seed']} --out {_sh(str(Path(sim['file']).parent))}"
        )
    for f in prov.files:
        flags = []
        if f.get("mapping"):
            flags.append(f"--mapping {_sh(str(f['mapping']))}")
        if f.get("privacy"):
            flags.append('--privacy --salt "$FORENSICS_SALT"')
        commands.append(
            " ".join(["forensics ingest", _sh(str(f["path"])), "--db", _sh(db), *flags])
            + f"   # sha256 {str(f['sha256'])[:16]}…"
        )
    for source in prov.event_files:
        if source["source_file"] is None:
            commands.append(
                f"# {source['events']} change events were added without `forensics "
                "ingest-events` (no file records them)"
            )
        else:
            commands.append(
                f"forensics ingest-events {_sh(str(source['source_file']))} --db {_sh(db)}   "
                f"# {source['events']} change events"
            )
    commands.append(f"forensics report --db {_sh(db)} --out report.html")
    doc.append(_Heading(3, "How to reproduce", "reproduce", False))
    doc.append(_Code("\n".join(commands), "shell"))
    python = [
        "import forensics",
        "",
        f"wb = forensics.open({db!r}, read_only=True)",
    ]
    if inv.search is not None:
        python.append(f"signatures = {inv.search['call']}")
        python.append("report = wb.report()   # this report: signatures and their evidence")
    python.append("# every figure above lists the calls that return its numbers")
    doc.append(_Code("\n".join(python), "python"))
    if prov.simulations:
        doc.append(
            _Para(
                (
                    "The input was generated by forensics simulate; scenario and seed are "
                    "read from the truth.json beside it, whose row count matches the file.",
                ),
                "muted",
            )
        )
    if inv.search is not None:
        doc.append(_Heading(3, "Signature search parameters", "search", False))
        doc.append(
            _Table(
                ("parameter", "value"),
                tuple((k, str(v)) for k, v in inv.search["params"].items()),
                "lr",
                caption=f"Call: {inv.search['call']}",
                compact=True,
            )
        )
    doc.append(_Heading(3, "Software", "software", False))
    doc.append(
        _Table(
            ("package", "version"),
            (("python", prov.python), *((k, v) for k, v in prov.packages.items())),
            "ll",
            compact=True,
        )
    )
    doc.append(
        _Para(
            (
                f"Signals: {', '.join(prov.signals) or '–'}. Dimensions: "
                f"{', '.join(prov.dimensions) or '–'}. Outcomes (measured, never slices): "
                f"{', '.join(prov.outcomes) or '–'}.",
            ),
            "muted",
        )
    )
    return doc
