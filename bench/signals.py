"""Signals benchmark: the text signals vs a bare Polars regex scan of the same text, same run.

Generates N responses (seeded) from the hand-written texts of tests/signal_corpus/,
with a documented traffic mix (``MIX`` below), loads them into an in-memory DuckDB
table, and times, as the median of --repeat runs:

  floor:     one Polars ``str.contains`` with a foreign-script regex over the text
  reference: the same regex scan in DuckDB (``regexp_matches``), to tell the
             engine's cost from the detectors'
  signals:   the SQL ingest evaluates (``forensics.signals.signals_relation``) over
             the same rows: every text signal at once (script_mix, code_syntax_error,
             repetition, empty_response, wrong_language), the first two together (the
             earlier record's "both"), then each alone
  bounds:    what no version of the detectors could avoid, to tell how far the
             target is reachable: the floor on every core; script_mix's first
             scan alone (a letter foreign to the row's language, the one step
             every row needs) in DuckDB and in Polars; and the copy of the text
             from DuckDB to Polars that computing signals in Polars would add; and
             repetition and wrong_language with their Python step stubbed (their
             SQL alone, and how many rows it hands to Python)

and prints rows per second, the ratio to the floor (target: signals <= 2x floor) and
the CPU time of the process (every thread: steadier than seconds on a shared machine).
Every run starts with the Python steps' remembered verdicts forgotten
(``forensics.signals.forget_verdicts``), as ingest of new data does; before 2026-12-05
14:00 code_syntax_error's parses stayed remembered from one run to the next.
Runs are interleaved (floor, signals, floor, ...) so that load from elsewhere hits
both alike. The floor runs on one core; ``--threads 1`` compares per core. Usage:

    python bench/signals.py [--rows 1000000] [--repeat 3] [--seed 1] [--threads N] [--distinct]

``--distinct`` makes every response but the blank ones distinct (real logs repeat few
answers; the Python steps judge each distinct input once).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import time
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.compute as pc

import forensics.signals
from forensics.signals import (
    SignalParams,
    register_functions,
    repetition,
    signals_relation,
    wrong_language,
)
from forensics.signals._detector import register_arrow_function
from forensics.signals.script_mix import (
    LANGUAGE_SCRIPTS,
    PREFILTERED,
    SCRIPT_BLOCKS,
    foreign_letter_pattern,
    script_mix_stages,
)

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "signal_corpus"

FLOOR_REGEX = r"[\p{Thai}\p{Han}]"
"""The floor: the cheapest scan that could find a foreign-script letter."""

TEXT_SIGNALS = ("script_mix", "code_syntax_error", "repetition", "empty_response", "wrong_language")
"""The signals that read the text (truncated reads token counts and finish_reason only)."""

MIX = {
    "languages": {"en": 0.70, "de": 0.05, "ru": 0.05, "zh": 0.06, "ja": 0.05, "th": 0.04, "ko": 0.03, "ar": 0.02},
    "missing_language": 0.05,
    "paragraphs": (1, 5),
    "code_block": 0.12,
    "lookalike": 0.03,
    "corrupted_english": 0.01,
    "loop": 0.005,
    "blank": 0.003,
    "other_language": 0.01,
}  # fmt: skip
"""Traffic mix: prompt languages; share of rows without prompt_language; paragraphs per
response (drawn from the corpus's texts of that language written in its own scripts);
share of responses with a fenced code block (the corpus's Python, JSON, bash, JS...
blocks); share of responses carrying a legitimate look-alike paragraph (a quoted or
glossed foreign word, a translation, Greek or Han quoted in a native answer); share of
English responses corrupted with a run of 1-20 Thai or Han letters at a random position;
share of responses ending in a degenerate loop (a word of the answer repeated 300 times),
share of blank responses, share answered in another language than their prompt's (the
paragraphs drawn from another language's pool)."""

_LOOKALIKES = ("lookalike_quoted", "lookalike_code_unicode", "lookalike_translation")
"""Look-alike categories the mix draws from (those of the corpus's first files)."""

_CATEGORY_LANGUAGE = {
    "english": "en",
    "german": "de",
    "russian": "ru",
    "chinese": "zh",
    "japanese": "ja",
    "thai": "th",
    "korean": "ko",
    "arabic": "ar",
}
_FENCED = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n.*?^[ \t]*\1[ \t]*$", re.M | re.S)
_FOREIGN_LETTERS = re.compile(r"[\u0e01-\u0e4e\u4e00-\u9fff]")


def _in_own_scripts(text: str, lang: str) -> bool:
    """Whether every tracked-script letter of ``text`` belongs to the language's scripts."""
    own = set(LANGUAGE_SCRIPTS[lang])
    for ch in text:
        cp = ord(ch)
        for name, blocks in SCRIPT_BLOCKS.items():
            if name not in own and any(lo <= cp <= hi for lo, hi in blocks) and ch.isalpha():
                return False
    return True


def _load_pools() -> tuple[dict[str, list[str]], list[str], list[str], list[str]]:
    """Paragraphs per language (only their own scripts), look-alikes, code blocks, foreign letters."""
    pools: dict[str, list[str]] = {lang: [] for lang in _CATEGORY_LANGUAGE.values()}
    lookalikes, blocks, foreign = [], [], []
    for path in sorted(CORPUS.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            case = json.loads(line)
            text, category = case["response_text"], case["category"]
            if not text:
                continue
            blocks += [m.group(0) for m in _FENCED.finditer(text)]
            if _FENCED.search(text):
                continue
            if category in _CATEGORY_LANGUAGE:
                lang = _CATEGORY_LANGUAGE[category]
                (pools[lang] if _in_own_scripts(text, lang) else lookalikes).append(text)
            elif category in _LOOKALIKES:
                lookalikes.append(text)
            if category in ("thai", "chinese"):
                foreign.append("".join(_FOREIGN_LETTERS.findall(text)))
    return pools, lookalikes, blocks, foreign


def generate(rows: int, seed: int, *, distinct: bool = False) -> pl.DataFrame:
    """Responses and prompt languages following ``MIX``; same seed, same frame.

    ``distinct`` opens each response but the blank ones with its row number (``#12 ``),
    so that no two are equal, as in real logs (the mix alone repeats some: about half
    of 200,000 are distinct).
    """
    rng = random.Random(seed)
    pools, lookalikes, blocks, foreign = _load_pools()
    langs = list(MIX["languages"])
    weights = list(MIX["languages"].values())
    lo, hi = MIX["paragraphs"]
    texts: list[str] = []
    tags: list[str | None] = []
    for lang in rng.choices(langs, weights, k=rows):
        written = lang
        if rng.random() < MIX["other_language"]:
            written = rng.choice([other for other in langs if other != lang])
        parts = [rng.choice(pools[written]) for _ in range(rng.randint(lo, hi))]
        if rng.random() < MIX["code_block"]:
            parts.insert(rng.randint(0, len(parts)), rng.choice(blocks))
        if rng.random() < MIX["lookalike"]:
            parts.insert(rng.randint(0, len(parts)), rng.choice(lookalikes))
        text = "\n\n".join(parts)
        if lang == "en" and rng.random() < MIX["corrupted_english"]:
            source = rng.choice(foreign)
            k = rng.randint(1, 20)
            start = rng.randint(0, max(0, len(source) - k))
            at = rng.randint(0, len(text))
            text = text[:at] + source[start : start + k] + text[at:]
        if rng.random() < MIX["loop"]:
            words = text.split() or ["ok"]
            text = text + " " + (rng.choice(words) + " ") * 300
        if rng.random() < MIX["blank"]:
            text = rng.choice(["", " ", "\n\n"])
        texts.append(f"#{len(texts)} {text}" if distinct and text.strip() else text)
        tags.append(None if rng.random() < MIX["missing_language"] else lang)
    return pl.DataFrame(
        {"response_text": texts, "prompt_language": tags},
        schema={"response_text": pl.String, "prompt_language": pl.String},
    )


def _first_scan_patterns(params: SignalParams) -> dict[str, str]:
    """Language -> the regex of script_mix's first scan, for the languages that have one."""
    return {
        lang: foreign_letter_pattern(scripts, params.script_mix_greek_min_run)
        for lang, scripts in LANGUAGE_SCRIPTS.items()
        if scripts in PREFILTERED
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--threads", type=int, default=None, help="DuckDB threads (default: DuckDB's, one per core)"
    )
    parser.add_argument(
        "--distinct", action="store_true", help="open each response with its row number"
    )
    args = parser.parse_args()

    t = time.perf_counter()
    frame = generate(args.rows, args.seed, distinct=args.distinct)
    mb = frame["response_text"].str.len_bytes().sum() / 1e6
    print(
        f"generated {args.rows:,} responses ({frame['response_text'].n_unique():,} distinct, "
        f"{mb:.0f} MB of text) in {time.perf_counter() - t:.1f} s"
    )

    con = duckdb.connect()
    if args.threads is not None:
        con.execute(f"SET threads = {int(args.threads)}")
    threads = con.execute("SELECT current_setting('threads')").fetchall()[0][0]
    register_functions(con)
    con.register("generated", frame)
    con.execute("CREATE TABLE responses AS SELECT * FROM generated")
    con.unregister("generated")
    params = SignalParams()
    relation = signals_relation("responses", frame.columns, params=params)

    def floor() -> int:
        return frame.select(pl.col("response_text").str.contains(FLOOR_REGEX).sum()).item()

    cores = os.cpu_count() or 1
    slices = [
        frame.slice(i, -(-args.rows // cores)) for i in range(0, args.rows, -(-args.rows // cores))
    ]

    def floor_every_core() -> int:
        counts = [
            s.lazy().select(pl.col("response_text").str.contains(FLOOR_REGEX).sum()) for s in slices
        ]
        return pl.concat(counts, parallel=True).collect().sum().item()

    # script_mix's first scan: the regex for each row's language (as the SQL picks it).
    patterns = frame.select(
        pl.col("prompt_language")
        .replace_strict(
            _first_scan_patterns(params),
            default=foreign_letter_pattern((), params.script_mix_greek_min_run),
        )
        .alias("pattern"),
        "response_text",
    )

    def first_scan_polars() -> int:
        return patterns.select(pl.col("response_text").str.contains(pl.col("pattern")).sum()).item()

    first_scan = "SELECT * FROM responses"
    stages = script_mix_stages("response_text", "prompt_language", params)
    for stage in stages[:2]:
        cols = ", ".join(f"{expr} AS {name}" for name, expr in stage)
        first_scan = f"SELECT *, {cols} FROM ({first_scan})"
    first_scan = f"SELECT count({stages[1][-1][0]}) FROM ({first_scan})"

    def first_scan_duckdb() -> int:
        return con.execute(first_scan, params.as_parameters(first_scan)).fetchall()[0][0]

    def to_polars() -> int:
        return con.sql("SELECT response_text, prompt_language FROM responses").pl().height

    def signals(*names: str):
        counts = ", ".join(f"count(*) FILTER (WHERE {n})" for n in names)
        sql = f"SELECT {counts} FROM ({relation})"
        return lambda: con.execute(sql, params.as_parameters(sql)).fetchall()[0]

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"Python {platform.python_version()}, DuckDB {duckdb.__version__} ({threads} threads), "
        f"Polars {pl.__version__}; "
        f"median of {args.repeat}; load average before: {os.getloadavg()[0]:.2f}"
    )
    duckdb_scan = (
        "SELECT count(*) FILTER (WHERE regexp_matches(response_text, $pattern)) FROM responses"
    )
    runs = {
        "floor (Polars str.contains)": floor,
        "same scan in DuckDB (reference)": lambda: con.execute(
            duckdb_scan, {"pattern": FLOOR_REGEX}
        ).fetchall()[0][0],
        "all text signals": signals(*TEXT_SIGNALS),
        "script_mix + code_syntax_error": signals("script_mix", "code_syntax_error"),
        "script_mix": signals("script_mix"),
        "code_syntax_error": signals("code_syntax_error"),
        "repetition": signals("repetition"),
        "empty_response": signals("empty_response"),
        "wrong_language": signals("wrong_language"),
        "floor on every core (Polars)": floor_every_core,
        "script_mix first scan (DuckDB)": first_scan_duckdb,
        "same first scan (Polars, 1 core)": first_scan_polars,
        "text DuckDB -> Polars (.pl())": to_polars,
    }
    # Interleaved, so that a change of load on the machine hits floor and signals alike.
    seconds: dict[str, list[float]] = {label: [] for label in runs}
    cpu: dict[str, list[float]] = {label: [] for label in runs}
    results: dict[str, object] = {}
    wrong_language.identify("The identifier's model is loaded before the first run.")
    for _ in range(args.repeat):
        for label, fn in runs.items():
            _forget()
            t, c = time.perf_counter(), time.process_time()
            results[label] = fn()
            seconds[label].append(time.perf_counter() - t)
            cpu[label].append(time.process_time() - c)
    floor_s = statistics.median(seconds["floor (Polars str.contains)"])
    every_core_s = statistics.median(seconds["floor on every core (Polars)"])
    print(
        f"{'':34s} {'seconds':>7s} {'rows/s':>12s}   {'x floor':>7s} {'x every-core floor':>18s}"
        f" {'CPU s':>6s}"
    )
    for label in runs:
        median = statistics.median(seconds[label])
        print(
            f"{label:34s} {median:7.2f} {args.rows / median:12,.0f}   "
            f"{median / floor_s:7.2f} {median / every_core_s:18.2f} "
            f"{statistics.median(cpu[label]):6.2f}   true: {results[label]}"
        )
    for name, seconds_sql, reached in _sql_only(con, relation, params, args.repeat):
        print(
            f"{name + ', Python step stubbed':34s} {seconds_sql:7.2f} {args.rows / seconds_sql:12,.0f}"
            f"   {seconds_sql / floor_s:7.2f} {seconds_sql / every_core_s:18.2f}   "
            f"rows reaching Python: {reached // args.repeat:,}"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def _forget() -> None:
    """Forget the Python steps' remembered verdicts: every run starts cold, as on new data.

    Code before ``forget_verdicts`` remembered only code_syntax_error's parses.
    """
    forget = getattr(forensics.signals, "forget_verdicts", None)
    if forget is not None:
        forget()
        return
    from forensics.signals import code_syntax_error

    code_syntax_error._remembered_block.cache_clear()
    code_syntax_error._remembered.cache_clear()


_PYTHON_STEPS = {
    "repetition": (repetition, ["VARCHAR", "VARCHAR", "DOUBLE", "BIGINT", "DOUBLE"]),
    "wrong_language": (wrong_language, ["VARCHAR", "VARCHAR", "VARCHAR", "BIGINT", "DOUBLE"]),
}
"""The detectors whose SQL hands some rows to Python: module and UDF argument types."""


def _counting_stub(reached: list[int]):
    """A no-op UDF of five arguments: false on every row reaching it; counts them."""

    def stub(text, _prompt_or_lang, _c, _d, _e):
        reached[0] += len(text)
        return pc.is_null(text)  # false: a row reaching it has text

    return stub


def _sql_only(
    con: duckdb.DuckDBPyConnection, relation: str, params: SignalParams, repeat: int
) -> list[tuple[str, float, int]]:
    """Each detector of ``_PYTHON_STEPS`` timed with its Python step replaced by a no-op.

    Tells the SQL's share from the Python step's, and counts the rows reaching Python.
    The real functions are registered again afterwards.
    """
    out = []
    for name, (module, types) in _PYTHON_STEPS.items():
        reached = [0]

        stub = _counting_stub(reached)
        register_arrow_function(con, module.FUNCTION_NAME, stub, types)
        sql = f"SELECT count(*) FILTER (WHERE {name}) FROM ({relation})"
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            con.execute(sql, params.as_parameters(sql)).fetchall()
            times.append(time.perf_counter() - t)
        module.register(con)
        out.append((name, statistics.median(times), reached[0]))
    return out


if __name__ == "__main__":
    main()
