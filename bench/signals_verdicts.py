"""Text-signal verdicts of one checkout, to prove a speed change changes no result.

Computes the text signals (``SIGNALS``) with whichever ``forensics`` the
interpreter imports (point ``PYTHONPATH`` at a worktree for another version) over
the rows ``bench/signals.py`` times (same generator, same seed) and over the
labelled corpus of ``tests/signal_corpus/``, and writes them to a Parquet file;
``--compare`` counts, per source and signal, the rows where two such files differ
(a null and a false differ). Usage::

    git worktree add /tmp/sig-old HEAD
    PYTHONPATH=/tmp/sig-old python bench/signals_verdicts.py /tmp/old.parquet
    python bench/signals_verdicts.py /tmp/new.parquet
    python bench/signals_verdicts.py --compare /tmp/old.parquet /tmp/new.parquet
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import duckdb
import polars as pl

# bench/signals.py: run as a script, this file's folder is first on sys.path
from signals import CORPUS, generate

import forensics
from forensics.signals import SignalParams, register_functions, signals_relation

SIGNALS = ("script_mix", "code_syntax_error", "repetition", "empty_response", "wrong_language")
"""The text signals compared."""


def verdicts(frame: pl.DataFrame) -> pl.DataFrame:
    """Row number and the text signals of each row of ``frame``, in order."""
    params = SignalParams()
    con = duckdb.connect()
    register_functions(con)
    con.register("frame", frame.with_row_index("i"))
    relation = signals_relation("frame", ["i", *frame.columns], params=params)
    sql = f"SELECT i, {', '.join(SIGNALS)} FROM ({relation}) ORDER BY i"
    return con.sql(sql, params=params.as_parameters(sql)).pl()


def corpus() -> pl.DataFrame:
    """The labelled corpus's responses and prompt languages."""
    rows = [
        json.loads(line)
        for path in sorted(CORPUS.glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
    return pl.DataFrame(
        {
            "response_text": [r["response_text"] for r in rows],
            "prompt_language": [r["prompt_language"] for r in rows],
        },
        schema={"response_text": pl.String, "prompt_language": pl.String},
    )


def compare(a: Path, b: Path) -> int:
    """Print the differing rows per source and signal; return their total."""
    left, right = pl.read_parquet(a), pl.read_parquet(b)
    if left.select("source", "i").equals(right.select("source", "i")) is False:
        raise SystemExit(f"{a} and {b} hold different rows: regenerate both with the same --rows")
    total = 0
    for source in left["source"].unique(maintain_order=True):
        x, y = left.filter(pl.col("source") == source), right.filter(pl.col("source") == source)
        for name in SIGNALS:
            differ = int((x[name].ne_missing(y[name])).sum())
            total += differ
            print(
                f"{source:7s} {name:18s} rows {len(x):>9,}  true {x[name].sum():>7,} / "
                f"{y[name].sum():>7,}  null {x[name].null_count():>9,} / "
                f"{y[name].null_count():>9,}  differ {differ}"
            )
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", nargs="?", type=Path, help="Parquet file to write")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--distinct", action="store_true", help="as bench/signals.py --distinct")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"))
    args = parser.parse_args()
    if args.compare:
        raise SystemExit(1 if compare(*args.compare) else 0)
    if args.out is None:
        parser.error("give the Parquet file to write, or --compare A B")
    print(f"forensics from {Path(forensics.__file__).parent}")
    parts = [
        verdicts(generate(args.rows, args.seed, distinct=args.distinct)).with_columns(
            source=pl.lit("bench")
        ),
        verdicts(corpus()).with_columns(source=pl.lit("corpus")),
    ]
    pl.concat(parts).select("source", "i", *SIGNALS).write_parquet(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
