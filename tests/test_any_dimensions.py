"""Forensics works on whatever dimensions the data has: no model, platform or routing_pool.

End to end on a table with its own dimensions only (``region``, ``tenant``): ingest,
cubes, dashboard data, signatures, report.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

import forensics
from forensics import queries

START = datetime(2025, 8, 1, tzinfo=UTC)
DAYS = 10
ONSET = START + timedelta(days=6)


def _table(n: int = 24_000, seed: int = 3) -> pl.DataFrame:
    """Requests with two dimensions of their own; low eval scores in eu x t3 from day 6."""
    draw = random.Random(seed)
    rows = []
    for i in range(n):
        ts = START + timedelta(seconds=draw.uniform(0, DAYS * 86_400))
        region = draw.choice(["eu", "us", "ap"])
        tenant = draw.choice(["t1", "t2", "t3", "t4", "t5"])
        bad = 0.35 if (region == "eu" and tenant == "t3" and ts >= ONSET) else 0.02
        rows.append(
            {
                "request_id": f"q{i:06d}",
                "ts": ts.isoformat(),
                "region": region,
                "tenant": tenant,
                "eval_score": 0.1 if draw.random() < bad else 0.9,
            }
        )
    return pl.DataFrame(rows)


@pytest.mark.slow
def test_ingest_signatures_and_report_on_a_table_without_model_platform_or_pool(tmp_path):
    path = tmp_path / "spans.csv"
    _table().write_csv(path)
    with forensics.open(tmp_path / "x.duckdb") as wb:
        (f,) = wb.ingest(path).files
        assert (f.status, f.accepted) == ("ingested", 24_000)
        dims = [d.name for d in queries.dimensions(wb.db)]
        assert dims == ["region", "tenant"]
        rates = wb.rates(by="tenant", signal="low_eval")
        assert set(rates["tenant"]) == {"t1", "t2", "t3", "t4", "t5"}
        dashboard = wb.dashboard(signal="low_eval")
        assert dashboard.state().by == "region"  # the first dimension there is
        found = wb.signatures(["low_eval"])
        assert found, "the eu x t3 problem is found"
        first = found[0]
        assert first.predicate == {"region": ["eu"], "tenant": ["t3"]}
        assert abs(first.start - ONSET) <= timedelta(hours=6)
        report = wb.report("no serving columns", signatures=found)
        report.save(tmp_path / "report.html")
        report.save(tmp_path / "report.json")
    html = (tmp_path / "report.html").read_text()
    assert "tenant" in html
    assert "routing_pool" not in html
    assert "platform" not in html
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["signatures"][0]["predicate"] == {"region": ["eu"], "tenant": ["t3"]}


def test_a_file_without_model_platform_or_pool_is_not_refused(tmp_path):
    path = tmp_path / "few.csv"
    _table(50).write_csv(path)
    with forensics.open(tmp_path / "x.duckdb") as wb:
        (f,) = wb.ingest(path).files
        assert (f.status, f.accepted, f.rejected_total) == ("ingested", 50, 0)
        assert wb.sql("SELECT count(model) AS n FROM requests")["n"][0] == 0
