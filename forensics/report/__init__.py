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
clip paths. The report renders: every number comes from the query layer.
Altair loads on first use, so that ``import forensics`` stays quick.

One module per job:

- ``investigation``: ``Investigation``, what it collects and how it saves;
- ``provenance``: ``Provenance``, read from the database;
- ``evidence``: the evidence gathered for each signature and the overview;
- ``svg``: charts as sanitised inline SVG (``safe_svg``) and as PNG;
- ``document``: the document model, blocks built once from an investigation;
- ``render_html``, ``render_markdown``: the two renderers of those blocks;
- ``formatting``: numbers, times and text as the report writes them.
"""

from forensics.report.evidence import COMPARE_CHART_ROWS, OVERVIEW_WIDTH, TOP_SLICES, Evidence
from forensics.report.figure import Figure
from forensics.report.investigation import DEFAULT_TITLE, FORMATS, Investigation
from forensics.report.provenance import PACKAGES, RAW_EXAMPLE_CHARS, Provenance, _versions
from forensics.report.svg import PNG_SCALE, UnsafeSvgError, safe_svg

__all__ = [
    "COMPARE_CHART_ROWS",
    "DEFAULT_TITLE",
    "FORMATS",
    "OVERVIEW_WIDTH",
    "PACKAGES",
    "PNG_SCALE",
    "RAW_EXAMPLE_CHARS",
    "TOP_SLICES",
    "Evidence",
    "Figure",
    "Investigation",
    "Provenance",
    "UnsafeSvgError",
    "_versions",
    "safe_svg",
]
