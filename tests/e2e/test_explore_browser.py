"""The Explore tab in Debian's Chromium at a desktop (1400×1000) and a phone (390×844) size: what a person sees.

Readable cards (whole titles, nothing over the first row, three or four columns on a phone), a persona filling the
history, rank changes after a click, a visible warning for unknown ids, and the user marker inside the map.
Screenshots go to artifacts/screenshots/explore-*.png (gitignored).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app.helpers import ROOT, served_app, tiny_run

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
SHOTS = ROOT / "artifacts" / "screenshots"
SIZES = {"desktop": {"width": 1400, "height": 1000}, "phone": {"width": 390, "height": 844}}
CARDS = "#catalogue button[data-item]"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed (/usr/bin/chromium)"),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, object]]:
    """(url, studio): the app on a free port over its own Studio."""
    from sicsrec.app.studio import AppConfig, Studio

    work = tmp_path_factory.mktemp("explore-e2e")
    run = tiny_run(tmp_path_factory.getbasetemp())
    studio = Studio(AppConfig(checkpoint=run, workdir=work / "runs", cache_dir=work / "cache", train_threads=1))
    with served_app(studio) as url:
        yield url, studio


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """One headless Chromium for the module."""
    sync_playwright = pytest.importorskip("playwright.sync_api", reason="playwright not installed").sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(params=list(SIZES))
def page(request: pytest.FixtureRequest, browser, served: tuple[str, object]) -> Iterator:
    """A fresh page (a fresh session) at a desktop or phone size, opened once the first recommendations show."""
    page = browser.new_page(viewport=SIZES[request.param])
    page.set_default_timeout(60_000)
    page.goto(served[0])
    page.wait_for_selector(CARDS)
    page.wait_for_selector("#recommendations button[data-item]")
    page.size_name = request.param
    yield page
    page.close()


def first_row_uncovered(page) -> list[str]:
    """Titles of first-row catalogue cards whose centre (poster or caption) is covered by another element."""
    return page.evaluate(
        """(sel) => {
          const cards = [...document.querySelectorAll(sel)];
          cards[0].scrollIntoView({block: 'center'});
          const top = cards[0].getBoundingClientRect().top;
          const row = cards.filter(c => Math.abs(c.getBoundingClientRect().top - top) < 2);
          const bad = [];
          for (const c of row) {
            for (const part of [c.querySelector('.sr-poster'), c.querySelector('.sr-title')]) {
              const r = part.getBoundingClientRect();
              const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
              if (!hit || !c.contains(hit)) bad.push(c.title);
            }
          }
          return bad;
        }""",
        CARDS,
    )


def test_cards_are_readable_and_uncovered(page) -> None:
    assert first_row_uncovered(page) == []
    cards = page.evaluate(
        """(sel) => [...document.querySelectorAll(sel)].map(c => {
          const t = c.querySelector('.sr-title'), cr = c.getBoundingClientRect(), tr = t.getBoundingClientRect();
          return {title: c.title, shown: t.innerText, clipped: t.scrollHeight > t.clientHeight + 1,
                  inside: tr.left >= cr.left - 0.5 && tr.right <= cr.right + 0.5, left: Math.round(cr.left),
                  width: Math.round(cr.width)};
        })""",
        CARDS,
    )
    for c in cards:
        assert c["inside"], f"caption overflows its card: {c['title']}"
        if len(c["title"]) <= 60:  # a title up to 60 characters appears whole (wrapped, never cut)
            assert c["shown"].replace("\n", " ") == c["title"] and not c["clipped"], c
        assert len(c["shown"]) >= min(40, len(c["title"]))  # never cut below 40 characters
    assert len({c["width"] for c in cards}) == 1  # one card size
    columns = len({c["left"] for c in cards[:12]})
    assert (3 <= columns <= 4) if page.size_name == "phone" else columns >= 5
    assert page.locator("#history img").count() == 0  # an empty history is a sentence, no broken image
    page.screenshot(path=str(SHOTS / f"explore-{page.size_name}-start.png"), full_page=True)


def test_search_keeps_the_card_size(page) -> None:
    width = page.locator(CARDS).first.bounding_box()["width"]
    page.get_by_placeholder("Search titles…").fill("star wars")
    page.wait_for_function(
        "(sel) => [...document.querySelectorAll(sel)].every(c => c.title.toLowerCase().includes('star wars'))",
        arg=CARDS,
    )
    assert abs(page.locator(CARDS).first.bounding_box()["width"] - width) < 1


def test_persona_fills_the_history_and_a_click_shows_what_changed(page, served) -> None:
    from sicsrec.app.tabs.explore import persona_history

    SHOTS.mkdir(parents=True, exist_ok=True)
    studio = served[1]
    expected = persona_history(studio.run("").catalogue, "Star Wars fan")
    page.locator("#persona-0").click()
    page.wait_for_function(f"document.querySelectorAll('#history .sr-chip').length === {len(expected)}")
    chips = page.locator("#history .sr-chip").all_inner_texts()
    cat = studio.run("").catalogue
    assert [c.split(". ", 1)[1].rstrip("✕").strip() for c in chips] == [cat.titles[cat.position[i]] for i in expected]
    recs = page.locator("#recommendations button[data-item]")
    first = recs.first.inner_text()
    assert "#1" in first and re.search(r"\b\d\.\d{3}\b", first)  # rank and a 3-decimal score
    assert recs.first.locator(".sr-bar").count() == 1

    card = page.locator(CARDS).nth(3)
    card.click()
    page.get_by_text("Since your last click").wait_for()
    assert card.locator(".sr-seen").is_visible()  # watched items are marked in the catalogue
    redraw = page.locator("#redraw-map")  # the map stays as drawn after a click: its button says so
    page.wait_for_function("document.querySelector('#redraw-map').innerText.includes('earlier one')")
    redraw.click()
    page.wait_for_function("!document.querySelector('#redraw-map').innerText.includes('earlier one')")
    page.wait_for_selector("#embedding-map .js-plotly-plot .scatterlayer")
    page.screenshot(path=str(SHOTS / f"explore-{page.size_name}-persona.png"), full_page=True)


def test_map_keeps_the_user_marker_in_view(page) -> None:
    page.locator("#persona-1").click()
    page.wait_for_function("document.querySelectorAll('#history .sr-chip').length > 0")
    page.wait_for_function(
        "[...document.querySelectorAll('#embedding-map .legendtext')].some(t => t.textContent.startsWith('you'))"
    )
    inside = page.evaluate(
        """() => {
          const plot = document.querySelector('#embedding-map .js-plotly-plot');
          const area = plot.querySelector('.nsewdrag').getBoundingClientRect();
          const traces = plot.querySelectorAll('.scatterlayer .trace');
          const you = traces[traces.length - 1].querySelector('.point').getBoundingClientRect();
          const cx = you.left + you.width / 2, cy = you.top + you.height / 2;
          return cx >= area.left && cx <= area.right && cy >= area.top && cy <= area.bottom;
        }"""
    )
    assert inside


def test_unknown_ids_are_said_on_the_page(page) -> None:
    page.get_by_text("History as item ids").click()
    box = page.get_by_label("Watch item ids")
    box.fill("no-such-item")
    box.press("Enter")
    page.locator("#status").get_by_text("unknown item id").wait_for()


def test_the_tour_is_collapsed_on_a_phone_and_open_on_a_desktop(page) -> None:
    """On a phone the three-step tour starts collapsed, so the catalogue's first row starts on the first screen; on a
    desktop it starts open. Either way its header opens and hides it."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    tour = page.locator('#tour [data-testid="accordion-content"]')
    phone = page.size_name == "phone"
    assert tour.is_visible() is not phone
    page.screenshot(path=str(SHOTS / f"explore-{page.size_name}-tour.png"))  # the first screen, as a person sees it
    if phone:
        top = page.locator(CARDS).first.bounding_box()["y"]  # not scrolled yet: the distance from the page's top
        assert top < SIZES["phone"]["height"], f"the first catalogue card starts {top:.0f} px down, below the fold"
    header = page.locator("#tour button.label-wrap")
    header.click()
    tour.wait_for(state="visible" if phone else "hidden")
    header.click()
    tour.wait_for(state="hidden" if phone else "visible")


def test_map_lines_join_the_history_to_the_recommendations(page) -> None:
    """With "Lines from history to recommendations" on (the default), the map has one line trace, listed in the
    legend; turned off, the map is redrawn without it."""
    from sicsrec.app.plots import LINKS_NAME

    SHOTS.mkdir(parents=True, exist_ok=True)
    legend = f"[...document.querySelectorAll('#embedding-map .legendtext')].some(t => t.textContent === {LINKS_NAME!r})"
    page.locator("#persona-0").click()
    page.wait_for_function("document.querySelectorAll('#history .sr-chip').length > 0")
    page.wait_for_function(legend)
    lines = page.evaluate(  # per trace that draws lines: its number of segments (plotly draws one path each)
        "() => [...document.querySelectorAll('#embedding-map .scatterlayer .trace')]"
        ".map(t => t.querySelectorAll('.js-line').length).filter(n => n > 0)"
    )
    shown = page.locator("#recommendations button[data-item]").count()
    assert lines == [shown]  # one trace of None-separated segments, a segment per recommendation
    plot = page.locator("#embedding-map")
    plot.scroll_into_view_if_needed()
    plot.screenshot(path=str(SHOTS / f"explore-{page.size_name}-map-lines.png"))
    page.locator("#map-lines input[type=checkbox]").uncheck()
    page.wait_for_function(f"!({legend})")
    assert page.locator("#embedding-map .scatterlayer .trace .js-line").count() == 0


def test_an_added_item_is_seen_by_its_session_only(browser, served: tuple[str, object]) -> None:
    """Two students (two browser sessions): the one who adds an item finds its card marked new; the other,
    searching the same title, does not get it."""
    pages = []
    for _ in range(2):
        page = browser.new_page(viewport=SIZES["desktop"])
        page.set_default_timeout(60_000)
        page.goto(served[0])
        page.wait_for_selector(CARDS)
        pages.append(page)
    adder, other = pages
    title = "A brand new upload for the session test"
    adder.click("#add-item button")  # open the accordion
    adder.get_by_label("Title").fill(title)
    adder.get_by_label("Title").press("Enter")
    adder.wait_for_selector('#catalogue button[data-item="new-1"]')
    assert "new" in adder.inner_text('#catalogue button[data-item="new-1"]').lower()
    button = adder.get_by_role("button", name="Add the item", exact=True)  # disabled while adding, then back
    button.wait_for()
    assert button.is_enabled()
    adder.screenshot(path=str(SHOTS / "explore-added-item.png"))
    other.get_by_placeholder("Search titles…").fill(title)
    other.wait_for_function(
        "() => /No title matches/.test(document.body.innerText)", timeout=30_000
    )  # the search ran and found nothing: the item is not in this session's catalogue
    assert other.locator('#catalogue button[data-item="new-1"]').count() == 0
    for page in pages:
        page.close()
