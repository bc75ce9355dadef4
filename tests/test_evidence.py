"""Evidence spans: where script_mix and code_syntax_error fire, checked against the detectors."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import duckdb
import polars as pl
import pytest

from forensics.signals import SignalParams, detect
from forensics.signals.evidence import failing_lines, foreign_runs, script_tokens_sql

CORPUS = Path(__file__).resolve().parent / "signal_corpus"
F = "```"
_LETTERS = {"Lu", "Ll", "Lo", "Mn", "Mc"}
"""Letters and marks that belong to a script (not ー or other modifier letters of none)."""


def _cases() -> list[dict]:
    return [
        json.loads(line)
        for path in sorted(CORPUS.glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]


def _tokens(texts: list[str]) -> list[list[dict]]:
    con = duckdb.connect()
    frame = pl.DataFrame({"t": pl.Series(texts, dtype=pl.String)})
    con.register("texts", frame.to_arrow())
    rows = con.execute(f"SELECT {script_tokens_sql('t')} FROM texts").fetchall()
    return [r[0] for r in rows]


@pytest.fixture(scope="module")
def corpus():
    cases = [c for c in _cases() if c["response_text"]]
    texts = [c["response_text"] for c in cases]
    verdicts = detect(
        pl.DataFrame(
            {
                "response_text": pl.Series(texts, dtype=pl.String),
                "prompt_language": pl.Series(
                    [c["prompt_language"] for c in cases], dtype=pl.String
                ),
            }
        )
    )
    return cases, _tokens(texts), verdicts


def test_the_pieces_give_the_text_back(corpus):
    cases, tokens, _ = corpus
    for case, pieces in zip(cases, tokens, strict=True):
        assert "".join(p["t"] for p in pieces) == case["response_text"], case["id"]


def test_a_response_has_foreign_runs_exactly_when_script_mix_fires(corpus):
    cases, tokens, verdicts = corpus
    for case, pieces, fired in zip(cases, tokens, verdicts["script_mix"], strict=True):
        runs = foreign_runs(pieces, case["prompt_language"])
        assert bool(runs) == (fired is True), (case["id"], runs)


def test_the_runs_found_are_the_ones_inserted(corpus):
    """The corrupted cases' notes say which runs were inserted and where (those the
    detector finds: it misses a few by design, e.g. a run longer than a short answer)."""
    cases, tokens, verdicts = corpus
    checked = 0
    for case, pieces, fired in zip(cases, tokens, verdicts["script_mix"], strict=True):
        inserted = re.findall(r"'([^']+)' \((\d+) chars at offset (\d+)\)", case["note"])
        if not inserted or case["script_mix"] is not True or fired is not True:
            continue
        text = case["response_text"]
        spans = foreign_runs(pieces, case["prompt_language"])
        for run, _length, offset in inserted:
            at = int(offset)
            assert text[at : at + len(run)] == run, case["id"]  # the note is right
            letters = [at + i for i, ch in enumerate(run) if unicodedata.category(ch) in _LETTERS]
            assert all(any(s.start <= i < s.end for s in spans) for i in letters), (
                case["id"],
                run,
                [(text[s.start : s.end], s.detail) for s in spans],
            )
        checked += 1
    assert checked >= 50


def test_thresholds_are_the_detectors():
    text = "Result: ข้อ ok"
    pieces = _tokens([text])[0]
    assert foreign_runs(pieces, "en", params=SignalParams(script_mix_min_run=3))
    assert not foreign_runs(pieces, "en", params=SignalParams(script_mix_min_run=4))
    (span,) = foreign_runs(pieces, "en")
    assert (text[span.start : span.end], span.detail) == ("ข้อ", "Thai run of 3 letters")


def test_a_code_block_has_a_failing_line_exactly_when_code_syntax_error_fires(corpus):
    cases, _, verdicts = corpus
    for case, fired in zip(cases, verdicts["code_syntax_error"], strict=True):
        lines = failing_lines(case["response_text"])
        assert bool(lines) == (fired is True), (case["id"], lines)


@pytest.mark.parametrize(
    ("text", "line", "detail"),
    [
        (f"Intro\n{F}python\nx = 1\ndef f(:\n    pass\n{F}", "def f(:", "python line 2"),
        (f'{F}json\n{{"a": 1,\n "b": }}\n{F}', ' "b": }', "json line 2"),
        (f"{F}jsonl\n{{}}\n{{bad}}\n{F}", "{bad}", "jsonl line 2"),
        (f"- item\n  {F}python\n  ok = 1\n  oops(\n  {F}", "  oops(", "python line 2"),
        (f"{F}python\r\nok = 1\r\nbad(\r\n{F}", "bad(", "python line 2"),
        (f"{F}py\n>>> x = 1\n1\n>>> y = (\n{F}", ">>> y = (", "python line 3"),
        (f"{F}python\nok = 1\n{F}\n{F}python\nstill (\n{F}", "still (", "python line 1"),
    ],
)
def test_failing_line_by_hand(text, line, detail):
    (span,) = failing_lines(text)
    assert text[span.start : span.end] == line
    assert span.detail.startswith(detail)


def test_blocks_the_detector_does_not_check_give_no_line():
    long = f"{F}python\n" + "x = (\n" * 10 + f"{F}"
    assert failing_lines(long, params=SignalParams(code_max_chars=5)) == []
    assert failing_lines(f"{F}python\ndef f(:") == []  # open fence: not checked
    assert failing_lines(f"{F}bash\nif [ x\n{F}") == []
