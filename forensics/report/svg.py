"""Charts drawn for a report: safe inline SVG for HTML, PNG for Markdown."""

from __future__ import annotations

import base64
import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from forensics.report.figure import Figure

if TYPE_CHECKING:
    pass


PNG_SCALE = 1.5
"""Pixel density of the Markdown report's PNG charts."""


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
    forensics.report.svg.UnsafeSvgError: SVG attribute onload is not allowed in a report
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
