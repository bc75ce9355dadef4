"""Charts in notebooks with no network: in JupyterLab, in Voilà and in exported HTML.

Altair's default renderer writes HTML that loads Vega from a CDN, so its charts
are blank offline, in the notebook and in an nbconvert HTML export alike (and
JupyterLab has no built-in renderer for the Vega-Lite version Altair writes).
``offline_charts()`` makes every chart a notebook displays carry:

- its drawing as SVG (vl-convert, no browser and no network), rebuilt from an
  allowlist with its ids made unique (``report.svg.safe_svg``), so that several
  charts on one exported page do not borrow each other's clip paths: every
  front end shows it, and nbconvert writes it into the page;
- a line of text for the rest.

Drawn once, in the kernel, the chart is a picture: no tooltips or zoom (the
dashboard's charts are the interactive ones). Altair's Vega-Lite 6 MIME type is
left out: nbformat's schema refuses a JSON output under a name not ending in
``+json``, and no front end here renders that version from its own bundle.
``chart_bundle(spec)`` is that output for one specification.
"""

from __future__ import annotations

import secrets
from typing import Any

__all__ = ["RENDERER", "chart_bundle", "offline_charts"]

RENDERER = "forensics-offline"
"""The name the renderer is registered under in ``altair.renderers``."""


def chart_bundle(spec: dict[str, Any], **_metadata: Any) -> dict[str, Any]:
    """The display output of one chart: its SVG, and a line of text.

    Examples
    --------
    >>> import altair as alt
    >>> chart = alt.Chart(alt.InlineData(values=[{"a": 1}])).mark_point().encode(x="a:Q")
    >>> bundle = chart_bundle(chart.to_dict())
    >>> sorted(bundle), bundle["image/svg+xml"].startswith("<svg")
    (['image/svg+xml', 'text/plain'], True)
    """
    import vl_convert

    from forensics.report.svg import _vl_version, safe_svg

    svg = vl_convert.vegalite_to_svg(spec, vl_version=_vl_version())
    title = spec.get("title")
    if isinstance(title, dict):
        title = title.get("text")
    if isinstance(title, list):
        title = " ".join(str(t) for t in title)
    return {
        "image/svg+xml": safe_svg(svg, prefix=f"c{secrets.token_hex(4)}"),
        "text/plain": f"<chart{': ' + str(title) if title else ''}>",
    }


def offline_charts() -> None:
    """Show every Altair chart of this session offline (see the module); call once per notebook.

    Examples
    --------
    >>> import altair as alt
    >>> offline_charts()
    >>> alt.renderers.active == RENDERER
    True
    >>> _ = alt.renderers.enable("default")
    """
    import altair as alt

    if RENDERER not in alt.renderers.names():
        alt.renderers.register(RENDERER, chart_bundle)
    alt.renderers.enable(RENDERER)
