"""End to end in Debian's Chromium: watch three titles, read the explanations, upload data, train, screenshot.

Screenshots of every tab go to artifacts/screenshots/ (gitignored).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app.helpers import ROOT, demo_slice, served_app, tiny_run, zip_folder

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = ROOT / "artifacts" / "screenshots"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian chromium not installed (/usr/bin/chromium); apt-get install -y chromium chromium-driver",
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(url, slice zip): the app on a free port over its own Studio, and a dataset zip to upload."""
    from sicsrec.app.studio import AppConfig, Studio

    base = tmp_path_factory.getbasetemp()
    run = tiny_run(base)
    work = tmp_path_factory.mktemp("e2e")
    # one training thread: steady timings when other processes share the cores
    studio = Studio(
        AppConfig(checkpoint=run, workdir=work / "runs", cache_dir=work / "cache", train_threads=1, train_nice=0)
    )
    with served_app(studio) as url, pytest.MonkeyPatch.context() as mp:
        mp.setenv("SICSREC_CACHE", str(work / "features"))  # stage A's aligned features stay in the test
        yield url, zip_folder(demo_slice(base / "slice"), work / "slice.zip")


@pytest.fixture(scope="module")
def page(served: tuple[str, Path]) -> Iterator:
    """One Chromium page on the app, opened once the catalogue shows."""
    sync_playwright = pytest.importorskip(
        "playwright.sync_api", reason="playwright (python driver) not installed"
    ).sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.set_default_timeout(30_000)
        page.goto(served[0])
        page.wait_for_selector("#catalogue button[data-item]")
        yield page
        browser.close()


def titles(page, grid: str) -> list[str]:
    """The card titles of a card grid (catalogue, recommendations), in order."""
    return [t.strip() for t in page.locator(f"#{grid} .sr-title").all_inner_texts()]


def test_watch_three_titles_and_see_why(page) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_selector("#recommendations button[data-item]")
    before = titles(page, "recommendations")
    watched = titles(page, "catalogue")[:3]
    for n in (1, 2, 3):
        page.locator("#catalogue button[data-item]").nth(n - 1).click()
        page.wait_for_function(f"document.querySelectorAll('#history .sr-chip').length === {n}")
    page.wait_for_function(
        "[...document.querySelectorAll('#recommendations .sr-score')].every(s => s.innerText !== 'popular')"
    )
    history = [h.rstrip("✕").strip() for h in page.locator("#history .sr-chip").all_inner_texts()]
    assert history == [f"{n}. {t}" for n, t in enumerate(watched, 1)]  # in click order, titles whole
    assert titles(page, "recommendations") != before
    page.wait_for_selector("#attribution .sr-attr-track i")  # stacked bars drawn
    page.wait_for_selector("#embedding-map .js-plotly-plot")
    page.screenshot(path=str(SHOTS / "explore.png"), full_page=True)


def test_evaluate_tab_shows_saved_metrics(page) -> None:
    page.get_by_role("tab", name="Evaluate").click()
    page.get_by_text("Metrics are read from the run").wait_for()
    page.locator(".js-plotly-plot >> visible=true").first.wait_for()
    page.screenshot(path=str(SHOTS / "evaluate.png"), full_page=True)


def test_upload_then_train_a_tiny_job(page, served: tuple[str, Path]) -> None:
    page.get_by_role("tab", name="Data").click()
    page.locator("#dataset-upload input[type=file]").set_input_files(str(served[1]))
    page.get_by_text("is ready to train on").wait_for(timeout=60_000)
    page.screenshot(path=str(SHOTS / "data.png"), full_page=True)

    page.get_by_role("tab", name="Train").click()
    presets = page.locator("#train-presets button")
    assert presets.first.inner_text().startswith("✓ Quick demo")  # the form opens on the quick preset, marked
    for label, value in (("hidden size d", 16), ("max epochs", 1), ("patience", 1), ("batch (targets)", 512)):
        box = page.get_by_label(f"number input for {label}")
        box.fill(str(value))
        box.press("Enter")
    page.wait_for_function(  # a changed field clears the mark: the form no longer holds a preset
        "![...document.querySelectorAll('#train-presets button')].some(b => b.innerText.startsWith('✓'))"
    )
    page.get_by_label("Stage A1 · pair mining").check()
    page.get_by_label("Stage A2 · encoder alignment").check()
    page.get_by_text("Stage A settings").click()
    page.get_by_label("Pair-mining backend").click()
    page.get_by_role("option", name="MiniLM title similarity (FALLBACK: no LLM)").click()
    page.get_by_label("adamw").check()
    page.get_by_label("alignment lr").fill("0.0001")
    box = page.get_by_label("number input for alignment epochs")
    box.fill("1")
    box.press("Enter")
    page.locator("#start-training").click()
    page.locator("#job-status").get_by_text("Stage A").wait_for(timeout=60_000)
    page.locator("#job-status").get_by_text("Finished").wait_for(timeout=240_000)
    status = page.locator("#job-status").inner_text()
    assert "SASRec" in status and "SICSRec" in status
    metrics = page.locator("#job-metrics").inner_text()
    assert "FALLBACK: no LLM" in metrics and "Encoder alignment" in metrics and "aligned features" in metrics
    page.locator(".js-plotly-plot >> visible=true").first.wait_for()
    page.screenshot(path=str(SHOTS / "train.png"), full_page=True)

    folder = status.split("→ run ", 1)[1].split(". Pick it", 1)[0].strip()  # the new run's name, no server path
    assert "/runs/" not in status
    page.locator("#run-select input").click()
    page.get_by_role("option", name=folder).click()
    page.get_by_role("tab", name="Explore").click()
    page.locator("#recommendations button[data-item]").first.wait_for()
    assert folder in page.locator("#run-select input").input_value()
