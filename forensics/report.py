"""Investigation reports: what broke, where, when, for whom, how sure, and how to redo it.

An ``Investigation`` collects findings — signatures (``Workbench.signatures``)
with the evidence behind each (its change-point view, the comparison's top
slices, user exposure), views pinned from the dashboard, notes and charts —
together with provenance read from the database: the input files with their
content hashes and row counts, rejected rows by reason, package versions, the
simulator's scenario and seed when a matching ``truth.json`` sits next to an
input file, and, under every figure, the Python calls that reproduce it.
``save`` writes one document from the same data, as Evidently's snapshot does:

- **HTML**: one file that renders offline — inline CSS, charts as inline SVG
  drawn by vl-convert, no script and no external resource (a Content Security
  Policy says so to the browser too) — with a table of contents and a print
  stylesheet;
- **Markdown**: charts as PNG files in a folder beside it, linked relatively;
- **JSON**: the findings; signatures in the shape of ``forensics signatures --json``.

Everything that comes from the data or the user is escaped where it is
written. Chart SVG is parsed and rebuilt from an allowlist of elements and
attributes (no script, no event handler, no link out), with its ids made
unique per chart so that charts sharing one page do not borrow each other's
clip paths. This module renders: every number comes from the Workbench.
Altair loads on first use, so that ``import forensics`` stays quick.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import importlib.metadata
import json
import math
import os
import platform
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

import polars as pl

from forensics import queries
from forensics.analysis import Exposure
from forensics.errors import ConfigError, QueryError
from forensics.evaluate import simulation_of
from forensics.findings import Note, View
from forensics.stats import format_p_value

if TYPE_CHECKING:
    from forensics.separation import SeparationParams
    from forensics.signature import Signature
    from forensics.workbench import Workbench

__all__ = [
    "FORMATS",
    "Evidence",
    "Figure",
    "Investigation",
    "Provenance",
    "safe_svg",
]

Format = Literal["html", "md", "json"]

FORMATS: tuple[str, ...] = ("html", "md", "json")
"""Formats ``Investigation.save`` writes."""

_SUFFIXES = {".html": "html", ".htm": "html", ".md": "md", ".markdown": "md", ".json": "json"}

DEFAULT_TITLE = "Incident investigation"
"""Title of a report when none is given."""

TOP_SLICES = 5
"""Rows of each signature's comparison shown as a table (the chart shows more)."""

COMPARE_CHART_ROWS = 12
"""Rows of each signature's comparison chart."""

OVERVIEW_WIDTH = 600
"""Plotting width of the overview timeline (its row labels take as much again)."""

RAW_EXAMPLE_CHARS = 240
"""A rejected row's raw content is shown up to this many characters."""

PNG_SCALE = 1.5
"""Pixel density of the Markdown report's PNG charts."""

PACKAGES: tuple[str, ...] = (
    "forensics", "duckdb", "polars", "pyarrow", "numpy", "scipy", "statsmodels", "altair",
    "vl-convert-python",
)  # fmt: skip
"""Packages whose versions the report records: forensics and the dependencies its numbers
and charts come from (a test keeps them among pyproject.toml's dependencies)."""


# -- findings -------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Figure:
    """A chart of the report, with the calls that reproduce its numbers.

    Examples
    --------
    >>> import altair as alt
    >>> f = Figure.of(alt.Chart().mark_point(), title="t", calls=["wb.rates()"])
    >>> f.to_dict()["calls"], "config" in f.chart
    (['wb.rates()'], True)
    """

    title: str
    """What it shows."""
    chart: dict[str, Any]
    """Vega-Lite specification, data inlined, styled (``charts.CONFIG``)."""
    calls: tuple[str, ...] = ()
    """Python calls on the workbench (``wb``) that return every number drawn."""
    caption: str = ""
    """How to read it."""

    @classmethod
    def of(
        cls,
        chart: Any,
        *,
        title: str,
        calls: Iterable[str] = (),
        caption: str = "",
    ) -> Figure:
        """A figure from an Altair chart or a Vega-Lite dictionary (styled when it is not)."""
        from forensics import charts

        spec = dict(chart) if isinstance(chart, Mapping) else chart.to_dict()
        spec.setdefault("config", charts.CONFIG)
        return cls(title=title, chart=spec, calls=tuple(calls), caption=caption)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dictionary."""
        return {
            "kind": "chart",
            "title": self.title,
            "caption": self.caption,
            "calls": list(self.calls),
            "chart": self.chart,
        }


@dataclass(frozen=True, eq=False)
class Evidence:
    """What the report shows for one signature, each part with the calls behind it."""

    signature: Signature
    """The signature."""
    timeline: Figure
    """Rate of its signal in its slice over the whole range, its window shaded, with the
    change events and detected change points."""
    comparison: Figure | None
    """Incident (its window) vs baseline over every dimension value; None when the data
    has no time outside the window."""
    top_slices: pl.DataFrame
    """The comparison's first ``TOP_SLICES`` rows (``Workbench.compare``'s columns)."""
    exposure: Exposure | None
    """User exposure inside its slice and window; None without user ids."""
    exposure_figure: Figure | None
    """The exposure chart."""
    missing: tuple[str, ...] = ()
    """Why a part is absent."""

    @property
    def calls(self) -> tuple[str, ...]:
        """Every call behind the evidence."""
        figures = (self.timeline, self.comparison, self.exposure_figure)
        return tuple(c for f in figures if f is not None for c in f.calls)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dictionary (figures with their specifications)."""
        exposure = None
        if self.exposure is not None:
            exposure = {
                "summary": self.exposure.summary().to_dicts(),
                "users": self.exposure.users,
                "users_affected": self.exposure.users_affected,
                "repeat_ratio": self.exposure.repeat_ratio,
                "per_user": self.exposure.per_user.to_dicts(),
            }
        return {
            "signature": self.signature.id,
            "top_slices": self.top_slices.to_dicts(),
            "exposure": exposure,
            "missing": list(self.missing),
            "figures": [
                f.to_dict()
                for f in (self.timeline, self.comparison, self.exposure_figure)
                if f is not None
            ],
        }


@dataclass(frozen=True)
class Provenance:
    """Where the numbers come from: the database, its inputs, the software."""

    database: str
    """The database file."""
    gathered_at: datetime
    """When this was read (UTC)."""
    requests: int
    """Requests in the database."""
    events: int
    """Change events in the database."""
    event_files: tuple[dict[str, Any], ...]
    """Where they came from: ``source_file`` (null when not loaded from a file) and
    ``events``, in load order."""
    first: datetime | None
    """First request time (UTC)."""
    last: datetime | None
    """End of the last hour holding a request (UTC)."""
    files: tuple[dict[str, Any], ...]
    """Ingested files: path, sha256, format, bytes, rows_read, accepted, rejected,
    duplicates, ingested_at, mapping, privacy."""
    rejected: tuple[dict[str, Any], ...]
    """Rejected rows per file and reason: source_file, reason, rows, and one example
    (row_number, column, bad_value, raw; raw is redacted in privacy mode)."""
    privacy: bool
    """Any file was ingested in privacy mode (hashed ids, no response text stored)."""
    simulations: tuple[dict[str, Any], ...]
    """For input files made by ``forensics simulate``: scenario, seed, rows, truth file
    (only when a ``truth.json`` beside the file states the file's row count)."""
    signals: tuple[str, ...]
    """Signals the database holds."""
    dimensions: tuple[str, ...]
    """Dimensions requests can be sliced by."""
    packages: dict[str, str]
    """Package -> installed version."""
    python: str
    """Python version and platform."""
    outcomes: tuple[str, ...] = ()
    """Outcome columns: measured, never slices (``wb.roles()``)."""

    @classmethod
    def gather(cls, wb: Workbench) -> Provenance:
        """Read the provenance of ``wb``'s database."""
        counts = wb.counts()
        first, last = queries.time_range(wb.db)
        files = tuple(wb.files().to_dicts()) if counts["ingested_files"] else ()
        rejected = []
        if counts["rejected_rows"]:
            examples: dict[str, dict[str, Any]] = {}
            for row in wb.rejected_by_reason().to_dicts():
                reason = row["reason"]
                if reason not in examples:
                    found = wb.rejected(reason=reason, limit=1).to_dicts()
                    examples[reason] = found[0] if found else {}
                example = examples[reason]
                raw = example.get("raw")
                rejected.append(
                    {
                        **row,
                        "example": {
                            "source_file": example.get("source_file"),
                            "row_number": example.get("row_number"),
                            "column": example.get("column"),
                            "bad_value": example.get("bad_value"),
                            "raw": _clip(raw, RAW_EXAMPLE_CHARS) if raw is not None else None,
                        },
                    }
                )
        return cls(
            database=wb.path,
            gathered_at=datetime.now(UTC),
            requests=counts["requests"],
            events=counts["events"],
            event_files=tuple(queries.event_sources(wb.db).to_dicts()),
            first=first,
            last=last,
            files=files,
            rejected=tuple(rejected),
            privacy=any(bool(f.get("privacy")) for f in files),
            simulations=tuple(s for f in files if (s := simulation_of(f)) is not None),
            signals=tuple(wb.signals()) if counts["requests"] else (),
            dimensions=tuple(d.name for d in wb.dimensions()) if counts["requests"] else (),
            packages=_versions(PACKAGES),
            python=f"{platform.python_version()} ({platform.system()} {platform.machine()})",
            outcomes=tuple(
                wb.roles().filter(pl.col("role") == "outcome")["column"].to_list()
                if counts["requests"]
                else ()
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dictionary (times as ISO-8601 UTC)."""
        return _jsonable(dataclasses.asdict(self))


def _versions(names: Iterable[str]) -> dict[str, str]:
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


# -- the investigation ----------------------------------------------------------------


class Investigation:
    """The findings of an investigation over one database, ready to save as a report.

    Parameters
    ----------
    wb
        The workbench the findings come from (``forensics.open(db)``); its
        provenance is read now.
    title
        The report's title.

    Examples
    --------
    >>> import forensics
    >>> wb = forensics.open(":memory:")
    >>> inv = Investigation(wb, title="Empty")
    >>> _ = inv.add_note("Nothing loaded yet.")
    >>> inv
    <Investigation 'Empty': 0 signatures, 0 views, 1 note, 0 charts>
    >>> '"notes"' in inv.to_json()
    True
    >>> wb.close()

    ``Investigation.default(wb)`` (or ``wb.report()``) builds the default
    report: every signature with its evidence.
    """

    def __init__(self, wb: Workbench, *, title: str = DEFAULT_TITLE) -> None:
        self.wb = wb
        self.title = title
        """The report's title."""
        self.signatures: list[Signature] = []
        """Signatures, strongest first."""
        self.evidence: dict[str, Evidence] = {}
        """Signature id -> its evidence."""
        self.overview: Figure | None = None
        """Every signature's window and every change event on one time axis."""
        self.views: list[View] = []
        """Views pinned from the dashboard (``wb.dashboard(investigation)``)."""
        self.notes: list[Note] = []
        """The investigator's notes."""
        self.charts: list[Figure] = []
        """Other charts added with ``add_chart``."""
        self.search: dict[str, Any] | None = None
        """How the signatures were found: the call and the search parameters."""
        self.provenance = Provenance.gather(wb)
        """The database's inputs and the software, read when the investigation began."""
        self._rendered: dict[tuple[int, str], Any] = {}

    # -- building ---------------------------------------------------------------------

    @classmethod
    def default(
        cls,
        wb: Workbench,
        *,
        title: str | None = None,
        signatures: Sequence[Signature] | None = None,
        params: SeparationParams | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> Investigation:
        """The default investigation of a database: every signature with its evidence.

        Parameters
        ----------
        signatures
            Signatures already found (default: ``wb.signatures(params=params)``,
            computed once here).
        params
            Parameters of the signature search.
        progress
            Called with a short message at each step.

        Raises
        ------
        QueryError
            When the database holds no requests.
        """
        inv = cls(wb, title=title or DEFAULT_TITLE)
        if inv.provenance.requests == 0:
            raise QueryError(
                f"{wb.path} holds no requests, so there is nothing to report; load some with "
                f"`forensics ingest FILE --db {wb.path}`"
            )
        say = progress or (lambda _m: None)
        if signatures is None:
            say("finding signatures")
            signatures = wb.signatures(params=params, progress=progress)
        inv.add_signatures(signatures, params=params, progress=progress)
        return inv

    def add_signatures(
        self,
        signatures: Iterable[Signature],
        *,
        params: SeparationParams | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        """Add signatures with their evidence (timeline, comparison, exposure).

        The overview is redrawn over every signature. ``params`` are the search parameters they were found with (recorded for
        reproduction; default: the defaults).
        """
        from forensics.separation import SeparationParams

        say = progress or (lambda _m: None)
        events = self.wb.events()
        for sig in signatures:
            say(f"gathering the evidence for {sig.id}")
            self.signatures.append(sig)
            self.evidence[sig.id] = _evidence(self.wb, sig, self.provenance)
        used = params or SeparationParams()
        self.search = {
            "call": "wb.signatures()" if params is None else f"wb.signatures(params={used!r})",
            "params": dataclasses.asdict(used),
        }
        if self.signatures:
            self.overview = _overview(self.signatures, events, self.provenance)

    def add_view(self, view: View) -> View:
        """Keep a view pinned from the dashboard (``wb.dashboard(investigation=inv)``)."""
        if not isinstance(view, View):
            raise TypeError(f"add_view takes a forensics.findings.View, not {type(view).__name__}")
        self.views.append(view)
        return view

    def add_note(self, text: str | Note, *, title: str = "") -> Note:
        """Add a note (text, shown escaped, paragraphs split on blank lines)."""
        note = text if isinstance(text, Note) else Note(text=str(text), title=title)
        self.notes.append(note)
        return note

    def add_chart(
        self, chart: Any, *, title: str, calls: Iterable[str] = (), caption: str = ""
    ) -> Figure:
        """Add a chart (Altair chart or Vega-Lite dict) with the calls behind its numbers."""
        figure = (
            chart
            if isinstance(chart, Figure)
            else Figure.of(chart, title=title, calls=calls, caption=caption)
        )
        self.charts.append(figure)
        return figure

    # -- output -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The findings as JSON-friendly data; ``signatures`` as ``forensics signatures --json``."""
        return _jsonable(
            {
                "title": self.title,
                "generated_at": _iso(datetime.now(UTC)),
                "database": self.provenance.database,
                "signatures": [s.to_dict() for s in self.signatures],
                "evidence": {k: e.to_dict() for k, e in self.evidence.items()},
                "overview": self.overview.to_dict() if self.overview else None,
                "views": [v.to_dict() for v in self.views],
                "notes": [n.to_dict() for n in self.notes],
                "charts": [c.to_dict() for c in self.charts],
                "provenance": {**self.provenance.to_dict(), "signature_search": self.search},
            }
        )

    def to_json(self) -> str:
        """``to_dict`` as JSON text."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False)

    def to_html(self) -> str:
        """The report as one self-contained HTML document."""
        body = _render_html(_document(self), self._svg)
        return _HTML_PAGE.format(
            title=html.escape(self.title), css=_CSS + _PAGE_CSS, csp=_CSP, body=body
        )

    def to_markdown(self, assets: str | Path, *, link_base: str | None = None) -> str:
        """The report as Markdown; its charts are written as PNG files into ``assets``.

        ``link_base`` is how the Markdown refers to ``assets`` (default: its name,
        for a folder beside the Markdown file).
        """
        folder = Path(assets)
        folder.mkdir(parents=True, exist_ok=True)
        base = folder.name if link_base is None else link_base

        def image(figure: Figure, number: int) -> str:
            name = f"figure-{number:02d}.png"
            (folder / name).write_bytes(self._png(figure))
            return f"{base}/{name}" if base else name

        return _render_markdown(_document(self), image)

    def save(
        self,
        target: str | Path | IO[str] | IO[bytes],
        *,
        format: Format | None = None,
        assets: str | Path | None = None,
    ) -> Path | None:
        """Write the report to a path or an open file.

        Parameters
        ----------
        target
            A path (its suffix picks the format: .html, .md, .json) or an open
            file (text or binary).
        format
            ``"html"``, ``"md"`` or ``"json"``; default from the suffix, else html.
        assets
            Markdown only: the folder for the PNG charts (default: ``<name>_files``
            beside the file; required for an open file without a name).

        Returns
        -------
        Path | None
            The path written, or None for an open file.
        """
        path = Path(target) if isinstance(target, str | os.PathLike) else None
        fmt = format or (_SUFFIXES.get(path.suffix.lower()) if path else None) or "html"
        if fmt not in FORMATS:
            raise ConfigError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")
        if fmt == "html":
            text = self.to_html()
        elif fmt == "json":
            text = self.to_json() + "\n"
        else:
            named = path or _file_path(target)
            if assets is None and named is None:
                raise ConfigError(
                    "a Markdown report writes its charts as PNG files: pass assets=DIR "
                    "when saving to an open file"
                )
            folder = Path(assets) if assets is not None else _assets_for(named)  # type: ignore[arg-type]
            where = (named or Path.cwd() / "report.md").parent
            link = Path(os.path.relpath(folder.resolve(), where.resolve())).as_posix()
            text = self.to_markdown(folder, link_base=link)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            return path
        _write(target, text)  # type: ignore[arg-type]
        return None

    # -- display ----------------------------------------------------------------------

    def __repr__(self) -> str:
        def n(count: int, what: str) -> str:
            return f"{count} {what}{'' if count == 1 else 's'}"

        return (
            f"<Investigation {self.title!r}: {n(len(self.signatures), 'signature')}, "
            f"{n(len(self.views), 'view')}, {n(len(self.notes), 'note')}, "
            f"{n(len(self.charts), 'chart')}>"
        )

    def _repr_html_(self) -> str:
        body = _render_html(_document(self), self._svg)
        return f"<style>{_CSS}</style>{body}"

    # -- charts, drawn once per investigation ----------------------------------------

    def _svg(self, figure: Figure, number: int) -> str:
        key = (id(figure), "svg")
        if key not in self._rendered:
            self._rendered[key] = (figure, _chart_html(figure, number))
        return str(self._rendered[key][1])

    def _png(self, figure: Figure) -> bytes:
        key = (id(figure), "png")
        if key not in self._rendered:
            self._rendered[key] = (figure, _png(figure.chart))
        return bytes(self._rendered[key][1])


def _file_path(target: Any) -> Path | None:
    name = getattr(target, "name", None)
    return Path(name) if isinstance(name, str) and not name.startswith("<") else None


def _assets_for(path: Path) -> Path:
    return path.with_name(f"{path.stem}_files")


def _write(target: IO[Any], text: str) -> None:
    """Write to a text or a binary file (bytes as UTF-8)."""
    import io

    binary = isinstance(target, io.BufferedIOBase | io.RawIOBase) or "b" in str(
        getattr(target, "mode", "")
    )
    target.write(text.encode("utf-8") if binary else text)


# -- gathering the evidence (calls only; the numbers come from the Workbench) ---------


def _call(wb: Workbench, method: str, *args: Any, **kwargs: Any) -> tuple[Any, str]:
    """Run ``wb.<method>(*args, **kwargs)`` and return its result and the call as text.

    The text is built from the very arguments used, so pasting it reproduces
    the result.
    """
    result = getattr(wb, method)(*args, **kwargs)
    shown = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return result, f"wb.{method}({', '.join(shown)})"


def _iso(t: datetime | None) -> str | None:
    if t is None:
        return None
    t = t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)
    return t.isoformat().replace("+00:00", "Z")


def _evidence(wb: Workbench, sig: Signature, prov: Provenance) -> Evidence:
    from forensics import charts

    predicate = dict(sig.predicate)
    start, end = _iso(sig.start), _iso(sig.end)
    missing: list[str] = []

    timeline, call = _call(wb, "timeline", sig.signal, grain="day", where=predicate)
    timeline_figure = Figure.of(
        charts.timeline_chart(
            timeline.rates,
            signal=sig.signal,
            grain="day",
            events=timeline.events,
            change_points=timeline.change_points,
            highlight=(sig.start, sig.end),
            where=predicate,
            selection=False,
        ),
        title=f"{sig.id}: {sig.signal} in its slice, day by day",
        calls=[call],
        caption=(
            f"The shaded band is {sig.id}'s window; dashed rules are change events, "
            "triangles the change points detected in this series."
        ),
    )

    comparison = None
    top = pl.DataFrame()
    baseline: tuple[str | None, str | None] | None = None
    if prov.first is not None and sig.start > prov.first:
        baseline = (None, start)
    elif sig.end is not None:
        baseline = (end, None)
    if baseline is None:
        missing.append("comparison: the window covers all the data, so there is no baseline")
    else:
        compared, call = _call(wb, "compare", sig.signal, incident=(start, end), baseline=baseline)
        top = compared.head(TOP_SLICES)
        comparison = Figure.of(
            charts.comparison_chart(
                compared,
                signal=sig.signal,
                incident=(sig.start, sig.end),
                baseline=(_parse(baseline[0]), _parse(baseline[1])),
                top=COMPARE_CHART_ROWS,
            ),
            title=f"{sig.id}: what is different about its window, over all requests",
            calls=[call],
            caption=(
                f"Every dimension value's {sig.signal} rate in {sig.id}'s window against "
                "the baseline window; the values that explain the rise come first."
            ),
        )

    exposure = exposure_figure = None
    where = {**predicate, "ts": (start, end)}
    try:
        exposure, call = _call(wb, "exposure", sig.signal, where=where)
    except QueryError as exc:
        missing.append(f"user exposure: {exc}")
    else:
        exposure_figure = Figure.of(
            charts.exposure_chart(exposure, where=predicate),
            title=f"{sig.id}: who is hit",
            calls=[call],
            caption=f"Users in {sig.id}'s slice during its window.",
        )
    return Evidence(
        signature=sig,
        timeline=timeline_figure,
        comparison=comparison,
        top_slices=top,
        exposure=exposure,
        exposure_figure=exposure_figure,
        missing=tuple(missing),
    )


def _parse(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def _overview(signatures: Sequence[Signature], events: pl.DataFrame, prov: Provenance) -> Figure:
    from forensics import charts

    span = (prov.first, prov.last) if prov.first and prov.last else None
    chart = charts.signatures_chart(
        signatures,
        events=events,
        span=span,
        title="When each problem was active, and what changed",
        width=OVERVIEW_WIDTH,
    )
    return Figure.of(
        chart,
        title="Every signature's window and every change event",
        calls=["wb.signatures()", "wb.events()"],
        caption=(
            "One row per signature, coloured by the signal it was found on; dark ends "
            "mark the 95% ranges of onset and end. Dashed rules are change events."
        ),
    )


# -- charts: SVG for HTML, PNG for Markdown --------------------------------------------


def _vl_version() -> str:
    import altair as alt
    import vl_convert

    supported = vl_convert.get_vegalite_versions()
    wanted = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    return wanted if wanted in supported else supported[-1]


def _png(spec: Mapping[str, Any]) -> bytes:
    import vl_convert

    return bytes(vl_convert.vegalite_to_png(dict(spec), vl_version=_vl_version(), scale=PNG_SCALE))


_SVG_NS = "http://www.w3.org/2000/svg"
_XLINK_NS = "http://www.w3.org/1999/xlink"
_SVG_ELEMENTS = frozenset(
    {
        "svg", "g", "path", "rect", "line", "circle", "ellipse", "polygon", "polyline",
        "text", "tspan", "defs", "clipPath", "title", "desc", "linearGradient",
        "radialGradient", "stop", "pattern", "mask", "symbol", "use",
    }
)  # fmt: skip
"""Elements a chart may hold: shapes, text, grouping and paint; no script, style,
foreignObject, image, link or animation."""

_LOCAL_URL = re.compile(r"url\(\s*#([^)\s]+)\s*\)")


class UnsafeSvgError(ValueError):
    """An SVG holds something a report must not carry (script, handler, link out)."""


def safe_svg(svg: str, *, prefix: str) -> str:
    """Rebuild an SVG from an allowlist, its ids prefixed so that several share one page.

    Text and attribute values are re-escaped on output. Raises
    ``UnsafeSvgError`` on an element outside the allowlist, an event-handler
    attribute, a link that is not to an id in the same SVG, or a ``url()``
    that points outside it.

    Examples
    --------
    >>> out = safe_svg('<svg xmlns="http://www.w3.org/2000/svg"><defs><clipPath id="c1">'
    ...     '<rect width="1" height="1"/></clipPath></defs><g clip-path="url(#c1)">'
    ...     '<text>&lt;script&gt;</text></g></svg>', prefix="f2")
    >>> 'id="f2-c1"' in out and 'url(#f2-c1)' in out and '&lt;script&gt;' in out
    True
    >>> safe_svg('<svg xmlns="http://www.w3.org/2000/svg" onload="x()"/>', prefix="f")
    Traceback (most recent call last):
    ...
    forensics.report.UnsafeSvgError: SVG attribute onload is not allowed in a report
    """
    try:
        root = ET.fromstring(svg)
    except ET.ParseError as exc:
        raise UnsafeSvgError(f"chart SVG does not parse: {exc}") from None
    elements = list(root.iter())
    ids = {}
    for element in elements:
        namespace, _, name = element.tag.rpartition("}")
        if namespace.lstrip("{") != _SVG_NS or name not in _SVG_ELEMENTS:
            raise UnsafeSvgError(f"SVG element {element.tag} is not allowed in a report")
        if "id" in element.attrib:
            ids[element.attrib["id"]] = f"{prefix}-{element.attrib['id']}"
    for element in elements:
        for key, value in list(element.attrib.items()):
            local = key.rpartition("}")[2]
            if local.lower().startswith("on"):
                raise UnsafeSvgError(f"SVG attribute {local} is not allowed in a report")
            if local == "id":
                element.set(key, ids[value])
            elif local == "href":
                if not value.startswith("#") or value[1:] not in ids:
                    raise UnsafeSvgError(f"SVG link {value!r} is not allowed in a report")
                element.set(key, f"#{ids[value[1:]]}")
            elif "url(" in value:

                def local_url(m: re.Match[str]) -> str:
                    if m.group(1) not in ids:
                        raise UnsafeSvgError(f"SVG url(#{m.group(1)}) points outside the chart")
                    return f"url(#{ids[m.group(1)]})"

                rewritten = _LOCAL_URL.sub(local_url, value)
                if "url(" in _LOCAL_URL.sub("", rewritten.replace(f"#{prefix}-", "#")):
                    raise UnsafeSvgError(f"SVG {local}={value!r} points outside the chart")
                element.set(key, rewritten)
    ET.register_namespace("", _SVG_NS)
    ET.register_namespace("xlink", _XLINK_NS)
    return ET.tostring(root, encoding="unicode")


def _chart_html(figure: Figure, number: int) -> str:
    """The chart as inline SVG (or, should the SVG not pass ``safe_svg``, a PNG image)."""
    import vl_convert

    label = html.escape(figure.title, quote=True)
    svg = vl_convert.vegalite_to_svg(dict(figure.chart), vl_version=_vl_version())
    try:
        clean = safe_svg(svg, prefix=f"fig{number}")
    except UnsafeSvgError:
        data = base64.b64encode(_png(figure.chart)).decode("ascii")
        return f'<img class="fx-chart" alt="{label}" src="data:image/png;base64,{data}">'
    return clean.replace("<svg ", f'<svg role="img" aria-label="{label}" ', 1)


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


_Block = _Heading | _Para | _Table | _Chart | _Code | _Facts | _Note | _Section


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
    if inv.notes:
        doc.append(_Heading(2, "Notes", "notes"))
        for note in inv.notes:
            doc.append(_Note(note.title, note.text, f"written {_time(note.created_at)}"))
    if inv.overview is not None:
        doc.append(_Heading(2, "Timeline", "timeline"))
        doc.append(_Chart(inv.overview, next(counter)))
    for sig in inv.signatures:
        doc += _signature_section(sig, inv.evidence.get(sig.id), counter)
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
                f"The signature search separated {n} distinct problem{'s' if n != 1 else ''}. "
                "Each is a slice of the traffic, a time window and the symptoms that rose in "
                "it, strongest first; every rate comes with its 95% interval and every time "
                "is UTC.",
            ),
            "lead",
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
                f"{s.users:,}",
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
                f"{sig.requests:,} requests from {sig.users:,} users, and {excess} more "
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
        ("users", f"{sig.users:,}", "distinct users among them"),
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
                        str(e.get("kind") or ""),
                        str(e.get("description") or ""),
                        str(e.get("scope") or ""),
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
    for reason in ev.missing:
        doc.append(_Para((f"Not shown: {reason}",), "muted"))
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
    doc.append(
        _Para(
            (
                f"{len(files)} input file{'s' if len(files) != 1 else ''}: {read:,} rows read = "
                f"{accepted:,} accepted + {rejected:,} rejected + {duplicates:,} exact "
                "duplicates skipped. Rejected rows are kept in the rejected_rows table "
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


# -- formatting -----------------------------------------------------------------------


def _anchor(text: str) -> str:
    """An id-safe token for an anchor.

    >>> _anchor('S1"><x')
    'S1---x'
    """
    return re.sub(r"[^A-Za-z0-9_-]", "-", text)


def _sh(text: str) -> str:
    """Quote for a POSIX shell when needed.

    >>> _sh("a b"), _sh("plain/path.db")
    ("'a b'", 'plain/path.db')
    """
    import shlex

    return shlex.quote(text)


def _clip(value: Any, limit: int) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not (isinstance(x, float) and math.isnan(x))


def _num(x: Any, spec: str) -> str:
    return format(x, spec) if _finite(x) else "–"


def _pct_number(x: float) -> str:
    v = 100 * x
    if v == 0:
        return "0"
    if abs(v) >= 1:
        return f"{v:.2f}"
    if abs(v) >= 0.01:
        return f"{v:.3f}"
    return f"{v:.2g}"


def _pct(x: Any, digits: int | None = None) -> str:
    """A rate in percent, with enough digits for small ones.

    >>> _pct(0.0585), _pct(0.00042), _pct(2e-6), _pct(None), _pct(0.5, 0)
    ('5.85%', '0.042%', '0.0002%', '–', '50%')
    """
    if not _finite(x):
        return "–"
    if digits is not None:
        return f"{100 * x:.{digits}f}%"
    return f"{_pct_number(x)}%"


def _rate(rate: Any, low: Any, high: Any) -> str:
    """``5.85% [5.36, 6.39]``.

    >>> _rate(0.0585, 0.0536, 0.0639)
    '5.85% [5.36, 6.39]'
    """
    if not _finite(rate):
        return "–"
    if not (_finite(low) and _finite(high)):
        return _pct(rate)
    return f"{_pct(rate)} [{_pct_number(low)}, {_pct_number(high)}]"


def _pp(diff: Any, low: Any, high: Any) -> str:
    """A difference of rates in percentage points with its interval.

    >>> _pp(0.0585, 0.0536, 0.0639)
    '+5.85 pp [+5.36, +6.39]'
    """
    if not _finite(diff):
        return "–"

    def signed(x: float) -> str:
        return ("+" if x > 0 else "−" if x < 0 else "") + _pct_number(abs(x))

    if not (_finite(low) and _finite(high)):
        return f"{signed(diff)} pp"
    return f"{signed(diff)} pp [{signed(low)}, {signed(high)}]"


def _ratio(x: Any, low: Any, high: Any) -> str:
    """``12.3 [9.8, 15.4]``."""
    if not _finite(x):
        return "–"
    return f"{x:.3g} [{_num(low, '.3g')}, {_num(high, '.3g')}]"


def _hours(h: Any) -> str:
    return f"{h:+.0f}" if _finite(h) else "–"


def _time(t: Any) -> str:
    """UTC, ISO-8601 to the minute.

    >>> _time(datetime(2025, 8, 25, 16, 0, tzinfo=UTC))
    '2025-08-25 16:00Z'
    """
    if t is None:
        return "–"
    if isinstance(t, str):
        t = datetime.fromisoformat(t.replace("Z", "+00:00"))
    t = t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)
    return t.strftime("%Y-%m-%d %H:%MZ")


def _range(low: datetime, high: datetime) -> str:
    """A 95% range of times, as short as it can be said.

    >>> t = datetime(2025, 8, 25, 16, tzinfo=UTC)
    >>> _range(t, t), _range(t, t.replace(hour=18))
    ('2025-08-25 16:00Z (to the hour)', '2025-08-25 16:00–18:00Z')
    >>> _range(t, t.replace(day=26))
    '2025-08-25 16:00Z – 2025-08-26 16:00Z'
    """
    if low == high:
        return f"{_time(low)} (to the hour)"
    a, b = _time(low), _time(high)
    if a[:10] == b[:10]:
        return f"{a[:-1]}–{b[11:]}"
    return f"{a} – {b}"


def _window_text(start: datetime, end: datetime | None) -> str:
    return f"{_time(start)} → {_time(end) if end else 'still active'}"


def _when_range(first: datetime | None, last: datetime | None) -> str:
    if first is None or last is None:
        return "no time range"
    return f"{_time(first)} → {_time(last)}"


def _jsonable(value: Any) -> Any:
    """Times as ISO-8601 UTC, NaN as null, tuples as lists, recursively."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


# -- HTML -----------------------------------------------------------------------------


def _e(text: Any) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def _inline_html(span: _Inline) -> str:
    if isinstance(span, str):
        return _e(span).replace("\n", "<br>")
    if span.style == "code":
        return f"<code>{_e(span.text)}</code>"
    if span.style == "link":
        return f'<a href="#{_e(span.href)}">{_e(span.text)}</a>'
    return f"<strong>{_e(span.text)}</strong>"


def _render_html(blocks: Sequence[_Block], chart: Callable[[Figure, int], str]) -> str:
    out: list[str] = []
    toc: list[str] = []
    title_done = False
    for block in blocks:
        if isinstance(block, _Heading):
            tag = f"h{block.level}"
            out.append(f'<{tag} id="{_e(block.anchor)}">{_e(block.text)}</{tag}>')
            if block.toc and block.level == 2:
                toc.append(f'<li><a href="#{_e(block.anchor)}">{_e(block.text)}</a></li>')
            elif block.toc:
                toc.append(
                    f'<li class="fx-sub"><a href="#{_e(block.anchor)}">{_e(block.text)}</a></li>'
                )
        elif isinstance(block, _Para):
            inner = "".join(_inline_html(s) for s in block.spans)
            out.append(f'<p class="fx-{block.kind}">{inner}</p>')
            if block.kind == "muted" and not title_done:
                out.append("<!--toc-->")
                title_done = True
        elif isinstance(block, _Table):
            out.append(_table_html(block))
        elif isinstance(block, _Chart):
            fig = block.figure
            calls = ""
            if fig.calls:
                calls = (
                    '<div class="fx-calls"><span>reproduce</span><pre><code>'
                    + _e("\n".join(fig.calls))
                    + "</code></pre></div>"
                )
            caption = f" {_e(fig.caption)}" if fig.caption else ""
            out.append(
                f'<figure id="figure-{block.number}"><div class="fx-chart-box">'
                f"{chart(fig, block.number)}</div><figcaption><strong>Figure "
                f"{block.number}.</strong> {_e(fig.title)}.{caption}</figcaption>{calls}</figure>"
            )
        elif isinstance(block, _Code):
            label = f"<span>{_e(block.label)}</span>" if block.label else ""
            out.append(
                f'<div class="fx-calls">{label}<pre><code>{_e(block.text)}</code></pre></div>'
            )
        elif isinstance(block, _Facts):
            items = "".join(
                f'<div class="fx-fact"><span class="fx-fact-label">{_e(label)}</span>'
                f'<span class="fx-fact-value">{_e(value)}</span>'
                f'<span class="fx-fact-detail">{_e(detail)}</span></div>'
                for label, value, detail in block.items
            )
            out.append(f'<div class="fx-facts">{items}</div>')
        elif isinstance(block, _Note):
            paragraphs = "".join(
                f"<p>{_e(p)}</p>" for p in re.split(r"\n\s*\n", block.text.strip()) if p
            )
            head = f"<strong>{_e(block.title)}</strong>" if block.title else ""
            out.append(
                f'<aside class="fx-note">{head}{paragraphs}'
                f'<span class="fx-note-meta">{_e(block.meta)}</span></aside>'
            )
        elif isinstance(block, _Section):
            out.append('<section class="fx-section">' if block.start else "</section>")
    nav = (
        f'<nav class="fx-toc" aria-label="Contents"><h2>Contents</h2><ol>{"".join(toc)}</ol></nav>'
    )
    body = "\n".join(out).replace("<!--toc-->", nav, 1)
    return f'<div class="fx-report">{body}</div>'


_ALIGN_CLASS = {"l": "", "r": "num", "n": "nowrap"}


def _table_html(table: _Table) -> str:
    align = table.align.ljust(len(table.header), "l")
    head = "".join(
        f'<th class="{_ALIGN_CLASS.get(a, "")}">{_e(h)}</th>'
        for h, a in zip(table.header, align, strict=False)
    )
    rows = "".join(
        "<tr>"
        + "".join(
            f'<td class="{_ALIGN_CLASS.get(a, "")}">{_inline_html(c)}</td>'
            for c, a in zip(row, align, strict=False)
        )
        + "</tr>"
        for row in table.rows
    )
    caption = f"<caption>{_e(table.caption)}</caption>" if table.caption else ""
    compact = " fx-compact" if table.compact else ""
    return (
        f'<div class="fx-table{compact}"><table>{caption}<thead><tr>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table></div>"
    )


_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "font-src 'none'; script-src 'none'; base-uri 'none'; form-action 'none'"
)
"""The browser may load nothing and run nothing: the report is one file."""

_HTML_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="forensics">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
{body}
</body>
</html>
"""

_CSS = """
.fx-report{--fx-ink:#1c1e21;--fx-muted:#5f6670;--fx-rule:#e3e5e8;--fx-soft:#f6f7f9;
  --fx-accent:#2f5d8a;color:var(--fx-ink);
  font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
  max-width:1120px;margin:0 auto;padding:0 40px;box-sizing:border-box}
.fx-report h1{font-size:30px;line-height:1.2;margin:40px 0 6px;letter-spacing:-.01em}
.fx-report h2{font-size:22px;line-height:1.3;margin:48px 0 12px;padding-bottom:6px;
  border-bottom:1px solid var(--fx-rule)}
.fx-report h3{font-size:16px;margin:28px 0 8px;color:#2b2f36}
.fx-report p{margin:8px 0 12px;max-width:78ch}
.fx-report .fx-lead{font-size:16.5px;max-width:none}
.fx-report .fx-muted{color:var(--fx-muted);font-size:13px}
.fx-report a{color:var(--fx-accent);text-decoration:none}
.fx-report a:hover{text-decoration:underline}
.fx-report code,.fx-report pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,
  "DejaVu Sans Mono",monospace;font-size:12px}
.fx-report td code{word-break:break-all}
.fx-report .fx-table{overflow-x:auto;margin:10px 0 22px}
.fx-report table{border-collapse:collapse;width:100%;font-size:13px;
  font-variant-numeric:tabular-nums}
.fx-report caption{caption-side:bottom;text-align:left;color:var(--fx-muted);font-size:12px;
  padding-top:6px}
.fx-report th{text-align:left;font-weight:600;padding:7px 9px;background:var(--fx-soft);
  border-bottom:1px solid #cfd3d8;vertical-align:bottom}
.fx-report td{padding:6px 9px;border-bottom:1px solid var(--fx-rule);vertical-align:top}
.fx-report .num{text-align:right;white-space:nowrap}
.fx-report .nowrap{white-space:nowrap}
.fx-report .fx-compact table{width:auto;min-width:50%}
.fx-report tbody tr:hover{background:#fafbfc}
.fx-report .fx-toc{background:var(--fx-soft);border-radius:10px;padding:14px 24px 16px;
  margin:20px 0 8px}
.fx-report .fx-toc h2{font-size:13px;text-transform:uppercase;letter-spacing:.06em;
  color:var(--fx-muted);border:0;margin:0 0 6px;padding:0}
.fx-report .fx-toc ol{margin:0;padding-left:20px;columns:2;column-gap:40px}
.fx-report .fx-toc li{margin:2px 0;break-inside:avoid}
.fx-report .fx-toc li.fx-sub{list-style:none;margin-left:14px;font-size:14px}
.fx-report figure{margin:14px 0 26px;break-inside:avoid}
.fx-report .fx-chart-box{overflow-x:auto}
.fx-report figure svg,.fx-report figure img{display:block;max-width:100%;height:auto}
.fx-report figcaption{font-size:13px;color:var(--fx-muted);margin-top:6px;max-width:90ch}
.fx-report figcaption strong{color:var(--fx-ink)}
.fx-report .fx-calls{margin:6px 0 0}
.fx-report .fx-calls>span{display:inline-block;font-size:11px;text-transform:uppercase;
  letter-spacing:.06em;color:var(--fx-muted);margin-bottom:2px}
.fx-report .fx-calls pre{margin:0;background:var(--fx-soft);border:1px solid var(--fx-rule);
  border-radius:6px;padding:8px 10px;white-space:pre-wrap;word-break:break-word}
.fx-report .fx-facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));
  gap:10px;margin:14px 0 18px}
.fx-report .fx-fact{border:1px solid var(--fx-rule);border-radius:8px;padding:8px 12px}
.fx-report .fx-fact span{display:block}
.fx-report .fx-fact-label{font-size:11px;text-transform:uppercase;letter-spacing:.05em;
  color:var(--fx-muted)}
.fx-report .fx-fact-value{font-size:16px;font-weight:600;font-variant-numeric:tabular-nums;
  margin:2px 0}
.fx-report .fx-fact-detail{font-size:12px;color:var(--fx-muted)}
.fx-report .fx-note{border-left:4px solid #e0b33a;background:#fffaeb;border-radius:0 8px 8px 0;
  padding:10px 16px;margin:12px 0}
.fx-report .fx-note p{margin:4px 0}
.fx-report .fx-note-meta{display:block;font-size:12px;color:var(--fx-muted);margin-top:4px}
"""

_PAGE_CSS = """
html{background:#fff}body{margin:0 0 64px}
@media (max-width:700px){.fx-report{padding:0 16px}.fx-report .fx-toc ol{columns:1}}
@media print{
  @page{size:A4;margin:14mm 12mm}
  body{margin:0}
  .fx-report{max-width:none;padding:0;font-size:10.5pt}
  .fx-report h1{margin-top:0}
  .fx-report .fx-section{break-before:page}
  .fx-report h2,.fx-report h3{break-after:avoid}
  .fx-report figure,.fx-report tr,.fx-report .fx-facts,.fx-report .fx-note{break-inside:avoid}
  .fx-report thead{display:table-header-group}
  .fx-report .fx-table,.fx-report .fx-chart-box{overflow:visible}
  .fx-report a{color:inherit}
  .fx-report tbody tr:hover{background:none}
  .fx-report .fx-calls pre{background:none}
}
"""


# -- Markdown -------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
_MD_LEADING = re.compile(r"^(\s*)([#+=>-]|\d+[.)])")


def _md(text: Any) -> str:
    r"""Text that Markdown shows as typed, on one line.

    HTML is escaped; emphasis, links, table pipes and line-start markers are disarmed.

    >>> _md('a|b <img src=x> *c*')
    'a\\|b &lt;img src=x&gt; \\*c\\*'
    """
    escaped = html.escape("" if text is None else str(text), quote=False)
    return _MD_SPECIAL.sub(r"\\\1", escaped).replace("\r", " ").replace("\n", " ")


def _md_block(text: str) -> str:
    r"""Markdown text that starts a block: a leading #, list or quote marker disarmed.

    >>> _md_block("# not a heading"), _md_block("1. not a list"), _md_block("- nor this")
    ('\\# not a heading', '1\\. not a list', '\\- nor this')
    """
    return _MD_LEADING.sub(_disarm, text)


def _disarm(m: re.Match[str]) -> str:
    marker = m.group(2)
    if marker[0].isdigit():
        return f"{m.group(1)}{marker[:-1]}\\{marker[-1]}"
    return f"{m.group(1)}\\{marker}"


def _md_code(text: str) -> str:
    """Inline code that survives any backticks inside it."""
    ticks = max((len(m) for m in re.findall(r"`+", text)), default=0) + 1
    fence = "`" * ticks
    body = text.replace("\n", " ").replace("|", "\\|")
    return f"{fence} {body} {fence}"


def _inline_md(span: _Inline) -> str:
    if isinstance(span, str):
        return _md(span)
    if span.style == "code":
        return _md_code(span.text) if span.text else ""
    if span.style == "link":
        return f"[{_md(span.text)}](#{_anchor(span.href)})"
    return f"**{_md(span.text)}**"


def _render_markdown(blocks: Sequence[_Block], image: Callable[[Figure, int], str]) -> str:
    out: list[str] = []
    toc: list[str] = []
    title_done = False
    for block in blocks:
        if isinstance(block, _Heading):
            out.append(f'{"#" * block.level} <a id="{_e(block.anchor)}"></a>{_md(block.text)}')
            if block.toc:
                indent = "" if block.level == 2 else "   "
                toc.append(f"{indent}- [{_md(block.text)}](#{_e(block.anchor)})")
        elif isinstance(block, _Para):
            text = "".join(_inline_md(s) for s in block.spans)
            out.append(f"*{text}*" if block.kind == "muted" else _md_block(text))
            if not title_done and block.kind == "muted":
                out.append("<!--toc-->")
                title_done = True
        elif isinstance(block, _Table):
            out.append(_table_md(block))
        elif isinstance(block, _Chart):
            fig = block.figure
            path = image(fig, block.number)
            out.append(f"![Figure {block.number}. {_md(fig.title)}]({path})")
            caption = f" {_md(fig.caption)}" if fig.caption else ""
            out.append(f"**Figure {block.number}.** {_md(fig.title)}.{caption}")
            if fig.calls:
                out.append(_fence("\n".join(fig.calls), "python"))
        elif isinstance(block, _Code):
            out.append(_fence(block.text, "python" if block.label == "python" else "sh"))
        elif isinstance(block, _Facts):
            out.append(
                "\n".join(
                    f"- **{_md(label)}**: {_md(value)} ({_md(detail)})"
                    for label, value, detail in block.items
                )
            )
        elif isinstance(block, _Note):
            lines = [f"> **{_md(block.title)}**", ">"] if block.title else []
            for p in re.split(r"\n\s*\n", block.text.strip()):
                if p:
                    lines += [f"> {_md_block(_md(p))}", ">"]
            lines.append(f"> *{_md(block.meta)}*")
            out.append("\n".join(lines))
    body = "\n\n".join(out)
    return body.replace("<!--toc-->", "**Contents**\n\n" + "\n".join(toc), 1) + "\n"


def _fence(text: str, lang: str) -> str:
    ticks = max((len(m) for m in re.findall(r"`{3,}", text)), default=2) + 1
    fence = "`" * ticks
    return f"{fence}{lang}\n{text}\n{fence}"


def _table_md(table: _Table) -> str:
    align = table.align.ljust(len(table.header), "l")
    lines = [
        "| " + " | ".join(_md(h) for h in table.header) + " |",
        "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|",
    ]
    for row in table.rows:
        cells = (
            "<br>".join(_md(line) for line in c.split("\n"))
            if isinstance(c, str)
            else _inline_md(c)
            for c in row
        )
        lines.append("| " + " | ".join(cells) + " |")
    if table.caption:
        lines.append("")
        lines.append(f"*{_md(table.caption)}*")
    return "\n".join(lines)
