"""Real browser: `streamlit run app.py` driven by Debian's Chromium through Playwright."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


pytestmark = pytest.mark.browser


def _shoot(target, name: str, tmp_path: Path) -> Path:
    """Screenshot a page or element into the test's temp folder, or $SIM_SCREENSHOTS if set
    (a folder to keep them in for people to look at)."""
    folder = Path(os.environ.get("SIM_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    target.screenshot(path=str(path))
    return path


def _settle(page, timeout_ms: int = 60000) -> None:
    """Wait until the app has finished its current run (Streamlit's running indicator is
    gone), so the next action is not lost in a rerun."""
    page.wait_for_timeout(300)
    page.locator("[data-testid='stStatusWidget']").wait_for(state="detached",
                                                            timeout=timeout_ms)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"streamlit did not answer at {url}")


@pytest.fixture
def server(tmp_path, tiny_model_dir):
    """A streamlit server on a free port with its own workspace and the tiny model."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (make install-test installs it)")
    port = _free_port()
    env = dict(os.environ, SIM_WORKSPACE=str(tmp_path / "ws"),
               SIM_DEFAULT_MODEL=str(tiny_model_dir), HF_HUB_OFFLINE="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(f"http://127.0.0.1:{port}/_stcore/health")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_upload_compare_in_chromium(server, tmp_path):
    """Upload data + codebook, compare, see chart and scores, build a PDF, open every page."""
    from playwright.sync_api import expect, sync_playwright

    from sim_core.survey.demo import demo_anes_paths

    demo_csv, codebook = demo_anes_paths()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            started = time.time()
            page.goto(server)
            expect(page.get_by_role("heading", name="Survey data")).to_be_visible(timeout=30000)
            first_page_s = time.time() - started
            uploaders = page.locator("[data-testid='stFileUploaderDropzoneInput']")
            uploaders.nth(1).set_input_files(str(codebook))
            expect(page.get_by_text(codebook.name)).to_be_visible(timeout=30000)
            _settle(page)          # a file picked while the page reruns can be dropped
            uploaders.nth(0).set_input_files(str(demo_csv))
            save = page.get_by_role("button", name="Save to workspace")
            expect(save).to_be_visible(timeout=60000)
            save.click()
            expect(page.get_by_text("Saved as")).to_be_visible(timeout=30000)
            page.get_by_role("link", name="Simulate & compare").click()
            heading = page.get_by_role("heading", name="Simulate & compare")
            expect(heading).to_be_visible(timeout=30000)
            _settle(page)
            page.get_by_role("button", name="Simulate and compare").click()
            chart = page.locator("[data-testid='stPlotlyChart']")
            expect(chart).to_be_visible(timeout=120000)
            expect(page.locator(".js-plotly-plot .bars path").first).to_be_attached(timeout=30000)
            # the codebook's wording, not the column name, heads the result
            expect(page.get_by_role("heading", name="How many times per week do you watch "
                                    "the news on TV?")).to_be_visible()
            expect(page.get_by_text("How close to the real answers")).to_be_visible()
            table = page.locator("[data-testid='stDataFrame'] >> visible=true").first
            expect(table).to_be_visible()
            # chart: one bar group per entry (real + model + 5 baselines: uniform,
            # population, classifier, boosting, svr) over 8 options
            legend = page.locator(".js-plotly-plot .legend .traces")
            expect(legend).to_have_count(7)
            assert page.locator(".js-plotly-plot .bars .point").count() == 7 * 8
            assert not page.locator("[data-testid='stException']").count()
            _shoot(chart, "compare_chart", tmp_path)
            _shoot(table, "compare_scores", tmp_path)
            assert _shoot(page, "compare_page", tmp_path).stat().st_size > 10_000
            print(f"first page in {first_page_s:.2f} s")

            # Reports: the comparison just made becomes a PDF with CSV / JSON downloads
            page.get_by_role("link", name="Reports").click()
            expect(page.get_by_role("heading", name="Reports")).to_be_visible(timeout=30000)
            page.get_by_role("button", name="Build report").click()
            with page.expect_download(timeout=60000) as download:
                page.get_by_role("button", name="PDF report").click()
            pdf = tmp_path / "report.pdf"
            download.value.save_as(pdf)
            assert pdf.read_bytes().startswith(b"%PDF")
            _shoot(page, "reports_page", tmp_path)

            # Simulate's form keeps its choices over a visit to Reports (Streamlit forgets
            # the widgets a page does not draw): the form agrees with the result under it
            page.get_by_role("link", name="Simulate & compare").click()
            mode = page.locator("[data-testid='stMain'] [data-testid='stRadio']").filter(
                has_text="First-token probabilities")
            expect(mode).to_be_visible(timeout=30000)
            sampling = mode.locator("input[type='radio']").nth(1)
            mode.locator("label").filter(has_text="Sampling").click()
            expect(sampling).to_be_checked(timeout=30000)
            _settle(page)         # the choice reaches the server before the page changes
            page.get_by_role("link", name="Reports").click()
            expect(page.get_by_role("heading", name="Reports")).to_be_visible(timeout=30000)
            page.get_by_role("link", name="Simulate & compare").click()
            expect(page.get_by_role("heading", name="Simulate & compare")).to_be_visible(
                timeout=30000)
            expect(mode).to_be_visible(timeout=30000)
            expect(sampling).to_be_checked()
            # the result stays under the form (the comparison kept in the session)
            expect(page.get_by_text("How close to the real answers")).to_be_visible(
                timeout=30000)

            # the other pages open without an error
            for link, heading, button in (
                    ("Evaluate", "Evaluate a checkpoint on a whole survey", "Evaluate"),
                    ("Fine-tune", "Fine-tune an adapter", "Start training"),
                    ("Data", "Survey data", "Upload")):
                page.get_by_role("link", name=link).click()
                expect(page.get_by_role("heading", name=heading)).to_be_visible(timeout=30000)
                expect(page.get_by_role("button", name=button, exact=True).first
                       ).to_be_visible(timeout=30000)
                assert not page.locator("[data-testid='stException']").count(), link
                _shoot(page, f"{link.lower().replace('-', '')}_page", tmp_path)
        finally:
            browser.close()


def test_pages_open_by_their_address_on_a_fresh_server(server, tmp_path):
    """A bookmark or a refresh right after a restart (/simulate, /fine_tune before anyone
    opened the root address): the page opens inside the app, with its sidebar and the five
    pages, not as Streamlit's older multipage mode (every module of pages/ listed, no
    sidebar) and without a "Page not found"."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            for path, heading in (("simulate", "Simulate & compare"),
                                  ("fine_tune", "Fine-tune an adapter"),
                                  ("reports", "Reports")):
                page.goto(f"{server}/{path}")
                expect(page.get_by_role("heading", name=heading)).to_be_visible(timeout=30000)
                expect(page.get_by_test_id("stSidebarUserContent").get_by_text("Base model")
                       ).to_be_visible(timeout=30000)
                nav = page.locator("[data-testid='stSidebarNavItems'] a")
                expect(nav).to_have_count(5)
                assert not page.get_by_text("Page not found").count()
                assert not page.locator("[data-testid='stException']").count()
            page.reload()            # a refresh on a page keeps that page
            expect(page.get_by_role("heading", name="Reports")).to_be_visible(timeout=30000)
            expect(page.locator("[data-testid='stSidebarNavItems'] a")).to_have_count(5)
        finally:
            browser.close()


def test_47_slices_at_1280x800(server, tmp_path, monkeypatch):
    """ANES PID x educ (47 slices) at 1280x800: the status box appears right under the Run
    button, inside the first screen; the result is a slice x option heatmap of every slice
    with the score table below it and no error."""
    from playwright.sync_api import expect, sync_playwright

    from sim_core.survey import workspace_surveys
    from sim_core.survey.demo import DEMO_POPULATION, demo_anes_paths

    monkeypatch.setenv("SIM_WORKSPACE", server_workspace(tmp_path))
    data, codebook = demo_anes_paths()
    workspace_surveys.save_survey("anes96", data.name, data.read_bytes(),
                                  {"population": DEMO_POPULATION},
                                  codebook=(codebook.name, codebook.read_bytes()))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(server)
            page.get_by_role("link", name="Simulate & compare").click()
            expect(page.get_by_role("heading", name="Simulate & compare")).to_be_visible(
                timeout=30000)
            by = page.locator("[data-testid='stMultiSelect']").filter(has_text="Slice by")
            for attribute in ("PID", "educ"):
                _settle(page)      # a pick made while the page reruns can be dropped
                by.click()
                page.get_by_role("option", name=attribute, exact=True).click()
                page.keyboard.press("Escape")
                expect(by.get_by_role("button", name=f"Remove {attribute}")).to_be_visible(
                    timeout=30000)
            _settle(page)
            run = page.get_by_role("button", name="Simulate and compare")
            run.scroll_into_view_if_needed()
            run.click()
            box = page.locator("[data-testid='stExpander']").filter(
                has_text="Simulate and compare").first
            expect(box).to_be_visible(timeout=30000)
            button_box, status_box = run.bounding_box(), box.bounding_box()
            assert 0 <= status_box["y"] - (button_box["y"] + button_box["height"]) < 80
            assert status_box["y"] + 40 < 800           # on screen without scrolling
            expect(page.get_by_text("47 slices")).to_be_visible(timeout=180000)
            heatmap = page.locator("[data-testid='stPlotlyChart']").first
            # one heatmap panel per entry: real, the model and the five baselines
            expect(heatmap.locator(".heatmaplayer")).to_have_count(7, timeout=30000)
            expect(page.get_by_text("How close to the real answers")).to_be_visible()
            assert not page.locator("[data-testid='stException']").count()
            assert "done in" in box.inner_text()
            _shoot(page, "compare_47_slices_1280", tmp_path)
            heatmap.scroll_into_view_if_needed()
            page.wait_for_timeout(1500)            # plotly lays out once it is on screen
            _shoot(page, "compare_47_slices_heatmap", tmp_path)
        finally:
            browser.close()


def server_workspace(tmp_path) -> str:
    """The workspace of the `server` fixture (the test writes the survey there)."""
    return str(tmp_path / "ws")


def test_spss_interviewer_instructions_in_chromium(server, tmp_path, monkeypatch):
    """A phone survey's SPSS file in Chromium: its upload panel has no warning box, the
    column notes sit in one collapsed table, and the proposed wording (one option edited in
    the table by keyboard) is applied only on Accept and saved with the survey."""
    from playwright.sync_api import expect, sync_playwright

    from sim_core.survey import workspace_surveys
    from tests.test_survey_wording import C1_CLEAN, write_phone

    monkeypatch.setenv("SIM_WORKSPACE", server_workspace(tmp_path))
    path = write_phone(tmp_path)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(server)
            expect(page.get_by_role("heading", name="Survey data")).to_be_visible(timeout=30000)
            _settle(page)
            page.locator("[data-testid='stFileUploaderDropzoneInput']").nth(0).set_input_files(
                str(path))
            expect(page.get_by_role("button", name="Save to workspace")).to_be_visible(
                timeout=60000)
            _settle(page)
            panel = page.locator("[data-testid='stExpander']").filter(has_text="phone.sav").first
            assert not panel.locator("[data-testid='stAlertContentWarning']").count()
            notes = panel.locator("[data-testid='stExpander']").filter(
                has_text="4 reading note(s) about single columns")
            expect(notes.locator("[data-testid='stDataFrame']")).not_to_be_visible()
            instructions = panel.locator("[data-testid='stExpander']").filter(
                has_text="Interviewer instructions in 2 label(s)")
            instructions.get_by_text("Interviewer instructions in 2 label(s)").click()
            grid = instructions.locator("[data-testid='stDataFrame']")
            expect(grid).to_be_visible(timeout=30000)
            _settle(page)
            # the trust row's "column" cell, then four cells right: its proposed options
            box = grid.bounding_box()
            page.mouse.click(box["x"] + 100, box["y"] + 35 + 35 + 17)
            for _ in range(4):
                page.keyboard.press("ArrowRight")
            page.keyboard.press("Enter")          # opens the cell's editor on its text
            # the grid's overlay editor (a textarea outside the canvas) takes a moment to open;
            # keys sent before it has focus go to the page
            editor = page.locator("textarea.gdg-input")
            expect(editor).to_be_focused(timeout=10000)
            editor.fill("A lot|Hardly")
            page.keyboard.press("Enter")
            _settle(page)
            _shoot(page, "data_instructions_edited", tmp_path)
            assert workspace_surveys.saved_surveys() == []
            page.get_by_role("button", name="Accept the ticked wording").click()
            expect(page.get_by_text("Accepted the wording of c1, trust")).to_be_visible(
                timeout=30000)
            _settle(page)
            _shoot(page, "data_instructions_accepted", tmp_path)
            page.get_by_role("button", name="Save to workspace").click()
            expect(page.get_by_text("Saved as 'phone'")).to_be_visible(timeout=30000)
            assert not page.locator("[data-testid='stException']").count()
        finally:
            browser.close()
    saved = workspace_surveys.load_saved("phone")
    assert saved.questions["c1"].text == C1_CLEAN
    assert saved.questions["c1"].options == ("Bush", "Kerry", "Other candidate")
    assert saved.questions["trust"].text == "Do you trust the government?"
    assert saved.questions["trust"].options == ("A lot", "Hardly")
