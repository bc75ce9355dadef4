"""The truth of a counted case and writing a case to disk.

``truth.json`` holds what a method must find: ``elements`` (the cause
elements, each a mapping attribute -> value) and ``onset`` (ISO-8601 UTC, also
as ``onset_minute`` from the first minute), plus how each cause was injected
and the distraction, for reading failures. The counts go to ``counts.parquet``
(or ``counts.csv``): ``minute``, one column per attribute, ``requests``,
``bad``, with ``mapping.toml``, the mapping that ingests them as counted rows
(``bad`` as the signal ``failed``). Same case, same bytes.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import polars as pl

from forensics.simulate.counted.anomalies import Plan
from forensics.simulate.counted.cube import Cube

__all__ = ["FORMAT", "iso", "mapping_text", "truth_document", "write_counts"]

FORMAT = "forensics-counted-incident/1"
"""The ``format`` of a truth document."""


def iso(t: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``."""
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def truth_document(
    seed: int, cube: Cube, plan: Plan, start: datetime, counts: pl.DataFrame
) -> dict[str, Any]:
    """The truth of a case as a JSON-ready dict."""
    end = None if plan.end >= plan.minutes else iso(start + timedelta(minutes=plan.end))
    blip = None
    if plan.blip is not None:
        blip = {
            "element": plan.blip.element,
            "ratio": round(plan.blip.ratio, 4),
            "start": iso(start + timedelta(minutes=plan.blip.start)),
            "minutes": plan.blip.minutes,
        }
    return {
        "format": FORMAT,
        "seed": seed,
        "start": iso(start),
        "minutes": plan.minutes,
        "onset": iso(start + timedelta(minutes=plan.onset)),
        "onset_minute": plan.onset,
        "end": end,
        "attributes": {n: list(v) for n, v in zip(cube.attributes, cube.values, strict=True)},
        "elements": [c.element for c in plan.causes],
        "causes": [
            {
                "element": c.element,
                "ratio": round(c.ratio, 4),
                "uneven_attribute": c.uneven_attribute,
                "precursor_minutes": c.precursor_minutes,
                "precursor_level": round(c.precursor_level, 4),
            }
            for c in plan.causes
        ],
        "blip": blip,
        "rows": counts.height,
        "requests": int(counts["requests"].sum()),
    }


def mapping_text(attributes: list[str]) -> str:
    """The mapping of a case's counts: counted rows keyed by minute and attributes."""
    key = ", ".join(f'"{a}"' for a in ["minute", *attributes])
    return (
        "# Per-minute counts: a row stands for `requests` requests, `bad` of which\n"
        "# failed (forensics simulate --counted).\n"
        "[columns]\n"
        'ts = "minute"\n\n'
        "[counts]\n"
        'requests = "requests"\n'
        f"key = [{key}]\n\n"
        "[signals.failed]\n"
        'count = "bad"\n'
        'description = "Requests that failed."\n'
    )


def write_counts(
    counts: pl.DataFrame,
    truth: dict[str, Any],
    out: str | Path,
    *,
    format: Literal["parquet", "csv"] = "parquet",
) -> Path:
    """Write ``counts.<format>``, ``mapping.toml`` and ``truth.json`` into ``out``.

    Returns the counts file.
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"counts.{format}"
    if format == "csv":
        counts.with_columns(pl.col("minute").dt.strftime("%Y-%m-%dT%H:%M:%SZ")).write_csv(path)
    else:
        counts.write_parquet(path, statistics=False)
    (folder / "truth.json").write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
    attributes = [c for c in counts.columns if c not in ("minute", "requests", "bad")]
    (folder / "mapping.toml").write_text(mapping_text(attributes), encoding="utf-8")
    return path
