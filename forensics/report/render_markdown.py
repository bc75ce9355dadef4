"""The document as Markdown (charts as images the caller writes)."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

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
    _Table,
)
from forensics.report.figure import Figure
from forensics.report.formatting import (
    _anchor,
    _e,
)

if TYPE_CHECKING:
    pass


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
        elif isinstance(block, _Bullets):
            out.append(
                "\n".join("- " + "".join(_inline_md(s) for s in item) for item in block.items)
            )
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
