"""Score found signatures against a simulation's ground truth.

A true bug is recovered by a found signature when the requests they cover
(predicate and window) agree: Jaccard >= ``MATCH_JACCARD``, counted on the rows
where the bug's symptoms can show (at least one of its symptom signals is
defined). Bugs and signatures are matched one to one, best Jaccard first.
Precision = matched / found, recall = matched / true, F1 their harmonic mean;
with nothing true and nothing found, all three are 1.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from forensics import queries
from forensics.db import Database
from forensics.errors import ConfigError
from forensics.queries import Where, as_utc
from forensics.signature import Signature

__all__ = [
    "MATCH_JACCARD",
    "Evaluation",
    "PairScore",
    "evaluate",
    "load_json",
    "score_grouping",
    "simulation_of",
]

MATCH_JACCARD = 0.8
"""Agreement needed between a true bug's requests and a signature's."""

MATCH_SCHEMA = {
    "bug": pl.Utf8,
    "signature": pl.Utf8,
    "jaccard": pl.Float64,
    "onset_error_hours": pl.Float64,
    "end_error_hours": pl.Float64,
}
"""Columns of ``Evaluation.matches``: one row per true bug."""


@dataclass(frozen=True)
class Evaluation:
    """How well found signatures recover the true bugs."""

    matches: pl.DataFrame
    """One row per true bug: ``bug, signature, jaccard, onset_error_hours, end_error_hours``
    (the best signature's Jaccard when none matches; errors are found minus true)."""
    found: int
    """Signatures found."""
    true: int
    """True bugs."""
    matched: int
    """Bugs recovered (Jaccard >= MATCH_JACCARD)."""

    @property
    def precision(self) -> float:
        """Matched / found (1 when nothing was found)."""
        return self.matched / self.found if self.found else 1.0

    @property
    def recall(self) -> float:
        """Matched / true bugs (1 when there were none)."""
        return self.matched / self.true if self.true else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def table(self) -> str:
        """Readable lines for the terminal."""
        lines = []
        for row in self.matches.iter_rows(named=True):
            sig = row["signature"] or "-"
            jac = f"{row['jaccard']:.3f}" if row["jaccard"] is not None else "-"
            onset = row["onset_error_hours"]
            end = row["end_error_hours"]
            lines.append(
                f"{row['bug']:34} {sig:5} jaccard {jac:6} "
                f"onset {'-' if onset is None else f'{onset:+.1f} h':>9} "
                f"end {'-' if end is None else f'{end:+.1f} h':>9}"
            )
        lines.append(
            f"found {self.found}, true {self.true}, matched {self.matched}: precision "
            f"{self.precision:.3f}, recall {self.recall:.3f}, F1 {self.f1:.3f}"
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        """``print(evaluation)``: each bug's match, then precision, recall and F1."""
        return self.table()

    def _repr_html_(self) -> str:
        """In a notebook: precision, recall and F1, then each bug's match."""

        def cell(value: Any, spec: str) -> str:
            return "–" if value is None else html.escape(format(value, spec))

        rows = "".join(
            f"<tr><td>{html.escape(str(r['bug']))}</td><td>{cell(r['signature'], '')}</td>"
            f"<td>{cell(r['jaccard'], '.3f')}</td><td>{cell(r['onset_error_hours'], '+.1f')}</td>"
            f"<td>{cell(r['end_error_hours'], '+.1f')}</td></tr>"
            for r in self.matches.iter_rows(named=True)
        )
        return (
            f"<div><b>precision {self.precision:.3f}, recall {self.recall:.3f}, "
            f"F1 {self.f1:.3f}</b> ({self.matched} of {self.true} true bugs recovered by "
            f"{self.found} signatures; a match needs Jaccard &ge; {MATCH_JACCARD})"
            "<table><tr><th>bug</th><th>signature</th><th>jaccard</th>"
            "<th>onset error (h)</th><th>end error (h)</th></tr>"
            f"{rows}</table></div>"
        )


def load_json(path: str | Path, key: str) -> dict[str, Any]:
    """Read a truth or signatures JSON file; a clear error when it is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise ConfigError(
            f'{path}: expected a JSON object with a "{key}" list (from `forensics '
            f"{'simulate' if key == 'bugs' else 'signatures --json'}`)"
        )
    return data


def _window(spec: Mapping[str, Any], what: str) -> tuple[datetime, datetime | None]:
    start = as_utc(spec.get("start"), f"{what} start")
    if start is None:
        raise ConfigError(f"{what}: needs a start time")
    return start, as_utc(spec.get("end"), f"{what} end")


def _hours(a: datetime | None, b: datetime | None) -> float | None:
    return None if a is None or b is None else (a - b).total_seconds() / 3600


def evaluate(
    db: Database,
    truth: Mapping[str, Any],
    signatures: Sequence[Mapping[str, Any] | Signature],
    *,
    threshold: float = MATCH_JACCARD,
) -> Evaluation:
    """Match signatures (``Signature`` objects or their ``--json`` shape) to the truth's bugs.

    Examples
    --------
    >>> from forensics.db import Database
    >>> evaluate(Database(":memory:"), {"bugs": []}, []).f1
    1.0
    """
    specs = [s.to_dict() if isinstance(s, Signature) else s for s in signatures]
    bugs = list(truth.get("bugs", []))
    if not bugs:
        empty = pl.DataFrame(schema=MATCH_SCHEMA)
        return Evaluation(matches=empty, found=len(specs), true=0, matched=0)
    known = set(queries.signal_names(db))
    _, data_end = queries.time_range(db)
    windows = [_window(sig, f"signature {sig.get('id')!r}") for sig in specs]
    found = [
        Where.parse({**sig["predicate"], "ts": window})
        for sig, window in zip(specs, windows, strict=True)
    ]
    pairs: list[tuple[float, int, int]] = []
    for b, bug in enumerate(bugs):
        symptoms = [s for s in bug.get("symptoms", []) if s in known]
        if not symptoms:
            raise ConfigError(
                f"truth bug {bug.get('name')!r}: none of its symptoms {bug.get('symptoms')} is a "
                f"signal of this database ({', '.join(sorted(known))})"
            )
        window = _window(bug, f"truth bug {bug.get('name')!r}")
        true = Where.parse({**bug["predicate"], "ts": window})
        total, overlaps = queries.overlap_counts(db, true, found, defined=symptoms)
        for i, (size, both) in enumerate(overlaps):
            union = total + size - both
            pairs.append((both / union if union else 0.0, b, i))
    pairs.sort(key=lambda p: -p[0])
    used_bugs: set[int] = set()
    used_sigs: set[int] = set()
    best: dict[int, tuple[float, int]] = {}
    for jaccard, b, i in pairs:
        if b in used_bugs or i in used_sigs or jaccard < threshold:
            continue
        used_bugs.add(b)
        used_sigs.add(i)
        best[b] = (jaccard, i)
    rows: list[tuple[Any, ...]] = []
    for b, bug in enumerate(bugs):
        true_start, true_end = _window(bug, "truth bug")
        if b in best:
            jaccard, i = best[b]
            start, end = windows[i]
            rows.append(
                (
                    bug["name"],
                    specs[i].get("id"),
                    jaccard,
                    _hours(start, true_start),
                    _hours(end or data_end, true_end or data_end),
                )
            )
        else:
            closest = max((p[0] for p in pairs if p[1] == b), default=None)
            rows.append((bug["name"], None, closest, None, None))
    matches = pl.DataFrame(
        rows,
        schema=MATCH_SCHEMA,
        orient="row",
    )
    return Evaluation(matches=matches, found=len(specs), true=len(bugs), matched=len(best))


@dataclass(frozen=True)
class PairScore:
    """How well signatures are grouped into root causes, counted over pairs.

    Only signatures matched to a true bug count (``Evaluation.matches``); a pair
    of them truly belongs together when their bugs share a ``group`` in the truth.
    """

    together_right: int
    """Pairs grouped together whose bugs share a group."""
    together_wrong: int
    """Pairs grouped together whose bugs are in different groups."""
    apart_wrong: int
    """Pairs kept apart whose bugs share a group."""
    apart_right: int
    """Pairs kept apart whose bugs are in different groups."""

    @property
    def precision(self) -> float | None:
        """Of the pairs grouped together, the share that belongs together (None: no pair grouped)."""
        grouped = self.together_right + self.together_wrong
        return self.together_right / grouped if grouped else None

    @property
    def recall(self) -> float | None:
        """Of the pairs that belong together, the share grouped (None: no such pair)."""
        belong = self.together_right + self.apart_wrong
        return self.together_right / belong if belong else None

    def __add__(self, other: PairScore) -> PairScore:
        """Counts pooled over runs."""
        return PairScore(
            self.together_right + other.together_right,
            self.together_wrong + other.together_wrong,
            self.apart_wrong + other.apart_wrong,
            self.apart_right + other.apart_right,
        )


def score_grouping(
    truth: Mapping[str, Any], evaluation: Evaluation, groups: Sequence[Sequence[str]]
) -> PairScore:
    """Pair counts of a grouping of signatures (ids, e.g. each root cause's) against the truth.

    Examples
    --------
    >>> truth = {"bugs": [{"name": "a", "group": "g"}, {"name": "b", "group": "g"},
    ...                   {"name": "c", "group": "h"}]}
    >>> matches = pl.DataFrame({"bug": ["a", "b", "c"], "signature": ["S1", "S2", "S3"]})
    >>> e = Evaluation(matches=matches, found=3, true=3, matched=3)
    >>> s = score_grouping(truth, e, [["S1", "S3"], ["S2"]])
    >>> (s.together_right, s.together_wrong, s.apart_wrong, s.apart_right)
    (0, 1, 1, 1)
    """
    group_of = {b["name"]: b.get("group", b["name"]) for b in truth.get("bugs", [])}
    bug_group = {
        row["signature"]: group_of[row["bug"]]
        for row in evaluation.matches.iter_rows(named=True)
        if row["signature"] is not None
    }
    cause = {sid: i for i, members in enumerate(groups) for sid in members}
    matched = sorted(bug_group)
    counts = [0, 0, 0, 0]
    for i, a in enumerate(matched):
        for b in matched[i + 1 :]:
            belong = bug_group[a] == bug_group[b]
            together = a in cause and cause.get(a) == cause.get(b)
            counts[(0 if belong else 1) if together else (2 if belong else 3)] += 1
    return PairScore(*counts)


def simulation_of(file: Mapping[str, Any]) -> dict[str, Any] | None:
    """The simulation an input file came from, if a truth.json beside it says so.

    ``file`` is a row of ``wb.files()``. Only a ``truth.json`` whose ``rows``
    equals the file's rows read counts: nothing guesses a seed.
    """
    truth_path = Path(str(file.get("path", ""))).parent / "truth.json"
    try:
        truth = json.loads(truth_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(truth, dict) or truth.get("rows") != file.get("rows_read"):
        return None
    if "seed" not in truth or "scenario" not in truth:
        return None
    return {
        "file": file.get("path"),
        "scenario": truth["scenario"],
        "seed": truth["seed"],
        "rows": truth["rows"],
        "truth": str(truth_path),
    }
