"""Charts as widgets that need no network: the JupyterChart bundle with Vega inlined.

``altair.JupyterChart`` loads Vega from a CDN unless its JavaScript is bundled;
the bundle (vl-convert) is built once per Altair/vl-convert version and cached
under ``~/.cache/forensics``, so the dashboard renders offline in JupyterLab,
Voilà and notebooks alike.

A chart is sent to its widget as an unvalidated Vega-Lite dict (``draw``):
Altair's per-object validation costs more than the queries behind a redraw
(25-50 ms per chart); the builders' output is validated by the tests instead.
The names of a widget's selections are registered when it is created, from a
stub declaring them (``stub``), since a widget only listens to those.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import altair as alt
from altair.utils.schemapi import debug_mode

from forensics import charts

__all__ = ["chart_widget", "draw", "show", "stub", "unvalidated"]

_CACHE = Path.home() / ".cache" / "forensics"


def _offline_bundle() -> str:
    """JupyterChart's JavaScript with Vega bundled in, cached on disk (built once, ~6 s)."""
    from importlib.metadata import version

    import vl_convert as vlc
    from altair.jupyter.jupyter_chart import load_js_src
    from altair.utils._importers import vl_version_for_vl_convert

    source = load_js_src()
    key = hashlib.sha256(
        f"{version('altair')} {version('vl-convert-python')} {vl_version_for_vl_convert()} "
        f"{source}".encode()
    ).hexdigest()[:16]
    path = _CACHE / f"jupyterchart-{key}.js"
    with contextlib.suppress(OSError):
        return path.read_text(encoding="utf-8")
    lines = source.split("\n")
    while lines and (not lines[0].strip() or lines[0].startswith(("import", "//"))):
        lines.pop(0)
    bundle: str = vlc.javascript_bundle("\n".join(lines), vl_version=vl_version_for_vl_convert())
    with contextlib.suppress(OSError):
        _CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(bundle, encoding="utf-8")
        tmp.replace(path)
    return bundle


_chart_class: type[alt.JupyterChart] | None = None


def chart_widget(chart: Any, **kwargs: Any) -> alt.JupyterChart:
    """A JupyterChart whose JavaScript needs no network."""
    global _chart_class
    if _chart_class is None:
        _chart_class = type(
            "ForensicsChart",
            (alt.JupyterChart,),
            {"_esm": _offline_bundle(), "__module__": __name__},
        )
    return _chart_class(chart, **kwargs)


@contextlib.contextmanager
def unvalidated() -> Iterator[None]:
    """Build charts without Altair's per-object schema validation (see ``draw``)."""
    with debug_mode(False):
        yield


def draw(view: alt.JupyterChart, chart: Any) -> None:
    """Send a chart to its widget as an unvalidated Vega-Lite dict, styled.

    The widget's JavaScript listens to every selection registered with it, and
    a specification without one of them throws in the page ("Unrecognized
    signal name"). The builders declare them; a chart made of one mark (a
    message saying why a panel is empty) gets them here, as point selections
    nothing reads.
    """
    with unvalidated():
        spec = chart.to_dict(validate=False)
    spec["config"] = charts.CONFIG
    declared = {p.get("name") for p in spec.get("params", [])}
    missing = [name for name in view._selection_types if name not in declared]
    if missing and "mark" in spec:
        spec["params"] = [
            *spec.get("params", []),
            *({"name": n, "select": "point"} for n in missing),
        ]
    view.spec = spec


def show(chart: Any) -> alt.JupyterChart:
    """Display a chart (e.g. from ``charts``) styled, with tooltips, and without internet access.

    Examples
    --------
    ``show(charts.timeline_chart(wb.timeline("degraded").rates, signal="degraded"))``
    """
    return chart_widget(charts.style(chart))


def stub(intervals: Sequence[tuple[str, Sequence[str]]] = (), points: Sequence[str] = ()) -> Any:
    """The smallest chart declaring selections, to register their names with a widget.

    ``intervals`` are (name, encodings) of interval selections, ``points`` names
    of point selections; a widget created from it listens to exactly those.
    """
    params: list[Any] = [
        alt.selection_interval(name=name, encodings=list(encodings))  # type: ignore[arg-type]
        for name, encodings in intervals
    ]
    params += [alt.selection_point(name=name, fields=["f"]) for name in points]
    chart = (
        alt.Chart(alt.InlineData(values=[{"t": 0, "f": "", "y": 0}]))
        .mark_point(opacity=0)
        .encode(x="t:Q", y="y:Q")
    )
    return chart.add_params(*params) if params else chart
