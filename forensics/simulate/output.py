"""Writing a simulation: requests.parquet, events.csv and truth.json, byte for byte the same per seed."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from forensics.simulate.engine import BugTally, output_columns
from forensics.simulate.spec import ANSWER_EFFECTS, Event, Scenario, iso_time

__all__ = ["events_csv", "truth", "write_requests"]

PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 6,
    # Readers see plain strings (no Arrow dictionary types), while the file still
    # dictionary-encodes the repetitive columns (pools of texts, users, models).
    "store_schema": False,
    "dictionary_pagesize_limit": 64 << 20,
    "write_statistics": True,
}
"""ParquetWriter settings: zstd, dictionaries for repetitive columns, delta for ids and times."""

DELTA_COLUMNS = {
    "ts": "DELTA_BINARY_PACKED",
    "request_id": "DELTA_BYTE_ARRAY",
    "session_id": "DELTA_BYTE_ARRAY",
}
"""Columns better stored as deltas than as dictionaries (unique, sorted or prefixed)."""


def write_requests(path: Path, scenario: Scenario, chunks: Iterable[pa.Table]) -> int:
    """Write the chunks to one Parquet file (a row group per chunk); return the row count."""
    names = output_columns(scenario)
    writer: pq.ParquetWriter | None = None
    rows = 0
    try:
        for table in chunks:
            if writer is None:
                writer = pq.ParquetWriter(
                    path,
                    table.schema,
                    use_dictionary=[n for n in names if n not in DELTA_COLUMNS],
                    column_encoding=DELTA_COLUMNS,
                    **PARQUET_OPTIONS,
                )
            writer.write_table(table, row_group_size=table.num_rows)
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows


def events_csv(events: Iterable[Event]) -> str:
    """events.csv content: ``ts,kind,description,scope``, ISO-8601 UTC times.

    Examples
    --------
    >>> print(events_csv([Event(0, "deploy", "new build", "platform=x")]), end="")
    ts,kind,description,scope
    1970-01-01T00:00:00Z,deploy,new build,platform=x
    """
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\n")
    out.writerow(["ts", "kind", "description", "scope"])
    for e in events:
        out.writerow([iso_time(e.ts), e.kind, e.description, e.scope])
    return buffer.getvalue()


def _bug_json(scenario: Scenario, tallies: Mapping[str, BugTally]) -> list[dict[str, Any]]:
    out = []
    for bug in scenario.bugs:
        t = tallies[bug.name]
        injected: dict[str, Any] = {
            "population_rows": t.population,
            "hit_rows": t.hits,
            "users_hit": len(t.users),
            "intensity": bug.intensity.to_json(),
        }
        if bug.intensity_column:
            injected["intensity_by"] = {
                bug.intensity_column: {v: s.to_json() for v, s in bug.intensity_by.items()}
            }
        if bug.multipliers:
            injected["multiplier"] = {c: dict(t) for c, t in bug.multipliers.items()}
        if bug.curves:
            injected["curve"] = {c: [list(p) for p in pts] for c, pts in bug.curves.items()}
        if bug.sticky_by:
            injected["sticky"] = {"by": bug.sticky_by, "rate": bug.sticky_rate}
        if bug.reroute:
            injected["reroute"] = {bug.reroute[0]: bug.reroute[1]}
        injected["effects_per_hit"] = dict(bug.effects)
        injected["signals"] = {s: tally.as_json() for s, tally in t.signals.items()}
        out.append(
            {
                "name": bug.name,
                "group": bug.group,
                "predicate": bug.truth_predicate.to_json(),
                "start": iso_time(bug.start),
                "end": None if bug.end is None else iso_time(bug.end),
                "symptoms": list(bug.symptoms),
                "injected": injected,
                "description": bug.description,
            }
        )
    return out


def _red_herring_json(scenario: Scenario) -> list[dict[str, Any]]:
    out = []
    for rh in scenario.red_herrings:
        item: dict[str, Any] = {"name": rh.name, "kind": rh.kind, "description": rh.description}
        if rh.column:
            item["column"] = rh.column
        if rh.factors:
            item["factors"] = dict(rh.factors)
        if rh.value is not None:
            item["value"] = rh.value
        if rh.schedule is not None:
            item["schedule"] = rh.schedule.to_json()
        if rh.event is not None:
            item["event"] = {
                "ts": iso_time(rh.event.ts),
                "kind": rh.event.kind,
                "scope": rh.event.scope,
            }
        out.append(item)
    return out


def truth(scenario: Scenario, *, seed: int, rows: int, tallies: Mapping[str, BugTally]) -> str:
    """truth.json content: the bugs (predicate, window, symptoms, what was injected) and red herrings."""
    base = scenario.baseline
    document = {
        "scenario": scenario.name,
        "seed": seed,
        "rows": rows,
        "start": iso_time(scenario.start),
        "end": iso_time(scenario.end),
        "bugs": _bug_json(scenario, tallies),
        "red_herrings": _red_herring_json(scenario),
        "baseline": {
            # effects on answers' form and language are listed where a scenario uses them
            "rates": {e: r for e, r in base.rates.items() if r > 0 or e not in ANSWER_EFFECTS},
            "rules": [
                {"where": r.where.to_json(), "set": dict(r.set), "scale": dict(r.scale)}
                for r in base.rules
            ],
            "quality": {
                "good_eval_beta": list(scenario.quality.good_eval),
                "bad_eval_beta": list(scenario.quality.bad_eval),
                "feedback_share": scenario.quality.feedback_share,
                "feedback_good": list(scenario.quality.feedback_good),
                "feedback_bad": list(scenario.quality.feedback_bad),
            },
        },
    }
    return _inline_short_lists(json.dumps(document, indent=2, ensure_ascii=False)) + "\n"


_FLAT_LIST = re.compile(r"\[\n\s*([^\[\]{}]*?)\n\s*\]")
"""A JSON list holding no list or object, as ``json.dumps(indent=...)`` spreads it over lines."""


def _inline_short_lists(text: str) -> str:
    """Put lists of plain values on one line (predicates, points), keeping the rest indented.

    Examples
    --------
    >>> print(_inline_short_lists(json.dumps({"a": [1, "x"]}, indent=2)))
    {
      "a": [1, "x"]
    }
    """
    return _FLAT_LIST.sub(lambda m: "[" + re.sub(r",\n\s*", ", ", m.group(1)) + "]", text)
