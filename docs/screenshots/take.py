"""README screenshots: the dashboard in Debian's Chromium at 1280x800 and 800 px wide.

Runs `streamlit run app.py` on the embedded default model with a fresh workspace holding
the two demo surveys, makes one comparison (ANES 1996, TV news by party id) and shoots each
page as a person sees it. Needs the test install (Playwright, /usr/bin/chromium).

    .venv/bin/python docs/screenshots/take.py          # about 2 minutes on 2 CPU cores
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"streamlit did not answer at {url}")


def _fill_workspace(workspace: Path) -> None:
    """Both demo surveys saved, as the Data page's demo tab saves them."""
    os.environ["SIM_WORKSPACE"] = str(workspace)
    from sim_core.survey import workspace_surveys
    from sim_core.survey.demo import DEMO_POPULATION, demo_anes_paths, demo_gss_path

    data, codebook = demo_anes_paths()
    population = {"population": DEMO_POPULATION}
    workspace_surveys.save_survey("anes96", data.name, data.read_bytes(), population,
                                  codebook=(codebook.name, codebook.read_bytes()))
    gss = demo_gss_path()
    workspace_surveys.save_survey("gss2022", gss.name, gss.read_bytes(), population)


def _shots(url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium",
                                     args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(url)
            expect(page.get_by_role("heading", name="Survey data")).to_be_visible(timeout=60000)
            page.wait_for_timeout(1500)
            page.screenshot(path=OUT / "data-1280.png")

            page.get_by_role("link", name="Simulate & compare").click()
            by = page.locator("[data-testid='stMultiSelect']").filter(has_text="Slice by")
            expect(by).to_be_visible(timeout=60000)
            by.click()
            page.get_by_role("option", name="PID", exact=True).click()
            page.keyboard.press("Escape")
            run = page.get_by_role("button", name="Simulate and compare")
            run.click()
            result = page.get_by_text("How close to the real answers")
            expect(result).to_be_visible(timeout=600000)
            page.wait_for_timeout(2000)
            page.get_by_text("How far to trust these bars").scroll_into_view_if_needed()
            page.wait_for_timeout(1500)
            page.screenshot(path=OUT / "simulate-1280.png")
            result.scroll_into_view_if_needed()
            page.wait_for_timeout(1000)
            page.screenshot(path=OUT / "scores-1280.png")

            for link, heading, name in (("Evaluate", "Evaluate a checkpoint", "evaluate"),
                                        ("Fine-tune", "Fine-tune an adapter", "finetune"),
                                        ("Reports", "Reports", "reports")):
                page.get_by_role("link", name=link).click()
                expect(page.get_by_role("heading", name=heading)).to_be_visible(timeout=60000)
                page.wait_for_timeout(2000)
                page.screenshot(path=OUT / f"{name}-1280.png")

            # 800 px: the same session (its comparison is kept) in a narrower window
            page.set_viewport_size({"width": 800, "height": 1000})
            page.get_by_role("link", name="Simulate & compare").click()
            expect(page.get_by_role("heading", name="Simulate & compare")).to_be_visible(
                timeout=60000)
            page.wait_for_timeout(2000)
            page.screenshot(path=OUT / "simulate-800.png")
            page.get_by_text("How far to trust these bars").scroll_into_view_if_needed()
            page.wait_for_timeout(2000)
            page.screenshot(path=OUT / "result-800.png")
        finally:
            browser.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp) / "ws"
        _fill_workspace(workspace)
        port = _free_port()
        env = dict(os.environ, SIM_WORKSPACE=str(workspace), HF_HUB_OFFLINE="1")
        env.pop("SIM_DEFAULT_MODEL", None)           # the embedded model, as users get it
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1",
             "--server.fileWatcherType", "none"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_for(f"http://127.0.0.1:{port}/_stcore/health")
            _shots(f"http://127.0.0.1:{port}")
        finally:
            server.terminate()
            server.wait(timeout=20)
    print("\n".join(sorted(str(p.relative_to(ROOT)) for p in OUT.glob("*.png"))))


if __name__ == "__main__":
    main()
