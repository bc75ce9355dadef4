"""A sample of the requests behind a selection, with the evidence of each signal marked.

Numbers say how many requests went wrong; an investigator also wants to read
a few: which answer had Thai letters in it, which code block broke and on
which line, which greedy request took a token of rank 7. ``sample_requests``
returns such a sample for any filter (a signature's slice and window, a
brushed region, the dashboard's filters), reading ``requests`` once: its
matching rows ordered by a hash of their id (a uniform sample that is the same
on every call), those where a chosen signal is true first.

Evidence comes from the detectors' own rules (``signals.evidence``): the runs
of letters foreign to the answer's language (``script_mix``), the line where a
code block fails to parse (``code_syntax_error``), the rank of the token a
greedy request took (``argmax_violation``).

In privacy mode (a database ingested with ``--privacy``) the sample holds the
request id hashed, the time and the signals only: no text (none is stored), no
slice columns, no evidence.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from forensics.db import Database
from forensics.errors import QueryError
from forensics.queries import Where, signal_names, where_sql
from forensics.roles import columns_with_role
from forensics.schema import quote_identifier
from forensics.signals import SignalParams
from forensics.signals.evidence import Span, failing_lines, foreign_runs, script_tokens_sql

__all__ = ["EVIDENCE", "SAMPLE_SIZE", "evidence_excerpt", "evidence_html", "sample_requests"]

SAMPLE_SIZE = 20
"""Requests in a sample unless asked otherwise."""

EVIDENCE = pl.List(
    pl.Struct({"signal": pl.Utf8, "start": pl.Int64, "end": pl.Int64, "detail": pl.Utf8})
)
"""Type of the ``evidence`` column: per request, what shows each signal (``start``
and ``end`` are offsets in ``response_text``, null for evidence outside the text)."""

_HASHED_ID_CHARS = 24
"""Hex characters of the sha256 a request id is shown as in privacy mode."""


def _privacy(db: Database) -> bool:
    return db.meta("privacy") == "on"


def sample_requests(
    db: Database,
    where: Where | Mapping[str, Any] | None = None,
    *,
    limit: int = SAMPLE_SIZE,
    signal: str | None = None,
    seed: int = 0,
    params: SignalParams | None = None,
) -> pl.DataFrame:
    """A sample of the requests a filter selects, with the evidence of their signals.

    Parameters
    ----------
    where
        The selection (``Where`` or its mapping form), e.g. a signature's
        ``sig.where``; None for every request.
    limit
        Requests returned at most.
    signal
        Requests where this signal is true come first (then the others); None:
        a uniform sample.
    seed
        Another seed draws another sample (the same seed, the same sample).
    params
        The detectors' thresholds, for the evidence (the defaults when omitted).

    Returns
    -------
    pl.DataFrame
        ``request_id, ts``, every dimension column, every signal, then
        ``response_text`` and ``evidence`` (``EVIDENCE``: signal, start, end,
        detail). In privacy mode: ``request_id`` (a sha256 prefix), ``ts`` and
        the signals only.

    Examples
    --------
    ``sample_requests(wb.db, sig.where, signal=sig.signal, limit=10)``
    """
    if "requests" not in db.tables():
        raise QueryError("the database holds no requests yet; run `forensics ingest FILE` first")
    if limit < 0:
        raise QueryError(f"limit must be 0 or more, not {limit}")
    columns = db.columns("requests")
    signals = signal_names(db)
    if signal is not None and signal not in signals:
        raise QueryError(f"unknown signal {signal!r}; the database has {', '.join(signals)}")
    params_sql: dict[str, Any] = {"limit": limit, "seed": seed}
    condition = where_sql(Where.parse(where), columns=columns, params=params_sql)
    first = f"{quote_identifier(signal)} IS TRUE DESC, " if signal else ""
    inner = (
        f"SELECT * FROM requests WHERE {condition} "
        f"ORDER BY {first}hash(request_id, $seed), request_id LIMIT $limit"
    )
    signal_items = [quote_identifier(s) for s in signals]
    if _privacy(db):
        items = [
            f"left(sha256(request_id), {_HASHED_ID_CHARS}) AS request_id",
            "ts",
            *signal_items,
        ]
        return db.frame(f"SELECT {', '.join(items)} FROM ({inner})", params_sql)
    dims = [c for c in columns_with_role(db, "dimension") if c in columns]
    text = "response_text" if "response_text" in columns else "CAST(NULL AS VARCHAR)"
    helpers = {
        "_language": "prompt_language" if "prompt_language" in columns else "NULL",
        "_rank": "max_token_rank" if "max_token_rank" in columns else "NULL",
        "_tokens": (
            f"CASE WHEN script_mix THEN {script_tokens_sql('response_text')} END"
            if {"script_mix", "response_text"} <= set(columns)
            else "NULL"
        ),
    }
    items = [
        "request_id",
        "ts",
        *(quote_identifier(d) for d in dims),
        *signal_items,
        f"{text} AS response_text",
        *(f"{sql} AS {name}" for name, sql in helpers.items()),
    ]
    frame = db.frame(f"SELECT {', '.join(items)} FROM ({inner})", params_sql)
    evidence = [_evidence(row, params or SignalParams()) for row in frame.iter_rows(named=True)]
    return frame.drop(list(helpers)).with_columns(pl.Series("evidence", evidence, dtype=EVIDENCE))


def _evidence(row: Mapping[str, Any], params: SignalParams) -> list[dict[str, Any]]:
    """What shows each signal that is true in one request."""
    spans: list[Span] = []
    text = row["response_text"]
    if row.get("script_mix") and text is not None and row["_tokens"] is not None:
        spans += foreign_runs(row["_tokens"], row["_language"], params=params)
    if row.get("code_syntax_error") and text is not None:
        spans += failing_lines(text, params=params)
    out = [
        {"signal": s.signal, "start": s.start, "end": s.end, "detail": s.detail}
        for s in sorted(spans, key=lambda s: s.start)
    ]
    if row.get("argmax_violation") and row["_rank"] is not None:
        out.append(
            {
                "signal": "argmax_violation",
                "start": None,
                "end": None,
                "detail": f"a token of rank {row['_rank']} at temperature 0 (greedy: rank 1)",
            }
        )
    return out


EXCERPT_CHARS = 160
"""Characters of a response kept around its evidence in a one-line excerpt."""


def evidence_excerpt(
    text: str | None,
    evidence: Sequence[Mapping[str, Any]],
    *,
    signal: str | None = None,
    chars: int = EXCERPT_CHARS,
) -> str:
    """One line of a response around its evidence: the span in « », details in [ ].

    The first span of ``signal`` (else of any signal) is shown with about
    ``chars`` characters around it; evidence outside the text (an argmax
    rank) is given by its detail. Plain text: a renderer escapes it.

    Examples
    --------
    >>> evidence_excerpt("fine then ข้อ ok", [{"signal": "script_mix", "start": 10,
    ...     "end": 13, "detail": "Thai run of 3 letters"}], chars=8)
    '…hen «ข้อ» ok [script_mix: Thai run of 3 letters]'
    >>> evidence_excerpt(None, [{"signal": "argmax_violation", "start": None, "end": None,
    ...     "detail": "sampled token rank 57"}])
    '[argmax_violation: sampled token rank 57]'
    """
    spans = [e for e in evidence if signal is None or e["signal"] == signal] or list(evidence)
    marked = next(
        (e for e in spans if text and e["start"] is not None and e["end"] is not None), None
    )
    body = ""
    if text and marked is not None:
        start, end = int(marked["start"]), int(marked["end"])
        left, right = max(0, start - chars // 2), min(len(text), end + chars // 2)
        body = (
            ("…" if left else "")
            + f"{text[left:start]}«{text[start:end]}»{text[end:right]}"
            + ("…" if right < len(text) else "")
        )
    elif text:
        body = text[:chars] + ("…" if len(text) > chars else "")
    details = [f"[{e['signal']}: {e['detail']}]" for e in spans[:2] if e.get("detail")]
    return " ".join([" ".join(body.split()), *details]).strip()


def evidence_html(text: str | None, evidence: Sequence[Mapping[str, Any]]) -> str:
    """The response as HTML with each evidence span marked (``<mark title=detail>``).

    Everything is escaped; spans that overlap an earlier one are left unmarked.

    Examples
    --------
    >>> evidence_html("a <b> ข้อ", [{"signal": "script_mix", "start": 6, "end": 9,
    ...     "detail": "Thai run of 3 letters"}])
    'a &lt;b&gt; <mark class="fx-evidence" data-signal="script_mix" title="script_mix: Thai run of 3 letters">ข้อ</mark>'
    """
    if text is None:
        return ""
    out, at = [], 0
    spans = sorted(
        (e for e in evidence if e.get("start") is not None and e.get("end") is not None),
        key=lambda e: e["start"],
    )
    for e in spans:
        start, end = int(e["start"]), int(e["end"])
        if start < at or end > len(text):
            continue
        title = html.escape(f"{e['signal']}: {e['detail']}", quote=True)
        out.append(html.escape(text[at:start]))
        out.append(
            f'<mark class="fx-evidence" data-signal="{html.escape(e["signal"], quote=True)}" '
            f'title="{title}">{html.escape(text[start:end])}</mark>'
        )
        at = end
    out.append(html.escape(text[at:]))
    return "".join(out)
