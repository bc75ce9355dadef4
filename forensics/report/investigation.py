"""The Investigation: findings collected over one database, saved as HTML, Markdown or JSON."""

from __future__ import annotations

import dataclasses
import html
import json
import os
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from forensics import queries
from forensics.errors import ConfigError, QueryError
from forensics.findings import Note, View
from forensics.report.document import (
    _document,
)
from forensics.report.evidence import (
    Evidence,
    _evidence,
    _overview,
    numbered_events,
)
from forensics.report.figure import Figure
from forensics.report.formatting import (
    _iso,
    _jsonable,
)
from forensics.report.provenance import Provenance
from forensics.report.render_html import _CSP, _CSS, _HTML_PAGE, _PAGE_CSS, _render_html
from forensics.report.render_markdown import _render_markdown
from forensics.report.svg import _chart_html, _png
from forensics.rootcause import RootCause, group_root_causes
from forensics.watch.alerts import alert_rows

if TYPE_CHECKING:
    from forensics.explain import Explanation
    from forensics.report.source import Source
    from forensics.separation import SeparationParams
    from forensics.signature import Signature


Format = Literal["html", "md", "json"]

FORMATS: tuple[str, ...] = ("html", "md", "json")
"""Formats ``Investigation.save`` writes."""

_SUFFIXES = {".html": "html", ".htm": "html", ".md": "md", ".markdown": "md", ".json": "json"}

DEFAULT_TITLE = "Incident investigation"
"""Title of a report when none is given."""


# -- the investigation ----------------------------------------------------------------


class Investigation:
    """The findings of an investigation over one database, ready to save as a report.

    Parameters
    ----------
    wb
        What the findings come from: the workbench (``forensics.open(db)``), or
        anything with the open database as ``db`` (``report.source.Source``);
        its provenance is read now.
    title
        The report's title.

    Examples
    --------
    >>> import forensics
    >>> wb = forensics.open(":memory:")
    >>> inv = Investigation(wb, title="Empty")
    >>> _ = inv.add_note("Nothing loaded yet.")
    >>> inv
    <Investigation 'Empty': 0 signatures, 0 views, 1 note, 0 charts; 0 root causes>
    >>> '"notes"' in inv.to_json()
    True
    >>> wb.close()

    ``Investigation.default(wb)`` (or ``wb.report()``) builds the default
    report: every signature with its evidence.
    """

    def __init__(self, wb: Source, *, title: str = DEFAULT_TITLE) -> None:
        self.wb = wb
        """What the findings come from, as given (a ``Workbench``, or anything with ``db``)."""
        self.db = wb.db
        """The database the findings come from."""
        self.title = title
        """The report's title."""
        self.signatures: list[Signature] = []
        """Signatures, strongest first."""
        self.evidence: dict[str, Evidence] = {}
        """Signature id -> its evidence."""
        self.root_causes: list[RootCause] = []
        """The signatures grouped by the change that explains them (``forensics.rootcause``)."""
        self.events = queries.event_rows(self.db)
        """The change events, in time order (``wb.events()``)."""
        self.alerts = alert_rows(self.db)
        """The alerts ``forensics watch`` raised on this database, newest first (``wb.alerts()``)."""
        self.overview: Figure | None = None
        """Every signature's window and every change event on one time axis."""
        self.views: list[View] = []
        """Views pinned from the dashboard (``wb.dashboard(investigation)``)."""
        self.explanations: list[Explanation] = []
        """Moments explained (``wb.explain``, or the dashboard's explanation panel)."""
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
        wb: Source,
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
                f"{inv.db.path} holds no requests, so there is nothing to report; load some with "
                f"`forensics ingest FILE --db {inv.db.path}`"
            )
        say = progress or (lambda _m: None)
        if signatures is None:
            say("finding signatures")
            from forensics.separation import find_signatures

            # A Workbench's own search: on the cache of a Spark table it counts a
            # signature's numbers on every request in Spark (or says what to set).
            search = getattr(wb, "signatures", None)
            if callable(search):
                signatures = search(params=params, progress=progress)
            else:
                signatures = find_signatures(inv.db, params=params, progress=progress)
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

        The root causes are grouped again and the overview redrawn over every
        signature. ``params`` are the search parameters they were found with
        (recorded for reproduction; default: the defaults).
        """
        from forensics.separation import SeparationParams

        say = progress or (lambda _m: None)
        events = self.events
        for sig in signatures:
            say(f"gathering the evidence for {sig.id}")
            self.signatures.append(sig)
            self.evidence[sig.id] = _evidence(self.db, sig, self.provenance)
        used = params or SeparationParams()
        self.search = {
            "call": "wb.signatures()" if params is None else f"wb.signatures(params={used!r})",
            "params": dataclasses.asdict(used),
        }
        self.root_causes = group_root_causes(self.signatures, events)
        if self.signatures:
            self.overview = _overview(self.signatures, events, self.provenance)

    def add_view(self, view: View) -> View:
        """Keep a view pinned from the dashboard (``wb.dashboard(investigation=inv)``)."""
        if not isinstance(view, View):
            raise TypeError(f"add_view takes a forensics.findings.View, not {type(view).__name__}")
        self.views.append(view)
        return view

    def add_explanation(self, explanation: Explanation) -> Explanation:
        """Add the explanation of a moment (``wb.explain(...)``): a section like a signature's.

        The section holds the moment, the baseline it was compared with and the
        ranked candidates with their rates and 95% intervals, and the call that
        explains it again. The dashboard's explanation panel adds here too.
        """
        from forensics.explain import Explanation

        if not isinstance(explanation, Explanation):
            raise TypeError(
                "add_explanation takes what wb.explain(...) returns (forensics.explain."
                f"Explanation), not {type(explanation).__name__}"
            )
        self.explanations.append(explanation)
        return explanation

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
                "root_causes": [c.to_dict() for c in self.root_causes],
                "signatures": [s.to_dict() for s in self.signatures],
                "events": numbered_events(self.events).to_dicts(),
                "alerts": self.alerts.to_dicts(),
                "evidence": {k: e.to_dict() for k, e in self.evidence.items()},
                "overview": self.overview.to_dict() if self.overview else None,
                "views": [v.to_dict() for v in self.views],
                "explanations": [_explanation_dict(e) for e in self.explanations],
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
            f"{n(len(self.charts), 'chart')}; {n(len(self.root_causes), 'root cause')}>"
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


def _explanation_dict(e: Explanation) -> dict[str, Any]:
    """``Explanation.to_dict()`` (the ``forensics explain --json`` contract) and how it was made."""
    out = e.to_dict()
    for entry, c in zip(out["candidates"], e.items, strict=True):
        entry.update(role=c.role, requests=c.requests, signal_count=c.signal_count)
    return {
        **out,
        "grain_seconds": e.grain.total_seconds(),
        "baseline_buckets": e.baseline_buckets,
        "factor": e.factor,
        "found": e.found,
        "within": [_iso(t) for t in e.within] if e.within else None,
        "where": e.where,
        "call": e.call(),
    }


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
