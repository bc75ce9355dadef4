"""The separate problems: the signature search, their root causes, the signature chosen.

The search runs in the background when asked; the signatures found are
grouped into root causes (``rootcause.group_root_causes``: one change event at
their onsets, agreeing symptoms, a shared slice value), listed above them with
the evidence; a chosen signature is reproduced exactly (its thresholds,
window, context, symptoms).
"""

from __future__ import annotations

import asyncio
import html
import json
import threading
import time
from concurrent.futures import Future
from typing import Any

import ipywidgets as widgets

from forensics import charts
from forensics.db import Database
from forensics.errors import ForensicsError
from forensics.queries import event_rows
from forensics.rootcause import RootCause, group_root_causes, headline
from forensics.separation import find_signatures
from forensics.signature import Signature, describe_predicate
from forensics.stats import format_p_value

from .alerts import alerts_html
from .data import signature_text
from .panel import Actions, Panel
from .state import error, pct

__all__ = ["PROGRESS_EVERY_S", "Signatures"]

PROGRESS_EVERY_S = 1.0
"""A running signature search redraws its progress line this often (seconds)."""


class _Progress:
    """A running search in an HTML widget: seconds so far and its latest message.

    Called with each message the search reports; a timer thread also redraws
    it every ``PROGRESS_EVERY_S`` so that a long step without messages still
    shows the search is alive (widget changes reach the browser from any
    thread).
    """

    def __init__(self, view: widgets.HTML) -> None:
        self.view = view
        self.message = "preparing the workspace"
        self.started = time.perf_counter()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="forensics-progress", daemon=True)

    def __call__(self, message: str) -> None:
        self.message = message
        self._draw()

    def _draw(self) -> None:
        seconds = time.perf_counter() - self.started
        self.view.value = (
            f"<span class='fx-muted forensics-searching'>searching… {seconds:.0f} s · "
            f"{html.escape(self.message)}</span>"
        )

    def _tick(self) -> None:
        while not self._stop.wait(PROGRESS_EVERY_S):
            self._draw()

    def __enter__(self) -> _Progress:
        self._draw()
        self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._ticker.join()


class Signatures(Panel):
    """Find the signatures, list them, choose one; the chosen one's symptoms."""

    name = "signatures"

    def __init__(self, data: Any, actions: Actions) -> None:
        super().__init__(data, actions)
        self.find_button = widgets.Button(
            description="find signatures", icon="search", layout=widgets.Layout(width="160px")
        )
        self.table = widgets.HTML(
            "<span class='fx-muted'>The search takes seconds; press the button.</span>"
        )
        self.picker = widgets.Select(options=[], rows=6, layout=widgets.Layout(width="100%"))
        self.picker.add_class("forensics-signature-picker")
        self.symptoms = widgets.HTML()
        """The chosen signature: its slice, thresholds, window and symptoms."""
        self.search: Future[list[Signature]] | None = None
        """The running (or last) background search."""
        self.causes: list[RootCause] = []
        """The root causes of the signatures found (strongest first)."""
        self.find_button.on_click(lambda _b: self.start_search())
        self.picker.observe(self._on_pick, names="value")
        self.alerts = widgets.HTML(alerts_html(data.db))
        """The watch's problems (``forensics watch``), when the database is watched."""
        self.widget = widgets.VBox(
            [self.alerts, self.find_button, self.table, self.picker, self.symptoms]
        )

    # -- the search -----------------------------------------------------------------------

    def find(self) -> list[Signature]:
        """Search here (returns when done; the panel shows its progress meanwhile).

        The dashboard is then updated: the comparison's baseline leaves the
        signatures' rows out.
        """
        found = self.search_and_show(self.data.db)
        self.actions.changed()
        return found

    def start_search(self) -> Future[list[Signature]]:
        """Start the search in a background thread on a connection of its own; its future.

        The other panels keep updating on the dashboard's connection while it
        runs; when it ends the dashboard updates on the kernel's event loop (the
        thread never touches the dashboard's connection). An in-memory database
        has no second connection: the search runs here. A search already
        running is not started again.
        """
        if self.search is not None and not self.search.done():
            return self.search
        future: Future[list[Signature]] = Future()
        self.search = future
        db = self.data.db
        if db.path == ":memory:":
            future.set_result(self.find())
            return future

        try:  # the kernel's loop, to update the dashboard from it when the search ends
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None  # no loop (a script): the next change of a control updates it

        def search() -> None:
            try:
                own = Database(db.path, read_only=db.read_only, config=db.config)
                try:
                    found = self.search_and_show(own)
                finally:
                    own.close()
                if loop is not None and not loop.is_closed():
                    loop.call_soon_threadsafe(self.actions.changed)
                future.set_result(found)
            except BaseException as exc:
                self._searching(False)
                self.table.value = error(f"the search failed: {exc!r}")
                future.set_exception(exc)

        self._searching(True)
        threading.Thread(target=search, name="forensics-signatures", daemon=True).start()
        return future

    def _searching(self, busy: bool) -> None:
        """The button while a search runs: disabled, with a spinning icon."""
        self.find_button.disabled = busy
        self.find_button.icon = "spinner spin" if busy else "search"
        self.find_button.description = "searching…" if busy else "find signatures"

    def search_and_show(self, db: Database) -> list[Signature]:
        """Run the search on ``db`` and list what it found."""
        self._searching(True)
        start = time.perf_counter()
        try:
            with _Progress(self.table) as progress:
                found = find_signatures(db, progress=progress, everything=self.data.everything())
        except ForensicsError as exc:
            self.table.value = error(str(exc))
            return []
        finally:
            self._searching(False)
        self.causes = group_root_causes(found, event_rows(db))
        self.data.signatures = list(found)
        self.table.value = self._causes() + self._table(time.perf_counter() - start)
        self.set_options()
        return self.data.signatures

    def set_options(self) -> None:
        """The picker lists the signatures found (none chosen)."""
        options: list[tuple[str, str | None]] = [("(none: keep the current filters)", None)]
        options += [(signature_text(s), s.id) for s in self.data.signatures]
        self.picker.unobserve(self._on_pick, names="value")
        self.picker.options = options
        self.picker.value = None
        self.picker.observe(self._on_pick, names="value")

    def _causes(self) -> str:
        """The root causes: the headline, then each with its signatures and why."""
        if not self.causes:
            return ""
        items = []
        for c in self.causes:
            shared = charts.describe_where(c.shared) if c.shared else "no value all share"
            why = "".join(f"<li>{html.escape(w)}</li>" for w in c.why)
            items.append(
                f"<li class='forensics-cause'><b>{html.escape(c.id)}</b> "
                f"{html.escape(c.title)}: {html.escape(', '.join(c.signatures))} · "
                f"shared: {html.escape(shared)}"
                f"<details><summary>why</summary><ul>{why}</ul></details></li>"
            )
        return (
            f"<div class='fx-section forensics-root-causes'><b>"
            f"{html.escape(headline(self.causes))}</b><ul>{''.join(items)}</ul></div>"
        )

    def _table(self, seconds: float) -> str:
        found = self.data.signatures
        if not found:
            return (
                f"<span class='fx-muted'>No significant signature found ({seconds:.1f} s).</span>"
            )
        rows = []
        for s in found:
            end = "still active" if s.end is None else f"{s.end:%Y-%m-%d %H:%M}"
            rows.append(
                "<tr>"
                f"<td><b>{html.escape(s.id)}</b></td>"
                f"<td>{html.escape(describe_predicate(s.predicate, s.edge_ranges))}</td>"
                f"<td>{s.start:%Y-%m-%d %H:%M} → {html.escape(end)}</td>"
                f"<td>{html.escape(', '.join(s.signals))}</td>"
                f"<td class='num'>{pct(s.excess_rate)} [{pct(s.ci[0])} – {pct(s.ci[1])}]</td>"
                f"<td class='num'>{s.requests:,}</td>"
                f"<td class='num'>{'n/a' if s.users is None else f'{s.users:,}'}</td>"
                f"<td class='num'>{format_p_value(s.p_value)}</td></tr>"
            )
        return (
            f"<div class='fx-muted'>{len(found)} signatures in {seconds:.1f} s; choose one "
            "below: the filters take its exact slice, the selection its window.</div>"
            "<table class='fx-table'><tr><th>id</th><th>slice</th><th>window (UTC)</th>"
            "<th>symptoms</th><th>excess rate [95% CI]</th><th>requests</th><th>users</th>"
            "<th>p (adjusted)</th></tr>" + "".join(rows) + "</table>"
        )

    # -- the chosen one -------------------------------------------------------------------

    def _on_pick(self, change: Any) -> None:
        self.actions.choose_signature(change["new"])

    def describe(self, signature: Signature | None) -> None:
        """Show a signature's slice, window, baseline and symptoms (None: clear)."""
        if signature is None:
            self.symptoms.value = ""
            return
        s = signature
        end = "still active" if s.end is None else f"{s.end:%Y-%m-%d %H:%M}"
        rows = "".join(
            "<tr>"
            f"<td>{html.escape(r.signal)}</td>"
            f"<td class='num'>{pct(r.rate_inside)} [{pct(r.ci_inside[0])} – {pct(r.ci_inside[1])}]</td>"
            f"<td class='num'>{r.k_inside:,} / {r.n_inside:,}</td>"
            f"<td class='num'>{pct(r.rate_baseline)} [{pct(r.ci_baseline[0])} – "
            f"{pct(r.ci_baseline[1])}]</td>"
            f"<td class='num'>{r.k_baseline:,} / {r.n_baseline:,}</td>"
            f"<td class='num'>{format_p_value(r.p_value)}</td>"
            f"<td>{'elevated' if r.elevated else ''}</td></tr>"
            for r in s.symptoms
        )
        predicate = html.escape(json.dumps(s.predicate, sort_keys=True, default=str), quote=True)
        self.symptoms.value = (
            f"<div class='fx-section forensics-chosen' data-predicate='{predicate}'>"
            f"{html.escape(s.id)}: "
            f"{html.escape(describe_predicate(s.predicate, s.edge_ranges))} · "
            f"{s.start:%Y-%m-%d %H:%M} → {html.escape(end)} UTC</div>"
            f"<div class='fx-muted'>baseline: {html.escape(s.baseline)}</div>"
            "<table class='fx-table forensics-symptoms'><tr><th>signal</th><th>inside [95% CI]"
            "</th><th>k / n</th><th>baseline [95% CI]</th><th>k / n</th><th>p</th><th></th></tr>"
            f"{rows}</table>"
        )
