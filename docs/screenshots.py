"""The README's screenshots of the dashboard, taken in headless Chromium with no network.

Serves ``notebooks/01_triage.ipynb`` on the demo database with Voilà on
loopback (``tests/browser.py``), then drives the dashboard as an investigator
does and saves JPEGs in ``docs/img/``:

- ``dashboard-region.jpg``: a heatmap region brushed, the comparison redone for it;
- ``dashboard-requests.jpg``: the request sample of the strongest rise, evidence marked;
- ``dashboard-signature.jpg``: the signatures under their root causes, one picked.

    PYTHONPATH=$PWD .venv/bin/python docs/screenshots.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.browser import drag, launch, offline_page, serve  # noqa: E402

OUT = REPO / "docs" / "img"
WAIT_MS = 150_000


def _shot(page, name: str) -> None:
    page.locator(".forensics-dashboard").screenshot(path=str(OUT / name), type="jpeg", quality=60)
    print(f"wrote {OUT / name}")


def main() -> None:
    """Take the screenshots (the demo database is built first when missing)."""
    from playwright.sync_api import sync_playwright

    import forensics

    OUT.mkdir(parents=True, exist_ok=True)
    db = forensics.demo_database()
    with (
        tempfile.TemporaryDirectory() as tmp,
        serve(
            "voila",
            REPO / "notebooks" / "01_triage.ipynb",
            env={"FORENSICS_DB": str(db), "PYTHONPATH": str(REPO)},
            log=Path(tmp) / "voila.log",
            cwd=REPO,
        ) as server,
        sync_playwright() as p,
    ):
        browser = launch(p)
        try:
            page, console = offline_page(
                browser, server.port, viewport={"width": 1250, "height": 2000}
            )
            page.goto(server.url, timeout=WAIT_MS)
            print("page opened; waiting for the dashboard", flush=True)
            dash = page.locator(".forensics-dashboard")
            page.wait_for_function(
                "() => document.querySelectorAll('.forensics-dashboard svg.marks').length >= 4",
                timeout=WAIT_MS,
            )
            charts = dash.locator(".vega-embed svg.marks")
            print("dashboard drawn", flush=True)
            before = dash.locator(".forensics-selection").inner_text()
            page.wait_for_timeout(3000)  # let the first redraws settle
            charts.nth(2).scroll_into_view_if_needed()
            cells = charts.nth(2).locator("g.heatmap_cells_marks").bounding_box()
            drag(page, cells, (0.55, 0.04), (0.7, 0.45))
            page.wait_for_function(
                "b => document.querySelector('.forensics-selection').innerText !== b",
                arg=before,
                timeout=WAIT_MS,
            )
            page.wait_for_timeout(3000)
            _shot(page, "dashboard-region.jpg")

            dash.get_by_role("combobox", name="signal").select_option("script_mix")
            dash.get_by_role("button", name="automatic window").click()
            dash.locator(".lm-TabBar-tab", has_text="requests").click()
            page.wait_for_function(
                "() => document.querySelectorAll('.forensics-sample mark.fx-evidence').length",
                timeout=WAIT_MS,
            )
            page.wait_for_timeout(2000)
            _shot(page, "dashboard-requests.jpg")

            dash.locator(".lm-TabBar-tab", has_text="signatures").click()
            dash.get_by_role("button", name="find signatures").click()
            print("searching", flush=True)
            page.wait_for_function(
                "() => /signatures? in \\d|No significant signature/.test("
                "document.querySelector('.forensics-dashboard').innerText)",
                timeout=WAIT_MS,
            )
            print("found", flush=True)
            page.wait_for_timeout(2000)
            dash.locator(".forensics-signature-picker select").select_option(index=1)
            dash.locator(".forensics-chosen").wait_for(timeout=WAIT_MS)
            print("picked", flush=True)
            page.wait_for_timeout(3000)
            _shot(page, "dashboard-signature.jpg")
            if console.errors:
                raise SystemExit(f"page errors: {console.errors}")
        except Exception:
            page.screenshot(path=str(Path(tmp) / "failed.png"))
            print(server.log.read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            browser.close()


if __name__ == "__main__":
    main()
