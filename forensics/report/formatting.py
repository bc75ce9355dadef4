"""Formatting numbers, times and text for the report, and JSON-friendly values."""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass


# -- formatting -----------------------------------------------------------------------


def _anchor(text: str) -> str:
    """An id-safe token for an anchor.

    >>> _anchor('S1"><x')
    'S1---x'
    """
    return re.sub(r"[^A-Za-z0-9_-]", "-", text)


def _sh(text: str) -> str:
    """Quote for a POSIX shell when needed.

    >>> _sh("a b"), _sh("plain/path.db")
    ("'a b'", 'plain/path.db')
    """
    import shlex

    return shlex.quote(text)


def _clip(value: Any, limit: int) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not (isinstance(x, float) and math.isnan(x))


def _num(x: Any, spec: str) -> str:
    return format(x, spec) if _finite(x) else "–"


def _pct_number(x: float) -> str:
    v = 100 * x
    if v == 0:
        return "0"
    if abs(v) >= 1:
        return f"{v:.2f}"
    if abs(v) >= 0.01:
        return f"{v:.3f}"
    return f"{v:.2g}"


def _pct(x: Any, digits: int | None = None) -> str:
    """A rate in percent, with enough digits for small ones.

    >>> _pct(0.0585), _pct(0.00042), _pct(2e-6), _pct(None), _pct(0.5, 0)
    ('5.85%', '0.042%', '0.0002%', '–', '50%')
    """
    if not _finite(x):
        return "–"
    if digits is not None:
        return f"{100 * x:.{digits}f}%"
    return f"{_pct_number(x)}%"


def _rate(rate: Any, low: Any, high: Any) -> str:
    """``5.85% [5.36, 6.39]``.

    >>> _rate(0.0585, 0.0536, 0.0639)
    '5.85% [5.36, 6.39]'
    """
    if not _finite(rate):
        return "–"
    if not (_finite(low) and _finite(high)):
        return _pct(rate)
    return f"{_pct(rate)} [{_pct_number(low)}, {_pct_number(high)}]"


def _pp(diff: Any, low: Any, high: Any) -> str:
    """A difference of rates in percentage points with its interval.

    >>> _pp(0.0585, 0.0536, 0.0639)
    '+5.85 pp [+5.36, +6.39]'
    """
    if not _finite(diff):
        return "–"

    def signed(x: float) -> str:
        return ("+" if x > 0 else "−" if x < 0 else "") + _pct_number(abs(x))

    if not (_finite(low) and _finite(high)):
        return f"{signed(diff)} pp"
    return f"{signed(diff)} pp [{signed(low)}, {signed(high)}]"


def _ratio(x: Any, low: Any, high: Any) -> str:
    """``12.3 [9.8, 15.4]``."""
    if not _finite(x):
        return "–"
    return f"{x:.3g} [{_num(low, '.3g')}, {_num(high, '.3g')}]"


def _hours(h: Any) -> str:
    return f"{h:+.0f}" if _finite(h) else "–"


def _time(t: Any) -> str:
    """UTC, ISO-8601 to the minute.

    >>> _time(datetime(2025, 8, 25, 16, 0, tzinfo=UTC))
    '2025-08-25 16:00Z'
    """
    if t is None:
        return "–"
    if isinstance(t, str):
        t = datetime.fromisoformat(t.replace("Z", "+00:00"))
    t = t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)
    return t.strftime("%Y-%m-%d %H:%MZ")


def _range(low: datetime, high: datetime) -> str:
    """A 95% range of times, as short as it can be said.

    >>> t = datetime(2025, 8, 25, 16, tzinfo=UTC)
    >>> _range(t, t), _range(t, t.replace(hour=18))
    ('2025-08-25 16:00Z (to the hour)', '2025-08-25 16:00–18:00Z')
    >>> _range(t, t.replace(day=26))
    '2025-08-25 16:00Z – 2025-08-26 16:00Z'
    """
    if low == high:
        return f"{_time(low)} (to the hour)"
    a, b = _time(low), _time(high)
    if a[:10] == b[:10]:
        return f"{a[:-1]}–{b[11:]}"
    return f"{a} – {b}"


def _window_text(start: datetime, end: datetime | None) -> str:
    return f"{_time(start)} → {_time(end) if end else 'still active'}"


def _when_range(first: datetime | None, last: datetime | None) -> str:
    if first is None or last is None:
        return "no time range"
    return f"{_time(first)} → {_time(last)}"


def _jsonable(value: Any) -> Any:
    """Times as ISO-8601 UTC, NaN as null, tuples as lists, recursively."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def _iso(t: datetime | None) -> str | None:
    if t is None:
        return None
    t = t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)
    return t.isoformat().replace("+00:00", "Z")


def _e(text: Any) -> str:
    return html.escape("" if text is None else str(text), quote=True)
