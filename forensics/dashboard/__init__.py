"""The investigator's dashboard: ipywidgets controls and Altair charts over one database.

``wb.dashboard()`` (or ``Dashboard(db)``) opens it. It is made of panels, one
module each, that own their controls and their redraw (``panel.Panel``):

- ``controls``: signal, group-by, grain, date range;
- ``filters``: one filter per dimension, counts that follow the other filters,
  searchable lists, collapsed by default;
- ``headline``: the rate under the filters with its interval;
- ``timeline``: the rate per group (drag to select a window, click a legend
  value to filter, click a moment to explain it) and the request volume per
  group under it;
- ``explain``: the ranked explanations of the clicked moment at the data's
  grain, under the filters; a candidate applied as the filter;
- ``heatmap``: values x time (drag a rectangle to select a region);
- ``comparison``: every dimension, the selection against a baseline
  (BubbleUp; click a bar to filter, shift-click to exclude);
- ``requests``: a sample of the selected requests with their evidence marked;
- ``exposure``: who is hit; ``signatures``: the separate problems, one chosen
  and reproduced exactly; ``pin``: add the view to a report.

``app.Dashboard`` lays them out and runs the one update path. A new view is a
new module with a ``Panel`` subclass, added to the dashboard's panels and
layout. Panels read the database through ``data.Data`` and the query,
analysis and separation layers, never through the ``Workbench`` facade.
"""

from forensics.dashboard.app import CONTEXT, Dashboard
from forensics.dashboard.offline import show
from forensics.dashboard.panel import Actions, Frame, Panel
from forensics.dashboard.pin import Investigation
from forensics.dashboard.signatures import PROGRESS_EVERY_S
from forensics.dashboard.state import (
    BASELINES,
    Baseline,
    DashboardState,
    Selection,
    UpdateTimings,
)
from forensics.dashboard.timeline import BRUSH_DEBOUNCE_MS

__all__ = [
    "BASELINES",
    "BRUSH_DEBOUNCE_MS",
    "CONTEXT",
    "PROGRESS_EVERY_S",
    "Actions",
    "Baseline",
    "Dashboard",
    "DashboardState",
    "Frame",
    "Investigation",
    "Panel",
    "Selection",
    "UpdateTimings",
    "show",
]
