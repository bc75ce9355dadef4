"""Tests of the counted-incident generator and of the root-cause-localisation scorer."""

from __future__ import annotations

import json
import shlex
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from forensics.cli import main
from forensics.simulate.counted import (
    CaseParams,
    generate_case,
    score_case,
    summarize,
    write_case,
)

SMALL = CaseParams(volume=(20_000.0, 40_000.0), leaves=(300, 600), minutes=(150, 170))


@pytest.fixture(scope="module")
def cases():
    return [generate_case(seed, SMALL) for seed in range(6)]


def test_same_seed_same_bytes(tmp_path):
    a = write_case(generate_case(4, SMALL), tmp_path / "a")
    b = write_case(generate_case(4, SMALL), tmp_path / "b")
    assert a.read_bytes() == b.read_bytes()
    assert (tmp_path / "a" / "truth.json").read_bytes() == (
        tmp_path / "b" / "truth.json"
    ).read_bytes()
    assert generate_case(5, SMALL).counts.height != generate_case(4, SMALL).counts.height


def test_cube_shape_follows_the_params(cases):
    for case in cases:
        attributes = case.truth["attributes"]
        assert 4 <= len(attributes) <= 6
        for name, values in attributes.items():
            assert 3 <= len(values) <= 20
            assert set(case.counts[name].unique()) <= set(values)
        assert case.counts.columns == ["minute", *attributes, "requests", "bad"]
        minutes = case.counts["minute"].unique().sort()
        assert minutes.len() == case.truth["minutes"]
        assert (minutes.diff().drop_nulls().dt.total_seconds() == 60).all()
        assert (case.counts["bad"] <= case.counts["requests"]).all()
        assert (case.counts["requests"] > 0).all()


def _rate(counts: pl.DataFrame, element: dict, lo: int, hi: int, start: datetime) -> float:
    minute = (pl.col("minute") - pl.lit(start)).dt.total_minutes()
    rows = counts.filter(
        minute.is_between(lo, hi - 1), *(pl.col(k) == v for k, v in element.items())
    )
    return rows["bad"].sum() / rows["requests"].sum()


def test_truth_elements_are_raised_after_the_onset(cases):
    for case in cases:
        truth = case.truth
        start = datetime.fromisoformat(truth["start"].replace("Z", "+00:00"))
        onset = truth["onset_minute"]
        assert onset >= SMALL.history
        elements = truth["elements"]
        assert 1 <= len(elements) <= len(SMALL.causes)
        for element in elements:
            before = _rate(case.counts, element, onset - 60, onset - 30, start)
            after = _rate(case.counts, element, onset, onset + 5, start)
            assert after > 1.5 * before, (case.seed, element, before, after)


def test_several_causes_never_overlap():
    seen = 0
    for seed in range(30):
        case = generate_case(seed, SMALL)
        elements = case.truth["elements"]
        if len(elements) < 2:
            continue
        seen += 1
        shared = set.intersection(*(set(e) for e in elements))
        # one attribute they all name takes a different value in each: no request is in two
        assert any(len({e[name] for e in elements}) == len(elements) for name in shared), elements
    assert seen >= 5


def test_written_case_reads_back_in_duckdb(tmp_path):
    case = generate_case(2, SMALL)
    path = write_case(case, tmp_path / "case")
    truth = json.loads((tmp_path / "case" / "truth.json").read_text())
    con = duckdb.connect(str(tmp_path / "case.duckdb"))
    con.execute(f"CREATE TABLE counts AS SELECT * FROM read_parquet('{path}')")
    rows, requests = con.execute("SELECT count(*), sum(requests) FROM counts").fetchall()[0]
    con.close()
    assert rows == truth["rows"] == case.counts.height
    assert requests == truth["requests"]
    csv = write_case(case, tmp_path / "csv", format="csv")
    back = pl.read_csv(csv)
    assert back.height == case.counts.height
    assert back["minute"][0].endswith("Z")


@pytest.mark.parametrize(
    ("truth", "candidates", "expected"),
    [
        ([{"a": 1}], [[{"a": 1}]], (True, 1, 0, 0, 1)),
        ([{"a": 1}], [[{"a": 1}, {"b": 2}]], (False, 1, 1, 0, 1)),
        ([{"a": 1, "b": 2}], [[{"a": 1}], [{"a": 1, "b": 2}]], (False, 0, 1, 1, 2)),
        ([{"a": 1}, {"a": 2}], [[{"a": 1}], [{"b": 1}], [{"a": 2}]], (False, 1, 0, 1, 3)),
        ([{"a": 1}], [[{"b": 1}]], (False, 0, 1, 1, None)),
        ([{"a": 1}], [], (False, 0, 0, 1, None)),
    ],
)
def test_score_case(truth, candidates, expected):
    s = score_case(truth, candidates)
    assert (s.exact, s.tp, s.fp, s.fn, s.hit_rank) == expected


def test_summarize_is_micro_averaged():
    scores = [
        score_case([{"a": 1}, {"a": 2}, {"a": 3}], [[{"a": 1}, {"a": 2}, {"a": 3}]]),
        score_case([{"a": 1}], [[{"b": 1}], [{"a": 1}]], onset_error=2),
    ]
    s = summarize(scores, ks=(1, 2))
    # tp 3, fp 1, fn 1: micro precision = recall = 0.75 (a macro mean would give 0.5)
    assert s.precision == pytest.approx(0.75)
    assert s.recall == pytest.approx(0.75)
    assert s.f1 == pytest.approx(0.75)
    assert s.exact == 0.5
    assert s.hit == {1: 0.5, 2: 1.0}
    assert s.onset_within == 0.0
    assert np.isclose(summarize([]).f1, 0.0)


# -- the shipped counted sample ------------------------------------------------------------

COUNTED_SAMPLE = Path(__file__).resolve().parent.parent / "data_samples" / "counted-minutes"


def test_shipped_counted_sample_is_what_the_documented_command_makes(tmp_path):
    readme = (COUNTED_SAMPLE.parent / "README.md").read_text()
    line = next(x for x in readme.splitlines() if x.startswith("forensics simulate --counted"))
    result = CliRunner().invoke(main, [*shlex.split(line)[1:-1], str(tmp_path)])
    assert result.exit_code == 0, result.output
    for name in ("counts.parquet", "mapping.toml", "truth.json"):
        assert (tmp_path / name).read_bytes() == (COUNTED_SAMPLE / name).read_bytes(), (
            f"{name} drifted from the code: rerun the command in data_samples/README.md"
        )


def test_the_readme_counted_example_names_the_injected_cause(tmp_path):
    # The README's worked example, as a user types it: ingest with the shipped
    # mapping, then explain with no time given.
    db = str(tmp_path / "counted.duckdb")
    sample = COUNTED_SAMPLE
    ingest = CliRunner().invoke(
        main,
        ["ingest", str(sample / "counts.parquet"), "--mapping", str(sample / "mapping.toml"),
         "--db", db],
    )  # fmt: skip
    assert ingest.exit_code == 0, ingest.output
    result = CliRunner().invoke(main, ["explain", "--db", db, "--signal", "failed", "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    truth = json.loads((sample / "truth.json").read_text())
    first = answer["candidates"][0]
    assert [e for e in first["elements"]] == truth["elements"]
    assert answer["at"].replace("+00:00", "Z").startswith(truth["onset"][:16])
