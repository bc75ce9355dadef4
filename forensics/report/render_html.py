"""The document as one self-contained HTML page (no script, no external resource)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from forensics.report.document import (
    _Block,
    _Bullets,
    _Chart,
    _Code,
    _Facts,
    _Heading,
    _Inline,
    _Note,
    _Para,
    _Section,
    _Table,
)
from forensics.report.figure import Figure
from forensics.report.formatting import (
    _e,
)

# -- HTML -----------------------------------------------------------------------------


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
        elif isinstance(block, _Bullets):
            items = "".join(
                f"<li>{''.join(_inline_html(s) for s in item)}</li>" for item in block.items
            )
            out.append(f'<ul class="fx-list">{items}</ul>')
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
.fx-report ul.fx-list{margin:4px 0 16px;padding-left:22px;max-width:90ch}
.fx-report ul.fx-list li{margin:3px 0}
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
