"""The thresholds of the online detector and of its alerts, in one place."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

__all__ = ["WatchParams"]


@dataclass(frozen=True)
class WatchParams:
    """Thresholds of ``forensics watch``: the detector, its baselines and its alerts."""

    false_alarms_per_30_days: float = 1.0
    """Target rate of alerts for problems that are not there (default one per 30 days).
    The detection threshold is read from the calibration table for this rate
    (``calibration.threshold``), with a margin so that the 95% upper bound of the rate
    measured on bug-free data holds it."""
    threshold: float | None = None
    """The detection threshold itself (scan statistic, after dispersion); None reads it
    from the calibration table for ``false_alarms_per_30_days``."""
    horizon_hours: int = 14 * 24
    """Hours of series each cycle scans: a slice's level outside a window is measured over
    the part of this horizon before it. A cycle reads this much, whatever the history."""
    max_window_hours: int = 96
    """Longest window tested, ending at the newest hour."""
    warmup_hours: int = 72
    """No alert before the series hold this many hours (the baseline must learn first)."""
    fit_days: int = 7
    """Days of requests the baseline model is fitted on, once per UTC day."""
    fit_rows: int = 1_000_000
    """The fit reads a uniform sample of at most about this many of those requests (and as
    many of the ``weekly_weeks``)."""
    weekly_weeks: int = 4
    """Weeks of requests the weekly cycle (a day-of-week factor) is measured on; 0 never
    models it."""
    weekly_min_days: int = 3
    """Days of each weekday (each with requests in at least half of its hours) those weeks
    must hold before the weekly cycle may enter a model: with three, each weekday's factor
    is the middle of at least three measurements, so one bad day never enters it."""
    model_dims: int = 4
    """Most dimensions in a signal's baseline model (hour of day and day of week included)."""
    model_max_levels: int = 64
    """A dimension with more values than this is watched, never modelled."""
    max_values: int = 256
    """A text dimension with more values than this is an identifier and is not watched."""
    min_ratio: float = 1.5
    """A problem must multiply its slice's baseline rate by at least this much..."""
    min_excess: float = 10.0
    """...and add at least this many requests with the signal."""
    alpha: float = 0.05
    """Level of the intervals (95%) and of the tests of each symptom."""
    max_conditions: int = 4
    """Most conditions in a problem's predicate."""
    refine_baseline_hours: int = 72
    """Hours before a window that the refinement of a predicate compares it with."""
    max_firings: int = 12
    """Firing slices turned into predicates per cycle, strongest first (the others wait)."""
    match_share: float = 0.5
    """Two detections are one problem when their rows overlap by this share of the smaller."""
    update_growth: float = 2.0
    """An update is sent when a problem's excess requests grew by this factor..."""
    update_every_hours: int = 6
    """...and at most this often."""
    resolve_hours: int = 12
    """A problem is resolved when, over this many recent hours, its rate is below
    ``min_ratio`` times its baseline and shown (upper end of the 95% interval) to be below
    its rate when last alerted (lower end of that interval)."""
    reopen_hours: int = 48
    """A problem resolved less than this long ago is reopened (an update) rather than new."""
    duplicate_horizon: timedelta = timedelta(days=7)
    """Ingest compares request_ids only with stored rows this close in time."""
