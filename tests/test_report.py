"""Investigation reports: every format, the JSON contract, safety, privacy, the CLI and Chromium.

The databases are built in tmp_path from simulated scenarios with a known bug,
so each report has at least one signature. The payload database carries
``<script>`` and attribute-breaking ``<img onerror>`` payloads in dimension
values (the bug's own slice among them), change events, rejected rows, the
title, a note and a pinned view; the browser tests open its report in Debian's
headless Chromium and prove that nothing ran.
"""

from __future__ import annotations

import html
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

import forensics
from forensics.cli import main
from forensics.errors import ConfigError, QueryError
from forensics.findings import Note, View
from forensics.report import TOP_SLICES, Investigation, UnsafeSvgError, safe_svg
from forensics.signature import signatures_to_json
from forensics.simulate import simulate
from tests.conftest import REPO, SALT, same_signatures

SCRIPT = "<script>window.__pwned='script';alert('script')</script>"
IMG = "\"><img src=x onerror=\"window.__pwned='img';alert('img')\">"
SVG = "<svg onload=\"window.__pwned='svg'\"></svg>' onmouseover='window.__pwned=1"
PAYLOADS = (SCRIPT, IMG, SVG)
SECRET = "PRIVATE-ANSWER-7f3a9 the customer's account number"
BAD_SERVER = "gpu-us-east-05"
"""The bad replica of the bad-replica scenario (seed 1): the signature's slice."""

ARTIFACTS = REPO / "build" / "artifacts"


# -- databases ------------------------------------------------------------------------


def _simulated(out: Path) -> Path:
    simulate("bad-replica", rows=20_000, seed=1, out=out)
    return out


def _load(db: Path, *paths: Path, events: Path | None = None, **options) -> Path:
    with forensics.open(db) as wb:
        wb.ingest(*paths, errors="collect", progress=False, **options)
        if events is not None:
            wb.ingest_events(events)
    return db


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    return _simulated(tmp_path_factory.mktemp("sim") / "bad-replica")


@pytest.fixture(scope="module")
def bug_db(sim, tmp_path_factory) -> Path:
    return _load(
        tmp_path_factory.mktemp("db") / "bug.duckdb",
        sim / "requests.parquet",
        events=sim / "events.csv",
    )


@pytest.fixture(scope="module")
def investigation(bug_db):
    wb = forensics.open(bug_db, read_only=True)
    inv = Investigation.default(wb, title="Bad replica")
    assert inv.signatures, "the simulated bad replica must be found"
    inv.add_note("The replica was drained.\n\nNothing else changed.", title="Conclusion")
    timeline = wb.timeline("low_eval", by="server_id", grain="day")
    from forensics import charts

    inv.add_chart(
        charts.timeline_chart(timeline.rates, signal="low_eval", by=["server_id"]),
        title="low_eval by server",
        calls=["wb.timeline('low_eval', by='server_id', grain='day')"],
    )
    yield inv
    wb.close()


def _payload_inputs(sim: Path, out: Path) -> tuple[Path, Path, Path]:
    """The simulated logs with payloads as dimension values, events and rejected rows."""
    out.mkdir(parents=True, exist_ok=True)
    frame = pl.read_parquet(sim / "requests.parquet").with_columns(
        pl.col("server_id").replace(BAD_SERVER, SCRIPT),
        pl.col("model").replace("nova-2", IMG),
        pl.col("region").replace("eu-west", SVG),
    )
    requests = out / "requests.parquet"
    frame.write_parquet(requests)
    bad = out / "bad.jsonl"
    bad.write_text(
        "".join(
            json.dumps(
                {
                    "request_id": f"bad-{i}",
                    "ts": f"not a time {payload}",
                    "model": payload,
                    "platform": "gpu",
                    "routing_pool": "standard",
                }
            )
            + "\n"
            for i, payload in enumerate(PAYLOADS)
        )
    )
    events = out / "events.csv"
    pl.read_csv(sim / "events.csv").with_columns(
        pl.lit(f"drained {SCRIPT} {IMG}").alias("description"),
        pl.lit(f"server_id={SCRIPT}").alias("scope"),
    ).write_csv(events)
    return requests, bad, events


@pytest.fixture(scope="module")
def payload_investigation(sim, tmp_path_factory):
    folder = tmp_path_factory.mktemp("payload")
    requests, bad, events = _payload_inputs(sim, folder / "in")
    db = _load(folder / "payload.duckdb", requests, bad, events=events)
    wb = forensics.open(db, read_only=True)
    inv = Investigation.default(wb, title=f"Report {SCRIPT}")
    assert any(SCRIPT in str(s.predicate) for s in inv.signatures), (
        "the payload must reach a signature's predicate for the test to mean anything"
    )
    inv.add_note(f"note {SCRIPT} and {IMG}", title=f"title {IMG}")
    inv.add_view(
        View(
            title=f"view {SCRIPT}",
            signal="low_eval",
            where={"model": [IMG]},
            note=f"pinned {IMG}",
            calls=(f"wb.rates(where={{'model': [{IMG!r}]}})",),
        )
    )
    yield inv
    wb.close()


# -- the default investigation --------------------------------------------------------


def test_default_investigation_finds_the_bug_and_gathers_evidence_once(investigation, bug_db):
    inv = investigation
    with forensics.open(bug_db, read_only=True) as wb:
        again = wb.signatures()
    assert same_signatures([s.to_dict() for s in inv.signatures], [s.to_dict() for s in again])
    assert any(s.predicate.get("server_id") == [BAD_SERVER] for s in inv.signatures)
    assert set(inv.evidence) == {s.id for s in inv.signatures}
    assert inv.overview is not None
    for sig in inv.signatures:
        ev = inv.evidence[sig.id]
        assert ev.timeline.calls
        assert ev.comparison is not None
        assert ev.exposure is not None
        assert 0 < ev.top_slices.height <= TOP_SLICES
    assert inv.search is not None
    assert inv.search["call"] == "wb.signatures()"
    assert repr(inv).startswith(f"<Investigation 'Bad replica': {len(inv.signatures)} signature")


def test_each_signature_shows_a_few_of_its_requests_with_their_evidence(
    investigation, bug_db, tmp_path
):
    from forensics.report.evidence import EXAMPLES

    text = investigation.to_html()
    markdown = investigation.to_markdown(tmp_path)
    with forensics.open(bug_db, read_only=True) as wb:
        for sig in investigation.signatures:
            ev = investigation.evidence[sig.id]
            assert ev.examples is not None
            assert 0 < ev.examples.height <= EXAMPLES
            ids = ev.examples["request_id"].to_list()
            # each is a request of its slice and window with its signal
            inside = wb.db.frame(
                "SELECT request_id, " + f'"{sig.signal}" AS flagged FROM requests '
                "WHERE list_contains($ids, request_id)",
                {"ids": ids},
            )
            assert sorted(inside["request_id"].to_list()) == sorted(ids)
            assert inside["flagged"].all()
            assert all(sig.start <= t for t in ev.examples["ts"].to_list())
            for excerpt in ev.examples["excerpt"].to_list():
                assert html.escape(excerpt, quote=True) in text
            assert f"sig-{sig.id.lower()}-examples" in text.lower()
            assert ids[0] in markdown
            assert ev.to_dict()["examples"][0]["request_id"] == ids[0]


def test_no_report_module_imports_the_workbench():
    """The report takes what it needs from the query and separation layers, never the facade
    (the facade imports the report: the other way round would be a circle)."""
    import ast

    for path in sorted((REPO / "forensics" / "report").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert not [n for n in names if n.startswith("forensics.workbench")], path.name


def test_a_report_needs_only_the_database_not_the_workbench(bug_db):
    """Anything holding the open database will do (``wb.db``): no Workbench method is called."""
    from types import SimpleNamespace

    with forensics.open(bug_db, read_only=True) as wb:
        inv = Investigation.default(SimpleNamespace(db=wb.db), title="From the database")
        assert inv.signatures
        assert set(inv.evidence) == {s.id for s in inv.signatures}
        assert inv.provenance.requests == wb.counts()["requests"]
        assert "From the database" in inv.to_html()


def test_every_call_under_a_figure_reproduces_its_numbers(investigation):
    wb = investigation.wb
    for sig in investigation.signatures:
        ev = investigation.evidence[sig.id]
        (compare_call,) = ev.comparison.calls
        compared = eval(compare_call, {"wb": wb})  # the call as printed in the report
        assert compared.head(TOP_SLICES).equals(ev.top_slices)
        (exposure_call,) = ev.exposure_figure.calls
        exposure = eval(exposure_call, {"wb": wb})
        assert exposure.summary().equals(ev.exposure.summary())
        (timeline_call,) = ev.timeline.calls
        timeline = eval(timeline_call, {"wb": wb})
        inside = timeline.rates.filter(
            (pl.col("ts") >= sig.start.replace(hour=0)) & (pl.col("ts") < sig.end)
        )
        assert inside["k"].sum() >= next(m.k_inside for m in sig.symptoms if m.signal == sig.signal)


def test_provenance_reads_hashes_counts_and_the_simulation_seed(investigation, sim):
    prov = investigation.provenance
    (file,) = prov.files
    assert file["path"] == str(sim / "requests.parquet")
    assert re.fullmatch(r"[0-9a-f]{64}", file["sha256"])
    assert file["rows_read"] == file["accepted"] + file["rejected"] + file["duplicates"] == 20_000
    truth = json.loads((sim / "truth.json").read_text())
    assert prov.simulations == (
        {
            "file": str(sim / "requests.parquet"),
            "scenario": "bad-replica",
            "seed": 1,
            "rows": 20_000,
            "truth": str(sim / "truth.json"),
        },
    )
    assert truth["seed"] == 1
    import duckdb

    assert prov.packages["duckdb"] == duckdb.__version__
    assert prov.requests == 20_000
    assert prov.events == 1
    assert prov.event_files == ({"source_file": str(sim / "events.csv"), "events": 1},)
    assert not prov.privacy
    assert {"output_tokens", "eval_score"} <= set(prov.outcomes)
    assert not set(prov.outcomes) & set(prov.dimensions)


def test_the_software_table_lists_dependencies_only():
    """Every package the report records is installed and declared: none reads 'not installed'."""
    import tomllib

    from forensics.report import PACKAGES, _versions

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[<>=!~ \[]", d, maxsplit=1)[0] for d in project["dependencies"]}
    assert set(PACKAGES) - {project["name"]} <= declared
    assert "not installed" not in _versions(PACKAGES).values()


def test_the_reproduce_section_names_the_real_files(investigation, sim, bug_db):
    """Every command can be pasted as it is: no placeholder where a path belongs."""
    page = investigation.to_html()
    assert "EVENTS_FILE" not in page
    assert f"forensics ingest-events {sim / 'events.csv'} --db {bug_db}   # 1 change events" in (
        page
    )
    assert f"forensics ingest {sim / 'requests.parquet'} --db {bug_db}" in page


def test_no_seed_is_reported_without_a_matching_truth_file(sim, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "requests.parquet").write_bytes((sim / "requests.parquet").read_bytes())
    truth = json.loads((sim / "truth.json").read_text())
    (copy / "truth.json").write_text(json.dumps({**truth, "rows": 19_999}))
    with forensics.open(_load(tmp_path / "c.duckdb", copy / "requests.parquet")) as wb:
        assert Investigation(wb).provenance.simulations == ()


# -- formats --------------------------------------------------------------------------


def _tags(html_text: str) -> list[tuple[str, list[str]]]:
    """Every element of an HTML document as the browser's parser sees it: tag, attribute names."""
    from html.parser import HTMLParser

    found: list[tuple[str, list[str]]] = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, [name for name, _ in attrs]))

    Collect().feed(html_text)
    return found


def _ids(html_text: str) -> list[str]:
    return re.findall(r'\sid="([^"]+)"', html_text)


def test_html_is_one_offline_document_with_contents_and_a_print_stylesheet(investigation):
    text = investigation.to_html()
    assert text.startswith("<!DOCTYPE html>")
    assert "Content-Security-Policy" in text
    assert "default-src 'none'" in text
    assert "<script" not in text.lower()
    urls = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", text)
    assert all(u.startswith("#") for u in urls), [u for u in urls if not u.startswith("#")]
    assert "@import" not in text
    assert "url(http" not in text
    assert "@media print" in text
    assert "@page" in text
    ids = _ids(text)
    assert len(ids) == len(set(ids)), "ids repeat across inline SVGs"
    for target in re.findall(r'href="#([^"]+)"', text):
        assert target in ids, f"contents link to #{target} has no target"
    nav = re.search(r'<nav class="fx-toc".*?</nav>', text, re.S).group(0)
    for sig in investigation.signatures:
        assert f'href="#sig-{sig.id}"' in nav
    figures = text.count("<figure ")
    per_signature = 3
    assert figures == 1 + per_signature * len(investigation.signatures) + 1
    assert text.count("<svg ") == figures
    assert "Conclusion" in text
    assert "The replica was drained." in text


def test_the_report_leads_with_its_root_causes_in_every_format(investigation, tmp_path):
    inv = investigation
    assert inv.root_causes
    n, m = len(inv.root_causes), len(inv.signatures)
    said = f"{n} root cause{'s' if n != 1 else ''} affecting {m} slice{'s' if m != 1 else ''}"
    page = inv.to_html()
    summary = page.split('id="summary"', 1)[1]
    assert summary.index(said) < summary.index('href="#sig-S1"'), "the headline comes first"
    for cause in inv.root_causes:
        assert f'id="cause-{cause.id}"' in page
        assert f'href="#cause-{cause.id}"' in page
        for why in cause.why:
            assert html.escape(why, quote=True) in page
    markdown = inv.save(tmp_path / "r.md").read_text()
    assert f"**{said}.**" in markdown
    data = json.loads(inv.to_json())
    assert [c["id"] for c in data["root_causes"]] == [c.id for c in inv.root_causes]
    assert sorted(s for c in data["root_causes"] for s in c["signatures"]) == sorted(
        s.id for s in inv.signatures
    )
    for cause in data["root_causes"]:
        assert {"id", "signatures", "shared_conditions", "events", "why"} <= set(cause)


def test_the_timeline_lists_every_event_with_its_description(investigation, tmp_path):
    """The chart marks events E1, E2...; the table under it says what each one was."""
    events = investigation.events
    assert events.height
    page = investigation.to_html()
    timeline = page.split('id="timeline"', 1)[1].split('id="sig-', 1)[0]
    for i, row in enumerate(events.sort("ts").iter_rows(named=True), 1):
        assert f"<td>E{i}</td>" in timeline or f">E{i}</td>" in timeline
        assert html.escape(row["description"], quote=True) in timeline
    drawn = json.dumps(investigation.overview.chart)
    assert "E1 " in drawn
    data = json.loads(investigation.to_json())
    assert [e["label"] for e in data["events"]] == [f"E{i}" for i in range(1, events.height + 1)]


def test_html_shows_every_number_with_its_interval_and_times_in_utc(investigation):
    text = investigation.to_html()
    for sig in investigation.signatures:
        low, high = (100 * x for x in sig.ci)
        assert f"+{100 * sig.excess_rate:.2f} pp" in text
        assert f"[+{low:.2f}" in text or f"[+{low:.3f}" in text, (low, high)
        assert sig.start.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ") in text
    assert "forensics ingest" in text
    assert "forensics report --db" in text
    assert "--seed 1" in text


def test_markdown_writes_png_charts_beside_it_with_relative_links(investigation, tmp_path):
    path = investigation.save(tmp_path / "out" / "report.md")
    text = path.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == text.count("**Figure ") == 2 + 3 * len(investigation.signatures)
    for link in links:
        assert not Path(link).is_absolute()
        assert link.startswith("report_files/")
        png = path.parent / link
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size > 5_000
    for widths in _table_widths(text):
        assert len(widths) == 1, widths
    assert "<script" not in text


def _table_widths(text: str) -> list[set[int]]:
    """Cells per row of every Markdown table (unescaped pipes)."""
    tables = [b for b in text.split("\n\n") if b.startswith("| ")]
    return [
        {len(re.split(r"(?<!\\)\|", row.strip())) for row in t.splitlines() if row.startswith("|")}
        for t in tables
    ]


def _outside_code(markdown: str) -> str:
    """The Markdown with fenced blocks and code spans removed (their text is shown literally)."""
    without_fences = re.sub(r"^(`{3,})[^\n]*\n.*?^\1$", "", markdown, flags=re.S | re.M)
    return re.sub(r"(`+) .*? \1", "", without_fences)


def test_markdown_tables_keep_their_columns_whatever_the_values(payload_investigation, tmp_path):
    text = payload_investigation.to_markdown(tmp_path / "assets")
    for widths in _table_widths(text):
        assert len(widths) == 1, widths
    prose = _outside_code(text)
    assert SCRIPT in text  # shown literally, inside code
    for tag in ("<img", "<script", "<svg"):
        assert tag not in prose


def test_json_holds_the_findings_with_signatures_in_the_cli_contract(investigation, tmp_path):
    path = investigation.save(tmp_path / "report.json")
    data = json.loads(path.read_text())
    assert set(data) >= {
        "title", "generated_at", "database", "signatures", "views", "notes", "provenance",
    }  # fmt: skip
    assert (
        data["signatures"] == json.loads(signatures_to_json(investigation.signatures))["signatures"]
    )
    for sig in data["signatures"]:
        _check_signature_contract(sig)
    assert data["notes"][0]["title"] == "Conclusion"
    assert data["provenance"]["files"][0]["sha256"] == investigation.provenance.files[0]["sha256"]
    assert data["provenance"]["signature_search"]["params"]["alpha"] == 0.05
    assert set(data["evidence"]) == {s["id"] for s in data["signatures"]}
    assert datetime.fromisoformat(data["generated_at"].replace("Z", "+00:00")).tzinfo


def _check_signature_contract(sig: dict) -> None:
    """The shape `forensics signatures --json` promises (forensics.signature)."""
    assert re.fullmatch(r"S\d+", sig["id"])
    assert isinstance(sig["predicate"], dict)
    assert sig["predicate"]
    for spec in sig["predicate"].values():
        assert isinstance(spec, list) or set(spec) <= {"gte", "lt"}
    start = datetime.fromisoformat(sig["start"].replace("Z", "+00:00"))
    assert sig["start"].endswith("Z")
    if sig["end"] is not None:
        assert datetime.fromisoformat(sig["end"].replace("Z", "+00:00")) > start
    assert sig["signals"]
    assert all(isinstance(s, str) for s in sig["signals"])
    low, high = sig["ci"]
    assert low <= sig["excess_rate"] <= high
    assert isinstance(sig["requests"], int)
    assert isinstance(sig["users"], int)
    assert 0 <= sig["p_value"] <= 1
    assert isinstance(sig["events"], list)


def test_save_writes_a_path_or_an_open_text_or_binary_file(investigation, tmp_path):
    def steady(text: str) -> str:
        return re.sub(r"report written \S+ \S+", "", text)

    on_disk = steady(investigation.save(tmp_path / "r.html").read_text())
    text, binary = io.StringIO(), io.BytesIO()
    assert investigation.save(text, format="html") is None
    investigation.save(binary)
    assert steady(text.getvalue()) == on_disk == steady(binary.getvalue().decode())
    with pytest.raises(ConfigError, match="assets=DIR"):
        investigation.save(io.StringIO(), format="md")
    markdown = io.StringIO()
    investigation.save(markdown, format="md", assets=tmp_path / "figs")
    assert "(figs/figure-01.png)" in markdown.getvalue() or "figure-01.png" in markdown.getvalue()
    assert (tmp_path / "figs" / "figure-01.png").is_file()
    with pytest.raises(ConfigError, match="html, md, json"):
        investigation.save(tmp_path / "r.pdf", format="pdf")


def test_repr_html_shows_the_report_in_a_notebook(investigation):
    fragment = investigation._repr_html_()
    assert fragment.startswith("<style>")
    assert '<div class="fx-report">' in fragment
    assert "<html" not in fragment
    assert "<script" not in fragment.lower()
    assert fragment.count("<figure ") == investigation.to_html().count("<figure ")


def test_the_dashboard_pins_views_into_the_investigation(investigation):
    wb = investigation.wb
    before = len(investigation.views)
    dashboard = wb.dashboard(investigation, signal="low_eval", by="model")
    view = dashboard.pin("Only one replica rises.")
    assert investigation.views[before:] == [view]
    text = investigation.to_html()
    assert "Only one replica rises." in text
    assert 'id="views"' in text
    assert view.calls[0] in text.replace("&#x27;", "'")
    investigation.views.pop()


# -- safety ---------------------------------------------------------------------------


def test_payloads_are_escaped_in_every_format(payload_investigation, tmp_path):
    inv = payload_investigation
    page = inv.to_html()
    assert "<script" not in page.lower()
    assert "<img" not in page.lower()
    tags = _tags(page)
    assert not {t for t, _ in tags} & {"script", "img", "iframe", "object", "embed"}
    handlers = [(t, a) for t, attrs in tags for a in attrs if a.startswith("on")]
    assert not handlers, handlers
    assert "&lt;script&gt;window.__pwned" in page
    markdown = _outside_code(inv.to_markdown(tmp_path / "assets"))
    assert "<script" not in markdown
    assert "<img" not in markdown
    assert "&lt;script&gt;" in markdown
    data = json.loads(inv.to_json())
    assert data["title"] == f"Report {SCRIPT}"  # JSON keeps the text; escaping is the reader's


@pytest.mark.parametrize(
    ("svg", "message"),
    [
        ('<svg xmlns="http://www.w3.org/2000/svg"><script>x()</script></svg>', "script"),
        ('<svg xmlns="http://www.w3.org/2000/svg"><g onclick="x()"/></svg>', "onclick"),
        (
            '<svg xmlns="http://www.w3.org/2000/svg"><foreignObject><p>x</p></foreignObject></svg>',
            "foreignObject",
        ),
        (
            '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
            '<use xlink:href="https://example.com/x.svg#a"/></svg>',
            "link",
        ),
        (
            '<svg xmlns="http://www.w3.org/2000/svg"><rect fill="url(https://example.com/p)"/></svg>',
            "outside",
        ),
        ("<svg><g></svg>", "does not parse"),
    ],
)
def test_safe_svg_refuses_what_could_run_or_load(svg, message):
    with pytest.raises(UnsafeSvgError, match=message):
        safe_svg(svg, prefix="f1")


def test_privacy_mode_keeps_response_text_out_of_every_format(sim, tmp_path):
    frame = pl.read_parquet(sim / "requests.parquet").with_columns(
        pl.lit(SECRET).alias("response_text")
    )
    requests = tmp_path / "in" / "requests.parquet"
    requests.parent.mkdir()
    frame.write_parquet(requests)
    bad = tmp_path / "in" / "bad.jsonl"
    bad.write_text(
        "".join(
            json.dumps(
                {
                    "request_id": f"bad-{i}",
                    "ts": "yesterday",
                    "model": "m",
                    "platform": "gpu",
                    "routing_pool": "standard",
                    "response_text": SECRET,
                    "user_id": "alice@example.com",
                }
            )
            + "\n"
            for i in range(3)
        )
    )

    def every_format(db: Path, folder: Path) -> str:
        with forensics.open(db, read_only=True) as wb:
            inv = Investigation.default(wb)
            assert inv.signatures
            inv.save(folder / "r.html")
            inv.save(folder / "r.md")
            inv.save(folder / "r.json")
        return "".join(p.read_text() for p in folder.glob("r.*"))

    private = _load(tmp_path / "private.duckdb", requests, bad, privacy=True, salt=SALT)
    text = every_format(private, tmp_path / "private")
    assert SECRET not in text
    assert "PRIVATE-ANSWER" not in text
    assert "alice@example.com" not in text
    assert "privacy mode" in text
    # The same data without privacy mode shows the text (a rejected row's raw example),
    # so the check above is not vacuous.
    open_db = _load(tmp_path / "open.duckdb", requests, bad)
    assert SECRET in every_format(open_db, tmp_path / "open")


# -- CLI ------------------------------------------------------------------------------


def test_report_command_writes_each_format(bug_db, tmp_path):
    runner = CliRunner()
    for name in ("report.html", "report.md", "report.json"):
        result = runner.invoke(main, ["report", "--db", str(bug_db), "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        assert f"report: {tmp_path / name}" in result.stdout
        assert (tmp_path / name).stat().st_size > 1000
    assert (tmp_path / "report_files" / "figure-01.png").is_file()
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["title"] == "Incident investigation"
    assert data["signatures"]
    result = runner.invoke(
        main,
        ["report", "--db", str(bug_db), "--out", str(tmp_path / "x.txt"), "--format", "json",
         "--title", "Mine"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "x.txt").read_text())["title"] == "Mine"


def test_report_command_on_a_missing_or_empty_database_exits_2(tmp_path):
    runner = CliRunner()
    missing = tmp_path / "nope.duckdb"
    result = runner.invoke(
        main, ["report", "--db", str(missing), "--out", str(tmp_path / "r.html")]
    )
    assert result.exit_code == 2
    assert "no such database" in result.stderr
    assert "forensics ingest" in result.stderr
    assert not missing.exists()
    empty = tmp_path / "empty.duckdb"
    forensics.open(empty).close()
    result = runner.invoke(main, ["report", "--db", str(empty), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 2
    assert "holds no requests" in result.stderr
    with forensics.open(empty, read_only=True) as wb, pytest.raises(QueryError, match="ingest"):
        Investigation.default(wb)


def test_demo_ends_by_writing_the_sample_report(tmp_path):
    sample = tmp_path / "sample"
    simulate("bad-replica", rows=5_000, seed=2, out=sample)
    result = CliRunner().invoke(
        main, ["demo", "--sample", str(sample), "--out", str(tmp_path / "d")]
    )
    assert result.exit_code == 0, result.output
    report = tmp_path / "d" / "report.html"
    assert result.stdout.rstrip().endswith(f"report: {report}")
    assert "Investigation of sample" in report.read_text()


def test_workbench_report_is_the_default_investigation(bug_db):
    with forensics.open(bug_db, read_only=True) as wb:
        signatures = wb.signatures()
        inv = wb.report("Mine", signatures=signatures)
        assert isinstance(inv, forensics.Investigation)
        assert inv.title == "Mine"
        assert inv.signatures == signatures
        assert Note("x").text == "x"


# -- in the browser -------------------------------------------------------------------


@pytest.fixture
def chromium():
    from tests.browser import CHROMIUM, LAUNCH_ARGS
    from tests.test_browser import _require_chromium

    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _open_offline(browser, path: Path):
    """A page on ``path`` with the network off: every request but the file itself fails."""
    context = browser.new_context(offline=True, viewport={"width": 1280, "height": 1000})
    url = path.resolve().as_uri()
    attempts: list[str] = []
    events: list[str] = []
    context.route(
        "**/*", lambda route: route.continue_() if route.request.url == url else route.abort()
    )
    page = context.new_page()
    page.on("request", lambda r: attempts.append(r.url))
    page.on("console", lambda m: events.append(f"console {m.type}: {m.text}"))
    page.on("pageerror", lambda e: events.append(f"pageerror: {e}"))
    page.on("dialog", lambda d: (events.append(f"dialog: {d.message}"), d.dismiss()))
    page.goto(url, wait_until="load")
    return page, attempts, events


def _assert_drawn(chart, i: int) -> None:
    """A chart (inline SVG, or an image) takes room on the page and holds marks."""
    box = chart.bounding_box()
    assert box is not None, i
    assert box["width"] > 200, (i, box)
    assert box["height"] > 60, (i, box)
    drawn = chart.evaluate(
        "c => c.tagName === 'IMG' ? c.complete && c.naturalWidth : "
        "c.querySelectorAll('path, rect, line, text').length"
    )
    assert drawn > 10, (i, drawn)


@pytest.mark.browser
def test_report_renders_offline_in_chromium_with_every_chart(investigation, chromium, tmp_path):
    path = investigation.save(tmp_path / "report.html")
    page, attempts, events = _open_offline(chromium, path)
    assert attempts == [path.resolve().as_uri()], "the report asked for something else"
    figures = page.locator("figure")
    assert figures.count() == 2 + 3 * len(investigation.signatures)
    for i in range(figures.count()):
        chart = figures.nth(i).locator("svg, img").first
        _assert_drawn(chart, i)
        assert chart.evaluate("c => c.tagName === 'IMG' || c.textContent.length > 20")
    assert page.locator("nav.fx-toc a").count() >= 3 + len(investigation.signatures)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    page.emulate_media(media="print")
    assert page.evaluate("getComputedStyle(document.querySelector('.fx-section')).breakBefore") == (
        "page"
    )
    assert not events, events


@pytest.mark.browser
def test_payloads_in_the_data_and_notes_do_not_run(payload_investigation, chromium, tmp_path):
    path = payload_investigation.save(tmp_path / "payload.html")
    page, attempts, events = _open_offline(chromium, path)
    page.wait_for_timeout(500)
    assert page.evaluate("window.__pwned") is None
    assert page.title() == f"Report {SCRIPT}"
    # The page's structure is what escaping decides, whatever the CSP would stop:
    assert page.locator("script").count() == 0
    assert page.locator("img[src='x'], [onerror], [onload], [onmouseover]").count() == 0
    assert page.locator("svg svg").count() == 0
    text = page.locator("body").inner_text()
    assert SCRIPT in text
    assert "onerror=\"window.__pwned='img'" in text
    assert attempts == [path.resolve().as_uri()]
    assert not events, events
    # The notebook fragment has no Content-Security-Policy: escaping alone must hold.
    fragment = page.context.new_page()
    fragment.on("dialog", lambda d: (events.append(f"dialog: {d.message}"), d.dismiss()))
    fragment.on("console", lambda m: events.append(f"console: {m.text}"))
    fragment.set_content(payload_investigation._repr_html_())
    fragment.wait_for_timeout(500)
    assert fragment.evaluate("window.__pwned") is None
    assert fragment.locator("script, img[src='x'], [onerror]").count() == 0
    assert not events, events


def test_a_report_on_counted_rows_says_why_it_shows_no_example_requests(tmp_path):
    # Counted rows name no single request: the examples are left out with the reason,
    # where the report used to fail on a count column taken for a signal.
    sample = Path(__file__).resolve().parent.parent / "data_samples" / "counted-minutes"
    with forensics.open(tmp_path / "counted.duckdb") as wb:
        wb.ingest(sample / "counts.parquet", mapping=sample / "mapping.toml", progress=False)
        inv = Investigation.default(wb, title="Counted")
        assert inv.signatures, "the sample's cause is a signature"
        html = inv.save(tmp_path / "r.html").read_text()
    assert "counted rows (a row stands for many requests)" in html


# -- explanations of a moment ---------------------------------------------------------


@pytest.fixture(scope="module")
def explained(bug_db):
    wb = forensics.open(bug_db, read_only=True)
    yield wb, wb.explain(signal="low_eval")
    wb.close()


def _plain_markdown(text: str) -> str:
    """Markdown as read: its escapes undone."""
    return html.unescape(re.sub(r"\\(.)", r"\1", text))


def test_an_explanation_is_a_section_like_a_signature_in_every_format(explained, tmp_path):
    wb, e = explained
    assert len(e.items) >= 5
    inv = Investigation(wb, title="Explained")
    assert inv.add_explanation(e) is e
    with pytest.raises(TypeError, match=r"wb\.explain"):
        inv.add_explanation(e.to_dict())
    page = inv.to_html()
    markdown = inv.to_markdown(tmp_path / "assets")
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)=["']?https?:""", page)  # offline
    for text in (html.unescape(page), _plain_markdown(markdown)):
        assert f"X1 · low_eval at {e.at:%Y-%m-%d %H:%M}Z" in text
        assert "the most anomalous moment of the data" in text
        assert f"Baseline: each slice's own rate over the {e.baseline_buckets} buckets of" in text
        for rank, c in enumerate(e.items, 1):
            assert c.description.split("; ")[0] in text
            low, high = (f"{100 * x:.2f}" for x in c.ci)
            assert f"{100 * c.rate:.2f}% [{low}, {high}]" in text, (rank, c)
            assert f"{c.signal_count:,} of {c.requests:,}" in text
        assert f"Call: {e.call()}" in text
    # the summary lists it, linked to its section
    assert '<a href="#explain-1">X1</a>' in page
    assert "[X1](#explain-1)" in markdown
    data = json.loads(inv.to_json())
    (entry,) = data["explanations"]
    assert entry["at"] == e.to_dict()["at"]
    assert [c["elements"] for c in entry["candidates"]] == [
        c["elements"] for c in e.to_dict()["candidates"]
    ]
    assert [c["role"] for c in entry["candidates"]] == [c.role for c in e.items]
    assert entry["baseline_buckets"] == e.baseline_buckets
    assert eval(entry["call"], {"wb": wb}).to_json() == e.to_json()  # the call explains it again


def test_an_explanation_escapes_what_comes_from_the_data(sim, tmp_path):
    requests, bad, events = _payload_inputs(sim, tmp_path / "in")
    db = _load(tmp_path / "payload.duckdb", requests, bad, events=events)
    with forensics.open(db, read_only=True) as wb:
        e = wb.explain(signal="low_eval", where={"model": [IMG]})
        inv = Investigation(wb, title="payloads")
        inv.add_explanation(e)
        page = inv.to_html()
        markdown = _outside_code(inv.to_markdown(tmp_path / "assets"))
    assert e.where == {"model": [IMG]}
    shown = {str(v) for c in e.items for element in c.elements for v in element.values()}
    assert shown & set(PAYLOADS), "a payload must be among the candidates"
    for text in (page, markdown):
        assert "<script" not in text.lower()
        assert "<img" not in text.lower()
        assert "<svg onload" not in text.lower()
    handlers = [(t, a) for t, attrs in _tags(page) for a in attrs if a.startswith("on")]
    assert not handlers, handlers
    assert "&lt;img src=x onerror=" in page
