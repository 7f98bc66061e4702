"""Click-to-new-recommendations latency of the Explore tab, as a person sees it, in headless Chromium.

    python bench/bench_clicks.py [--clicks 50] [--port 7872] [--url URL] [--checkpoint DIR] [--width 1400]

Starts `python app.py` (or drives a running app given --url), then clicks catalogue cards one after
another. Per click it records the time from the click to the *last* change of the page's visible
text (a text node added, removed or edited in a visible element: cards, plot labels and progress
timers alike), once the page has been quiet for --quiet seconds; and the same for the recommendation
cards, history and status line alone. Prints p50 / p95 / max of both, and the bytes the server
answered per click (queued events' streams and direct answers), so payload size and server time
can be told apart. No asserts.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_app import served_app  # noqa: E402  bench/ is on sys.path when this script runs

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page, Response

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
# Catalogue cards: the HTML card grid's buttons (or, on older builds, the gallery's thumbnails).
CARDS = "#catalogue button[data-item], #catalogue button.thumbnail-item"

# Records the time of the last visible text change in the page (text nodes added/removed/edited), and of the
# last one inside the recommendation cards, the history or the status line (what a click is about).
OBSERVE = """() => {
  window.__lastText = window.__lastCards = performance.now();
  const hasText = (n) => (n.nodeType === 3 ? n.data.trim() : (n.textContent || '').trim()) !== '';
  const element = (r) => (r.target.nodeType === 1 ? r.target : r.target.parentElement);
  // not seen: screen-reader notices, and the timers of events shown without a progress overlay (Gradio keeps
  // their status tracker in the page at opacity 0 and still ticks its "0.1s, 0.2s" text)
  const unseen = (r) =>
    element(r).closest('.sr-only') ||
    !element(r).checkVisibility({opacityProperty: true, visibilityProperty: true});
  new MutationObserver((records) => {
    for (const r of records) {
      if (unseen(r)) continue;
      if (r.type === 'characterData' || [...r.addedNodes, ...r.removedNodes].some(hasText)) {
        window.__lastText = performance.now();
        if (element(r).closest('#recommendations, #history, #status')) window.__lastCards = window.__lastText;
      }
    }
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def time_click(page: Page, card: Locator, quiet: float) -> tuple[float, float]:
    """Seconds from clicking `card` to the last text change of the page and of the cards, once the page stayed
    quiet for `quiet` seconds."""
    t0 = page.evaluate("() => performance.now()")
    card.click()
    while True:
        time.sleep(0.05)
        now, last, cards = page.evaluate("() => [performance.now(), window.__lastText, window.__lastCards]")
        if last > t0 and (now - last) / 1000 >= quiet:
            return (last - t0) / 1000, (cards - t0) / 1000
        if (now - t0) / 1000 > 30:
            raise SystemExit("no text change within 30 s of a click")


def body_size(response: Response) -> int:
    """Bytes of a response body (0 when the browser no longer holds it)."""
    try:
        return len(response.body())
    except Exception:
        return 0


def run(url: str, clicks: int, quiet: float, width: int, height: int) -> None:
    """Open the app, wait for the first recommendations, click `clicks` catalogue cards, print the figures."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.set_default_timeout(120_000)
        received: list[int] = []
        answers = ("queue/data", "run/predict")  # queued events stream their answers; the others answer at once
        page.on("response", lambda r: received.append(body_size(r)) if any(a in r.url for a in answers) else None)
        page.goto(url)
        page.wait_for_selector(CARDS)
        page.wait_for_selector("#recommendations button[data-item], #recommendations .thumbnail-item")
        time.sleep(3)  # the page's load events settle
        page.evaluate(OBSERVE)
        cards = page.locator(CARDS)
        n_cards = cards.count()
        whole, cards_only, sent = [], [], []
        for i in range(clicks):
            before = sum(received)
            t_page, t_cards = time_click(page, cards.nth((i * 7) % n_cards), quiet)
            whole.append(t_page)
            cards_only.append(t_cards)
            sent.append(sum(received) - before)
        browser.close()
    print(f"{clicks} clicks at {width}x{height}, click → last text change:")
    for name, seconds in (("whole page", whole), ("cards, history, status", cards_only)):
        ms = sorted(x * 1000 for x in seconds)
        p95 = ms[round(0.95 * (len(ms) - 1))]
        print(f"  {name:24s} p50 {statistics.median(ms):5.0f} ms, p95 {p95:5.0f} ms, max {ms[-1]:5.0f} ms")
    print(f"server → page per click: median {statistics.median(sent) / 1024:.1f} KiB (event answers)")


def main() -> None:
    """Parse flags, start the app unless --url is given, and time the clicks."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clicks", type=int, default=50)
    p.add_argument("--quiet", type=float, default=1.0, help="seconds without a text change that end a click")
    p.add_argument("--port", type=int, default=7872)
    p.add_argument("--url", default="", help="a running app to drive instead of starting one")
    p.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "demo")
    p.add_argument("--width", type=int, default=1400)
    p.add_argument("--height", type=int, default=1000)
    args = p.parse_args()
    if args.url:
        run(args.url, args.clicks, args.quiet, args.width, args.height)
        return
    with served_app(args.port, args.checkpoint, "bench_clicks.log", []) as (url, _):
        run(url, args.clicks, args.quiet, args.width, args.height)


if __name__ == "__main__":
    main()
