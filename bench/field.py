"""Field benchmark: the signature search on logs written apart from the tuning library.

For each kind of the field family (``forensics/simulate/field/``) and each
seed: simulate (cached in bench/out/field/, keyed by the family's source:
bench/cache.py), ingest with the run's ``mapping.toml`` and its events
(cached, keyed by the family's and ingest's sources), run ``wb.signatures()``
and score it against the truth with ``forensics.evaluate`` (a bug is found
when a signature covers its requests with Jaccard >= 0.8). Beyond F1, per
true bug:

- **symptoms**: the signature's elevated signals against the bug's symptoms
  (precision: listed symptoms that are the bug's own; recall: the bug's
  symptoms listed), for matched bugs;
- **outcomes**: whether the matched signature's predicate uses a column the
  bug changes (``outcomes`` in the truth); also every signature of the run
  whose predicate uses any outcome column of the family;
- **edges**: for a numeric threshold, the closest signature's bound on that
  column, and, when the signature's JSON holds ``edge_ranges``
  (``{"batch_size": {"gte": [lo, hi]}}``), whether the true edge is inside
  and the range within 10% of it;
- **duplicates**: signatures beyond the first whose Jaccard with the bug is
  >= 0.5.

Prints one row per run and a table per kind (mean F1 with a 95% t interval
over seeds); for ``null``, the share of runs with any signature and its
one-sided 95% Clopper-Pearson upper bound.

    python bench/field.py [--kinds new-value,overlap] [--seeds 101-105]
                          [--null-seeds 101-120] [--rows N] [--json OUT]

The default seeds start at 101 so that tests can use 1-9.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from cache import OUT, field_data_key, field_key  # bench/cache.py
from intervals import clopper_pearson_upper, t_interval  # bench/intervals.py

OUTCOME_COLUMNS = (
    "output_tokens", "finish_reason", "truncated", "latency_ms", "status_code",
    "max_token_rank", "user_feedback", "eval_score", "response_text",
)  # fmt: skip
"""Every column a field-family bug may change."""

DUPLICATE_JACCARD = 0.5
EDGE_TOLERANCE = 0.10


def parse_seeds(text: str) -> list[int]:
    """``101-105`` or ``101,103`` (or a mix).

    >>> parse_seeds("101-103,110")
    [101, 102, 103, 110]
    """
    seeds: list[int] = []
    for part in text.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            seeds.extend(range(int(lo), int(hi) + 1))
        elif part:
            seeds.append(int(part))
    return seeds


def _paths(kind: str, seed: int, rows: int | None) -> tuple[Path, Path]:
    folder = OUT / "field" / f"{kind}-{rows or 'default'}-{seed}-sim-{field_key()}"
    db = OUT / "field" / f"{kind}-{rows or 'default'}-{seed}-db-{field_data_key()}.duckdb"
    return folder, db


def prepare(kind: str, seed: int, rows: int | None) -> tuple[Path, Path, dict[str, float]]:
    """The run's folder and database, built when missing; seconds each step took when built."""
    import forensics
    from forensics.simulate.field import simulate_field

    folder, db = _paths(kind, seed, rows)
    folder.parent.mkdir(parents=True, exist_ok=True)
    timings_file = folder / "timings.json"
    if not (folder / "truth.json").exists():
        t = time.perf_counter()
        simulate_field(kind, seed=seed, rows=rows, out=folder)
        timings_file.write_text(json.dumps({"simulate": time.perf_counter() - t}))
    timings = json.loads(timings_file.read_text()) if timings_file.exists() else {}
    db_timings = db.with_suffix(".json")
    if not db.exists():
        tmp = db.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        t = time.perf_counter()
        with forensics.open(tmp) as wb:
            summary = wb.ingest(
                folder / "requests.parquet", mapping=folder / "mapping.toml", progress=False
            )
            wb.ingest_events(folder / "events.csv")
        seconds = time.perf_counter() - t
        counts = {"read": summary.rows_read, "accepted": summary.accepted,
                  "rejected": summary.rejected, "duplicates": summary.duplicates}  # fmt: skip
        db_timings.write_text(json.dumps({"ingest": seconds, "rows": counts}))
        tmp.rename(db)
    if db_timings.exists():
        timings.update(
            {k: v for k, v in json.loads(db_timings.read_text()).items() if k == "ingest"}
        )
    return folder, db, timings


def _jaccards(db: Any, bug: dict[str, Any], specs: list[dict[str, Any]]) -> list[float]:
    """Jaccard of the bug with each signature, counted as ``forensics.evaluate`` counts."""
    from forensics import queries
    from forensics.queries import Where

    if not specs:
        return []
    known = set(queries.signal_names(db))
    symptoms = [s for s in bug["symptoms"] if s in known]
    true = Where.parse({**bug["predicate"], "ts": (bug["start"], bug["end"])})
    found = [Where.parse({**s["predicate"], "ts": (s["start"], s["end"])}) for s in specs]
    total, pairs = queries.overlap_counts(db, true, found, defined=symptoms)
    return [both / (total + size - both) if total + size - both else 0.0 for size, both in pairs]


def _edge_check(bug: dict[str, Any], spec: dict[str, Any] | None) -> list[dict[str, Any]]:
    out = []
    for column, bound in bug.get("edges", {}).items():
        true = float(bound["gte"])
        found = None
        if spec is not None and isinstance(spec["predicate"].get(column), dict):
            found = spec["predicate"][column].get("gte")
        rng = (spec or {}).get("edge_ranges", {}).get(column, {}).get("gte")
        in_range = narrow = None
        if rng is not None:
            lo, hi = float(rng[0]), float(rng[1])
            in_range = lo <= true <= hi
            narrow = (hi - lo) <= EDGE_TOLERANCE * true
        out.append(
            {"column": column, "true": true, "found": found, "range": rng,
             "in_range": in_range, "narrow": narrow}
        )  # fmt: skip
    return out


def run(kind: str, seed: int, rows: int | None) -> dict[str, Any]:
    """Simulate (cached), ingest (cached), search, score one run."""
    import forensics
    from forensics.evaluate import evaluate
    from forensics.signature import signatures_to_json

    folder, db, timings = prepare(kind, seed, rows)
    truth = json.loads((folder / "truth.json").read_text())
    with forensics.open(db, read_only=True) as wb:
        t = time.perf_counter()
        found = wb.signatures()
        timings["search"] = time.perf_counter() - t
        specs = json.loads(signatures_to_json(found))["signatures"]
        result = evaluate(wb.db, truth, specs)
        closest = evaluate(wb.db, truth, specs, threshold=1e-9) if truth["bugs"] else None
        by_id = {s["id"]: s for s in specs}
        bugs = []
        for i, bug in enumerate(truth["bugs"]):
            row = result.matches.row(i, named=True)
            near = closest.matches.row(i, named=True) if closest is not None else {}
            matched = by_id.get(row["signature"]) if row["signature"] else None
            nearest = by_id.get(near.get("signature")) if near.get("signature") else None
            jaccards = _jaccards(wb.db, bug, specs)
            item: dict[str, Any] = {
                "bug": bug["name"],
                "kind": bug.get("kind"),
                "signature": row["signature"],
                "jaccard": row["jaccard"],
                "closest": near.get("signature"),
                "closest_jaccard": near.get("jaccard"),
                "closest_predicate": nearest["predicate"] if nearest else None,
                "duplicates": max(0, sum(j >= DUPLICATE_JACCARD for j in jaccards) - 1),
                "edges": _edge_check(bug, nearest),
            }
            if matched is not None:
                listed, own = set(matched["signals"]), set(bug["symptoms"])
                item["symptom_precision"] = len(listed & own) / len(listed) if listed else 1.0
                item["symptom_recall"] = len(listed & own) / len(own) if own else 1.0
                item["borrowed"] = sorted(listed - own)
                item["outcome_in_predicate"] = sorted(
                    set(matched["predicate"]) & set(bug["outcomes"])
                )
            bugs.append(item)
    return {
        "kind": kind,
        "seed": seed,
        "rows": truth["rows"],
        "true": result.true,
        "found": result.found,
        "matched": result.matched,
        "precision": result.precision,
        "recall": result.recall,
        "f1": result.f1,
        "bugs": bugs,
        "signatures": [
            {
                "id": s["id"],
                "predicate": s["predicate"],
                "start": s["start"],
                "end": s["end"],
                "signals": s["signals"],
            }
            for s in specs
        ],
        "outcome_signatures": sum(bool(set(s["predicate"]) & set(OUTCOME_COLUMNS)) for s in specs),
        "seconds": timings,
    }


def _row(r: dict[str, Any]) -> str:
    parts = [
        f"{r['kind']:18} seed {r['seed']:4}  true {r['true']}  found {r['found']:2}  "
        f"matched {r['matched']}  F1 {r['f1']:.3f}"
    ]
    for b in r["bugs"]:
        jac = "-" if b["closest_jaccard"] is None else f"{b['closest_jaccard']:.2f}"
        note = f"  [{b['bug']}: J {jac}"
        if "symptom_precision" in b:
            note += f", sym P {b['symptom_precision']:.2f} R {b['symptom_recall']:.2f}"
            if b["borrowed"]:
                note += f" +{','.join(b['borrowed'])}"
            if b["outcome_in_predicate"]:
                note += f", outcome in predicate: {','.join(b['outcome_in_predicate'])}"
        for e in b["edges"]:
            note += f", edge {e['column']} >= {e['true']:g} found {e['found']}"
            if e["range"] is not None:
                note += f" range {e['range']}"
        if b["duplicates"]:
            note += f", {b['duplicates']} duplicate(s)"
        parts.append(note + "]")
    s = r["seconds"]
    parts.append(
        f"  outcome-sigs {r['outcome_signatures']}  sim {s.get('simulate', float('nan')):.1f} s "
        f"ingest {s.get('ingest', float('nan')):.1f} s search {s['search']:.1f} s"
    )
    return "".join(parts)


def _mean(values: list[float]) -> str:
    return f"{statistics.fmean(values):.2f}" if values else "-"


def summarize(results: list[dict[str, Any]], kinds: list[str]) -> str:
    """The per-kind table and the overall line."""
    lines = [
        f"{'kind':18} {'runs':>4}  {'F1 (95% CI)':22} {'prec':>5} {'recall':>6} "
        f"{'sym P':>5} {'sym R':>5} {'outcome':>7} {'edge':>5} {'range':>5} {'dups':>4} "
        f"{'sim s':>5} {'ingest s':>8} {'search s':>8}"
    ]
    for kind in kinds:
        rows = [r for r in results if r["kind"] == kind]
        if not rows:
            continue
        bugs = [b for r in rows for b in r["bugs"]]
        matched = [b for b in bugs if "symptom_precision" in b]
        edges = [e for b in bugs for e in b["edges"]]
        exact = [e for e in edges if e["found"] is not None and
                 abs(e["found"] - e["true"]) <= EDGE_TOLERANCE * e["true"]]  # fmt: skip
        edge = f"{len(exact)}/{len(edges)}" if edges else "-"
        ranged = [e for e in edges if e["range"] is not None]
        held = sum(bool(e["in_range"] and e["narrow"]) for e in ranged)
        ranges = f"{held}/{len(ranged)}" if edges else "-"
        outcome = sum(bool(b["outcome_in_predicate"]) for b in matched)
        outcome_sigs = sum(r["outcome_signatures"] for r in rows)
        secs = {k: _mean([r["seconds"][k] for r in rows if k in r["seconds"]])
                for k in ("simulate", "ingest", "search")}  # fmt: skip
        lines.append(
            f"{kind:18} {len(rows):4}  {t_interval([r['f1'] for r in rows]):22} "
            f"{statistics.fmean(r['precision'] for r in rows):5.3f} "
            f"{statistics.fmean(r['recall'] for r in rows):6.3f} "
            f"{_mean([b['symptom_precision'] for b in matched]):>5} "
            f"{_mean([b['symptom_recall'] for b in matched]):>5} "
            f"{f'{outcome}/{outcome_sigs}':>7} {edge:>5} {ranges:>5} "
            f"{sum(b['duplicates'] for b in bugs):4} "
            f"{secs['simulate']:>5} {secs['ingest']:>8} {secs['search']:>8}"
        )
    nulls = [r for r in results if r["kind"] == "null"]
    if nulls:
        k = sum(r["found"] > 0 for r in nulls)
        lines.append(
            f"\nnull: {k} of {len(nulls)} runs with any signature ({k / len(nulls):.3f}); "
            f"one-sided 95% Clopper-Pearson upper bound {clopper_pearson_upper(k, len(nulls)):.3f}"
        )
    bugged = [r for r in results if r["kind"] != "null"]
    if bugged:
        lines.append(
            f"all kinds but null: mean F1 {t_interval([r['f1'] for r in bugged])} "
            f"over {len(bugged)} runs"
        )
    lines.append(
        "columns: sym P/R = mean symptom precision/recall of matched signatures; outcome = "
        "matched signatures using an outcome column of their bug / all signatures using any "
        "outcome column; edge = closest signatures whose bound is within 10% of the true edge; "
        "range = edge_ranges holding the true edge and within 10% of it / edges given a range"
    )
    return "\n".join(lines)


def main() -> None:
    from forensics.simulate.field import KINDS

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kinds", default=",".join(KINDS), help="Comma-separated kinds [all].")
    parser.add_argument("--seeds", default="101-105", help="Seeds of the bug kinds [101-105].")
    parser.add_argument("--null-seeds", default="101-120", help="Seeds of null runs [101-120].")
    parser.add_argument("--rows", type=int, default=None, help="Rows per run [kind default].")
    parser.add_argument("--json", type=Path, default=None, help="Write every result here.")
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        sys.exit(f"unknown kind(s) {', '.join(unknown)}; kinds: {', '.join(KINDS)}")
    results = []
    for kind in kinds:
        for seed in parse_seeds(args.null_seeds if kind == "null" else args.seeds):
            r = run(kind, seed, args.rows)
            results.append(r)
            print(_row(r), flush=True)
    print()
    print(summarize(results, kinds))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
