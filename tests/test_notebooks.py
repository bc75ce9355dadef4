"""The walkthrough notebooks: stored clean, parameterised, and run top to bottom on the sample."""

import ast
import json
import re
from datetime import UTC, datetime, timedelta

import nbformat
import polars as pl
import pytest
from nbclient import NotebookClient

import forensics
from forensics.demo import find_sample
from tests.conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
WIDGET = "application/vnd.jupyter.widget-view+json"
SVG = "image/svg+xml"


def _read(path):
    return nbformat.read(path, as_version=4)


def test_the_triage_notebook_exists():
    assert "01_triage.ipynb" in [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_without_outputs(path):
    nb = _read(path)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: clear the outputs before committing"
            assert cell.execution_count is None, f"{path.name}: clear the execution counts"
    assert "widgets" not in nb.metadata, f"{path.name}: do not store widget state"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_is_a_parameters_cell(path):
    first = next(c for c in _read(path).cells if c.cell_type == "code")
    assert "parameters" in first.metadata.get("tags", [])
    assert "DB = None" in first.source


def _run(path, db, monkeypatch):
    monkeypatch.setenv("FORENSICS_DB", str(db))
    nb = _read(path)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            assert output.output_type != "error", f"{path.name}: {output.ename}: {output.evalue}"
    return nb


def _assert_no_network(nb):
    """No output asks for anything over the network (Altair's default HTML loads Vega from a CDN)."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            for mime, data in output.get("data", {}).items():
                if mime.startswith("text/"):
                    assert not re.search(r"""(?:src|href)\s*=\s*["']?https?:""", str(data)), (
                        mime,
                        str(data)[:300],
                    )


def _outputs(nb, tag):
    cell = next(c for c in nb.cells if tag in c.metadata.get("tags", []))
    return cell.outputs


def _text(nb, tag):
    parts = []
    for output in _outputs(nb, tag):
        if output.output_type == "stream":
            parts.append(output.text)
        else:
            parts.append(output.data.get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.notebook
@pytest.mark.slow
def test_triage_runs_on_the_sample_and_shows_its_numbers(sample_db, monkeypatch):
    nb = _run(REPO / "notebooks" / "01_triage.ipynb", sample_db, monkeypatch)
    requests = pl.scan_parquet(find_sample() / "requests.parquet").select(pl.len()).collect().item()
    with forensics.open(sample_db, read_only=True) as wb:
        counts = ast.literal_eval(_text(nb, "counts"))
        assert counts["requests"] == requests
        assert counts["events"] == wb.counts()["events"] > 0
        assert f"shape: ({len(wb.dimensions())}, 4)" in _text(nb, "dimensions")
        assert f"shape: ({counts['events']}, 4)" in _text(nb, "events")
        changes = wb.change_points("degraded", grain="day")
        assert f"shape: ({changes.height}, 7)" in _text(nb, "changes")
        assert "up" in _text(nb, "changes")
    # The incident the notebook picks starts within a day of a true bug's onset, and the
    # value it ranks first is in the slice of a bug that starts there (from truth.json).
    truth = json.loads((find_sample() / "truth.json").read_text())
    picked = re.search(
        r"datetime\.datetime\((\d+), (\d+), (\d+)(?:, (\d+))?", _text(nb, "incident")
    )
    assert picked, _text(nb, "incident")
    year, month, day, hour = (int(g or 0) for g in picked.groups())
    incident = datetime(year, month, day, hour, tzinfo=UTC)
    starting = [
        b for b in truth["bugs"]
        if abs(datetime.fromisoformat(b["start"]) - incident) <= timedelta(days=1)
    ]  # fmt: skip
    assert starting, f"no true onset near {incident}"
    shown = _text(nb, "compare")
    assert "shape: (10, 6)" in shown
    rows = shown.split("╞", 1)[1].splitlines()[1:]  # the table's body, under its header
    first = next(line for line in rows if line.startswith("│ ") and "┆" in line)
    dimension, value = (cell.strip() for cell in first.strip("│ ").split("┆")[:2])
    assert any(value in b["predicate"].get(dimension, ()) for b in starting), (dimension, value)
    assert any(SVG in o.get("data", {}) for o in _outputs(nb, "timeline"))
    _assert_no_network(nb)
    assert any(WIDGET in o.get("data", {}) for o in _outputs(nb, "dashboard"))
    state = _text(nb, "state")
    assert "DashboardState(signal='degraded', by=" in state
    assert "UpdateTimings(total_ms=" in state


@pytest.mark.notebook
@pytest.mark.slow
def test_report_notebook_writes_a_report_holding_every_signature(sample_db, monkeypatch):
    nb = _run(REPO / "notebooks" / "03_investigation_report.ipynb", sample_db, monkeypatch)
    found = re.findall(r"^(S\d+): ", _text(nb, "signatures"), re.M)
    assert found, _text(nb, "signatures")
    written = sample_db.with_name("investigation.html")
    page = written.read_text()
    data = json.loads(written.with_suffix(".json").read_text())
    assert [s["id"] for s in data["signatures"]] == found
    for sig in found:
        assert f'id="sig-{sig}"' in page
    (view,) = data["views"]
    assert view["note"].startswith(found[0])
    assert [n["title"] for n in data["notes"]] == ["Conclusion"]
    markdown = written.with_suffix(".md").read_text()
    assert (written.parent / "investigation_files" / "figure-01.png").is_file()
    assert "investigation_files/figure-01.png" in markdown
    assert f"{len(found)} signatures, 1 view, 1 note" in _text(nb, "note")
    shown = next(o for o in _outputs(nb, "report") if "text/html" in o.get("data", {}))
    assert shown["data"]["text/html"].count("<figure ") == page.count("<figure ")


@pytest.mark.notebook
@pytest.mark.slow
def test_separation_notebook_finds_and_scores_the_signatures(sample_db, monkeypatch):
    nb = _run(REPO / "notebooks" / "02_separate_signatures.ipynb", sample_db, monkeypatch)
    printed = _text(nb, "signatures")
    found = re.findall(r"^(S\d+): ", printed, re.M)
    assert found, printed
    assert f"shape: ({len(found)}, 11)" in printed
    # Altair's HTML embeds the spec with non-ASCII escaped, so "·" may read "\u00b7".
    causes = _text(nb, "causes")
    grouped = re.findall(r"^R\d+: .*\(\d+ signatures?: ([S\d, ]+)\)$", causes, re.M)
    assert grouped, causes
    assert sorted(s for line in grouped for s in line.split(", ")) == sorted(found)
    assert "why: " in causes
    windows = json.dumps(_outputs(nb, "windows"), ensure_ascii=False)
    assert any(SVG in o.get("data", {}) for o in _outputs(nb, "windows"))
    _assert_no_network(nb)
    for sig in found:  # one row per signature in the windows chart
        assert re.search(rf"{sig} (?:·|\\+u00b7) ", windows), sig
    assert f"{found[0]}</b>" in "".join(
        o["data"].get("text/html", "") for o in _outputs(nb, "first") if "data" in o
    )
    # one row per signal searched (all but `degraded`, their union), each with its verdict
    with forensics.open(sample_db, read_only=True) as wb:
        searched = [s for s in wb.signals() if s != "degraded"]
    symptoms = _text(nb, "symptoms")
    assert f"shape: ({len(searched)}, 13)" in symptoms, symptoms
    verdicts = re.findall(r"┆ (true|false) +│$", symptoms, re.M)
    assert len(verdicts) == len(searched), symptoms
    assert "true" in verdicts  # the strongest signature raised its own signal at least
    # the shipped sample's five bugs are all recovered (the reference test checks the same)
    scored = _text(nb, "evaluate")
    truth = json.loads((find_sample() / "truth.json").read_text())
    bugs = len(truth["bugs"])
    assert f"found {len(found)}, true {bugs}, matched {bugs}" in scored, scored
    assert "F1 1.000" in scored, scored


NOTEBOOKS_WITH_THEIR_OWN_TEST = (
    "01_triage.ipynb",
    "02_separate_signatures.ipynb",
    "03_investigation_report.ipynb",
)


def test_every_notebook_has_a_test_that_runs_it():
    assert sorted(p.name for p in NOTEBOOKS) == sorted(NOTEBOOKS_WITH_THEIR_OWN_TEST)


# -- exported HTML, in the browser with the network off ---------------------------------


@pytest.mark.browser
@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_exported_html_draws_every_chart_with_the_network_off(
    path, sample_db, monkeypatch, tmp_path
):
    """``jupyter nbconvert --to html`` of a run notebook, opened in Chromium offline.

    Every chart output (an SVG drawn in the kernel; the report's figures in
    notebook 03) is drawn on the page, and no chart library is fetched. The
    export's own scripts (require.js, MathJax, and the widget manager that the
    stored widget state asks for) fail to load, and that is all: the dashboard's
    widgets need a live kernel, and are not among the charts counted here.
    """
    from nbconvert import HTMLExporter
    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM, LAUNCH_ARGS
    from tests.test_browser import ARTIFACTS, _require_chromium
    from tests.test_report import _assert_drawn, _open_offline

    _require_chromium()
    nb = _run(path, sample_db, monkeypatch)
    drawn_in_kernel = sum(SVG in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    figures = sum(
        o.get("data", {}).get("text/html", "").count("<figure ")
        for c in nb.cells
        for o in c.get("outputs", [])
    )
    assert drawn_in_kernel + figures > 0, "the notebook shows no chart"
    page_html, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    exported = tmp_path / path.with_suffix(".html").name
    exported.write_text(page_html, encoding="utf-8")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page, attempts, _ = _open_offline(browser, exported)
            charts = page.locator(
                ".jp-RenderedSVG > svg, .jp-RenderedSVG > img, .jp-RenderedHTMLCommon figure svg"
            )
            assert charts.count() == drawn_in_kernel + figures
            for i in range(charts.count()):
                charts.nth(i).scroll_into_view_if_needed()
                _assert_drawn(charts.nth(i), i)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"export-{path.stem}.png"), full_page=True)
        finally:
            browser.close()
    fetched = [u for u in attempts if u != exported.resolve().as_uri()]
    assert not [u for u in fetched if re.search(r"vega|altair", u)], fetched
