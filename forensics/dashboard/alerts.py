"""The watch's alerts (``forensics watch``) as a short HTML list for the signatures panel."""

from __future__ import annotations

import html

from forensics.db import Database
from forensics.watch.alerts import alert_rows

__all__ = ["SHOWN", "alerts_html"]

SHOWN = 10
"""Problems listed (the most recent alert of each, newest first)."""


def alerts_html(db: Database) -> str:
    """The latest alert of each watched problem, newest first; "" when never watched."""
    rows = alert_rows(db)
    if rows.height == 0:
        return ""
    latest = rows.unique(subset="problem", keep="first", maintain_order=True)
    items = []
    for a in latest.head(SHOWN).iter_rows(named=True):
        state = "resolved" if a["kind"] == "resolved" else "open"
        items.append(
            f"<li><b>{html.escape(a['problem'])}</b> {state} · {html.escape(a['signal'] or '')} "
            f"where {html.escape(a['where'])} · since {html.escape(a['start'] or '?')} · "
            f"excess {a['excess_requests']:,.0f} · last alert {html.escape(a['id'])} "
            f"({html.escape(a['kind'])}, data to {a['at']:%Y-%m-%d %H:%M} UTC)</li>"
        )
    more = latest.height - SHOWN
    tail = f"<li class='fx-muted'>…and {more} more (wb.alerts())</li>" if more > 0 else ""
    return (
        "<div class='forensics-watch-alerts'><b>Watch alerts</b> "
        f"<span class='fx-muted'>({rows.height} alerts, {latest.height} problems)</span>"
        f"<ul>{''.join(items)}{tail}</ul></div>"
    )
