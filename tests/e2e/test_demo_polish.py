"""Issue 19 in Debian's Chromium, at desktop (1400x1000) and phone (390x844) size: the Evaluate tab's noise badge,
one colour per model in the training curves and the evaluation chart, the Data tab's error text in full, k only on
Explore. Screenshots go to artifacts/screenshots/polish-<size>-<tab>.png (gitignored)."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sicsrec.app.plots import MODEL_COLOURS, MODEL_NAMES
from tests.app.helpers import demo_slice, served_app, tiny_run
from tests.e2e.test_browser import ARGS, CHROMIUM, SHOTS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed (/usr/bin/chromium)"),
]
SIZES = {"desktop": {"width": 1400, "height": 1000}, "phone": {"width": 390, "height": 844}}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(url, unrecognised zip): the app over a Studio whose last job trained SASRec on the demo slice."""
    from sicsrec.app.studio import AppConfig, Studio
    from sicsrec.config import DataConfig, ModelConfig, RunConfig, TrainConfig

    base = tmp_path_factory.getbasetemp()
    work = tmp_path_factory.mktemp("polish")
    studio = Studio(AppConfig(checkpoint=tiny_run(base), workdir=work / "runs", cache_dir=work / "cache", train_nice=0))
    cfg = RunConfig(
        "sasrec",
        DataConfig(path=str(demo_slice(base / "slice"))),
        model_cfg=ModelConfig(hidden=16, ffn=16),
        train=TrainConfig(max_epochs=1, patience=1, batch_size=512, device="cpu", threads=1),
    )
    job = studio.jobs.start(cfg, ("sasrec",), work / "runs" / "20260101-000000")
    assert job.thread is not None
    job.thread.join(600)
    assert not job.running and not job.error, job.error
    bad = work / "mystery.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("mydata/ratings.dat", "1::2::5::3\n")
        zf.writestr("mydata/notes_v2.txt", "hello")
    with served_app(studio) as url:
        yield url, bad


@pytest.fixture(scope="module", params=list(SIZES))
def page(request: pytest.FixtureRequest, served: tuple[str, Path]) -> Iterator:
    """A Chromium page on the app at one size (the test id names it)."""
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport=SIZES[request.param])
        page.set_default_timeout(120_000)
        page.goto(served[0])
        page.locator("#run-select").wait_for()
        page.size = request.param
        yield page
        browser.close()


def _shot(page: Any, tab: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"polish-{page.size}-{tab}.png"), full_page=True)


def _inside(page: Any, selector: str) -> None:
    """Every element matching `selector` lies within the viewport's width and shows all of its text."""
    width = page.viewport_size["width"]
    for box in page.locator(selector).all():
        b = box.bounding_box()
        assert b is not None and b["x"] >= 0 and b["x"] + b["width"] <= width + 1, (selector, b)
        assert box.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), f"{selector} overflows"


def _trace_colours(page: Any, selector: str) -> dict[str, str]:
    """Trace name -> colour of the plotly figure in `selector` (lines and bars), as the browser holds it."""
    page.locator(f"{selector} .js-plotly-plot").wait_for()
    return page.locator(f"{selector} .js-plotly-plot").evaluate(
        "g => Object.fromEntries(g.data.map(t => [t.name, (t.line && t.line.color) || (t.marker && t.marker.color)]))"
    )


def test_evaluate_shows_the_noise_badge_and_the_floor(page: Any) -> None:
    page.get_by_role("tab", name="Evaluate").click()
    badge = page.locator("#eval-run .sr-badge").first
    badge.wait_for()
    assert badge.inner_text() == "within noise" and badge.get_attribute("title")
    run = page.locator("#eval-run").inner_text()
    assert "This run is one seed" in run and "cannot show a gain reliably" in run and "popularity floor" in run
    assert "Benchmark over seeds" in page.locator("#eval-benchmark").inner_text()
    assert not page.locator("#eval-run").get_by_text("NDCG@10 0.0434").count()  # 3 decimals everywhere
    _inside(page, "#eval-run .sr-metric-line")
    assert not page.locator("#k-slider").is_visible()  # k acts on Explore only
    page.locator("#eval-chart .js-plotly-plot").wait_for()
    _shot(page, "evaluate")


def test_a_model_has_the_same_colour_in_curves_and_evaluate(page: Any) -> None:
    page.get_by_role("tab", name="Evaluate").click()
    bars = _trace_colours(page, "#eval-chart")
    page.get_by_role("tab", name="Train").click()
    curves = _trace_colours(page, "#train-curves")
    sasrec = MODEL_NAMES["sasrec"]
    assert bars[sasrec] == MODEL_COLOURS["sasrec"]
    assert {c for name, c in curves.items() if name.startswith(sasrec)} == {MODEL_COLOURS["sasrec"]}
    assert "Quick demo (~1 min)" in page.locator("#train-presets").inner_text()
    page.locator("#train-estimate").get_by_text("Estimated time").wait_for()
    _shot(page, "train")


def test_data_error_is_shown_in_full(page: Any, served: tuple[str, Path]) -> None:
    page.get_by_role("tab", name="Data").click()
    page.locator("#dataset-upload input[type=file]").set_input_files(str(served[1]))
    report = page.locator("#data-report")
    report.get_by_text("Not a usable dataset").wait_for()
    text = report.inner_text()
    assert "<name>.inter" in text and "ratings.dat" in text and "notes_v2.txt" in text
    assert "*_item_sort.csv" in text and "/tmp" not in text
    _inside(page, "#data-report p")
    _shot(page, "data")
    page.get_by_role("tab", name="Explore").click()
    page.locator("#k-slider").wait_for()  # back where k acts, it shows again
