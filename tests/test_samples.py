"""Request samples: which rows, in which order, with which evidence, and nothing private."""

from __future__ import annotations

import hashlib

import polars as pl
import pytest

import forensics
from forensics.errors import QueryError
from forensics.samples import evidence_html, sample_requests
from tests.conftest import request_row

F = "```"
TEXTS = {
    0: "The capital is Canberra, not ข้อมูล Sydney.",
    1: f"Here:\n{F}python\nx = 1\ndef f(:\n    pass\n{F}\nDone.",
    2: "All fine here.",
    3: "Use <b>bold</b> with care ข้อ.",
}


def _rows():
    rows = []
    for i in range(40):
        text = TEXTS.get(i % 8, "Nothing to see.")
        rows.append(
            request_row(
                i,
                response_text=text,
                prompt_language="en",
                # rows 5, 13, 21...: greedy with a token of rank 4
                temperature=0.0 if i % 8 in (2, 5) else 0.7,
                max_token_rank=4 if i % 8 == 5 else 1,
                user_id=f"u{i % 5}",
            )
        )
    return rows


@pytest.fixture
def db(tmp_path, write_jsonl):
    wb = forensics.open(tmp_path / "s.duckdb")
    wb.ingest(write_jsonl(_rows()), progress=False)
    yield wb.db
    wb.close()


def test_a_sample_holds_ids_times_slices_signals_text_and_evidence(db):
    frame = sample_requests(db, limit=100)
    assert frame.height == 40
    assert frame.columns[:2] == ["request_id", "ts"]
    assert {"model", "platform", "script_mix", "degraded", "response_text"} <= set(frame.columns)
    assert frame.columns[-1] == "evidence"
    by_id = {r["request_id"]: r for r in frame.iter_rows(named=True)}
    thai = by_id["r00000"]
    assert thai["script_mix"] is True
    ((span),) = thai["evidence"]
    assert thai["response_text"][span["start"] : span["end"]] == "ข้อมูล"
    code = by_id["r00001"]
    assert [e["detail"] for e in code["evidence"]] == ["python line 2: invalid syntax"]
    assert code["response_text"][code["evidence"][0]["start"] : code["evidence"][0]["end"]] == (
        "def f(:"
    )
    greedy = by_id["r00005"]
    assert greedy["argmax_violation"] is True
    assert greedy["evidence"] == [
        {
            "signal": "argmax_violation",
            "start": None,
            "end": None,
            "detail": "a token of rank 4 at temperature 0 (greedy: rank 1)",
        }
    ]
    assert by_id["r00002"]["evidence"] == []


def test_the_sample_follows_the_filter_the_limit_and_the_seed(db):
    frame = sample_requests(db, {"model": ["m-a"]}, limit=7)
    assert frame.height == 7
    assert set(frame["model"]) == {"m-a"}
    assert frame.equals(sample_requests(db, {"model": ["m-a"]}, limit=7))
    other = sample_requests(db, {"model": ["m-a"]}, limit=7, seed=1)
    assert set(other["request_id"]) != set(frame["request_id"])
    window = sample_requests(db, {"ts": ("2025-08-10", "2025-08-12")}, limit=100)
    assert window["ts"].dt.day().is_in([10, 11]).all()
    assert sample_requests(db, limit=0).height == 0


def test_requests_with_the_signal_come_first(db):
    frame = sample_requests(db, limit=8, signal="script_mix")
    flagged = db.scalar("SELECT count(*) FROM requests WHERE script_mix")
    assert flagged == 10  # rows 0 and 3 of every 8
    assert frame["script_mix"].to_list() == [True] * 8
    more = sample_requests(db, limit=12, signal="script_mix")
    assert more["script_mix"].to_list() == [True] * 10 + [False] * 2


def test_bad_arguments_say_what_to_do(db):
    with pytest.raises(QueryError, match="unknown signal 'nope'"):
        sample_requests(db, signal="nope")
    with pytest.raises(QueryError, match="limit"):
        sample_requests(db, limit=-1)


def test_privacy_mode_shows_hashed_ids_and_signals_only(tmp_path, write_jsonl):
    with forensics.open(tmp_path / "p.duckdb") as wb:
        wb.ingest(write_jsonl(_rows()), privacy=True, salt="pepper", progress=False)
        frame = sample_requests(wb.db, limit=100, signal="script_mix")
    assert frame.columns == [
        "request_id",
        "ts",
        "script_mix",
        "code_syntax_error",
        "argmax_violation",
        "negative_feedback",
        "low_eval",
        "degraded",
    ]
    expected = {hashlib.sha256(f"r{i:05d}".encode()).hexdigest()[:24] for i in range(40)}
    assert set(frame["request_id"]) == expected
    assert frame["script_mix"].sum() == 10
    text = frame.write_csv()
    assert "ข้อ" not in text
    assert "Canberra" not in text
    assert "m-a" not in text


def test_evidence_is_marked_and_everything_escaped(db):
    frame = sample_requests(db, {"request_id": ["r00003"]})
    row = frame.row(0, named=True)
    marked = evidence_html(row["response_text"], row["evidence"])
    assert marked == (
        "Use &lt;b&gt;bold&lt;/b&gt; with care "
        '<mark class="fx-evidence" data-signal="script_mix" '
        'title="script_mix: Thai run of 3 letters">ข้อ</mark>.'
    )
    assert evidence_html(None, []) == ""
    overlapping = [
        {"signal": "a", "start": 0, "end": 3, "detail": "x"},
        {"signal": "b", "start": 2, "end": 4, "detail": "y"},
    ]
    assert evidence_html("<abcd>", overlapping).count("<mark") == 1
    assert pl.Series(frame["evidence"]).dtype == pl.List(
        pl.Struct({"signal": pl.Utf8, "start": pl.Int64, "end": pl.Int64, "detail": pl.Utf8})
    )
