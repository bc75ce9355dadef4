"""The dashboard's former home, kept so that ``from forensics.widgets import ...`` works.

The dashboard is the ``forensics.dashboard`` package now (one module per
panel); this module re-exports its public names.
"""

from forensics import charts
from forensics.dashboard import (
    BASELINES,
    BRUSH_DEBOUNCE_MS,
    PROGRESS_EVERY_S,
    Dashboard,
    DashboardState,
    Selection,
    UpdateTimings,
    show,
)

__all__ = [
    "BASELINES",
    "BRUSH_DEBOUNCE_MS",
    "PROGRESS_EVERY_S",
    "Dashboard",
    "DashboardState",
    "Selection",
    "UpdateTimings",
    "charts",
    "show",
]
