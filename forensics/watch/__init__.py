"""Watch request logs as they arrive; alert on a new problem as soon as the evidence is there.

The separation (``forensics.separation``) finds problems after the fact, in
all the data at once. The watch runs the same statistic online, in cycles
(``cycle``: ``forensics watch SOURCE --db FILE``):

1. **Source** (``source``). New complete files of a folder or glob (a
   documented completeness rule) are ingested, request ids checked against
   the last ``duplicate_horizon`` of stored rows only.
2. **Cubes and series** (``queries.update_cubes``, ``store``). The hours the
   new rows touch are recounted in the cubes and in ``watch_series``: per hour
   and per slice (each value of each dimension, numbers in power-of-two
   buckets), each signal's observed count and its expectation under a
   baseline model (``model``: the separation's robust main effects, the hour
   of day among the candidate dimensions, refitted every UTC day on the last
   ``fit_days``; a new value takes its siblings' level; once the history holds
   enough weeks, a day-of-week factor measured across them, ``weekly``).
3. **Detection** (``detector``). Per slice and signal, the separation's scan
   statistic (``separation.statistic.window_llr``) over every window ending at
   the newest hour, against the slice's own level over the ``horizon_hours``
   before: a generalised likelihood ratio test, sequential since it runs every
   cycle. Its threshold comes from a target false-alarm rate
   (``calibration``: replays of the tuning library's bug-free scenarios).
4. **Problems and alerts** (``refine``, ``evidence``, ``alerts``). A firing
   slice is refined into a minimal predicate, measured as a ``Signature``,
   matched to the known problems by a documented rule, and becomes a ``new``,
   ``update`` or ``resolved`` alert with a stable problem key, stored in the
   ``alerts`` table before any sink (``sinks``: JSON lines, webhook, command)
   sees it.

A cycle reads the new rows, a fixed horizon of series and the recent rows of
the slices it refines: its cost does not grow with the history.
"""

from __future__ import annotations

from forensics.watch.alerts import Alert
from forensics.watch.cycle import CycleReport, run_cycle, watch
from forensics.watch.params import WatchParams
from forensics.watch.sinks import parse_sink
from forensics.watch.source import FolderSource

__all__ = [
    "Alert",
    "CycleReport",
    "FolderSource",
    "WatchParams",
    "parse_sink",
    "run_cycle",
    "watch",
]
