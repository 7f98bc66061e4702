"""Explore tab: browse the catalogue, build a watch history, see and explain the recommendations.

The catalogue, the history and the recommendations are HTML card grids (`gr.HTML`): full titles that wrap,
rank, score and a behavior/content bar per recommendation. A click on a card sends its item id (no gallery
index) and one event recomputes everything that depends on the history, with one run of the model; the
embedding map follows in a second event, so the cards never wait for the plot. A change of map space or
method redraws the map from that click's result, kept per session, without running the model again;
t-SNE / UMAP maps are fitted in a background process per run (PCA is shown until they are ready).
"""

from __future__ import annotations

import atexit
import functools
import html
import logging
import math
import os
import re
import threading
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from multiprocessing import get_context
from multiprocessing.pool import Pool
from typing import Any

import gradio as gr
import numpy as np
import plotly.graph_objects as go
from gradio.components.plot import PlotData

from sicsrec.app.plots import (
    MODEL_NAMES,
    PART_COLOURS,
    PART_HELP,
    embedding_spec,
    empty_figure,
    model_colour,
    plot_data,
    short,
)
from sicsrec.app.runs import SPACES, Catalogue, LoadedRun, RunError
from sicsrec.app.shell import UI, Shell
from sicsrec.app.studio import Studio, serving_threads
from sicsrec.app.thumbnails import Thumbnails
from sicsrec.checkpoint import CheckpointError
from sicsrec.data.schema import DataError
from sicsrec.features.images import image_problem
from sicsrec.serve import PARTS, RecResult, resolve_k, response
from sicsrec.serve.history import append_click, parse_history
from sicsrec.serve.projection import Projection, available_methods, project

log = logging.getLogger(__name__)

PAGE_SIZE = 48
MAX_TITLE = 200  # characters of a title typed into "Add an item"
TITLE_MAX = 90  # characters of a title in a text line (because-you-watched, changes): real titles appear whole
NEW_BADGE = "new · scored by content"  # on the card of an item added without retraining
NEW_NOTE = (  # under the attribution when an added item is listed
    "★ new item, scored by content: it has no interactions yet. Its content part reads its title (and cover); "
    "its behavior and mixed parts use the ID embedding the content-to-ID bridge predicted from that content."
)
Page = tuple[str, str, int]  # catalogue cards (HTML), page info, page number
MAX_HISTORY = 200  # kept in the session; the model reads its last max_len items
BECAUSE_TOP = 2  # history items named per recommendation
FILE_URL = "gradio_api/file="  # where Gradio serves the static thumbnail folder (relative: works under a proxy path)
CONTENT_DRIVEN = 0.4  # share of |content + mixed| in a score's parts above which a recommendation is "content-driven"
# Clicks in a card grid send the card's item id and action to Python (`gr.EventData`): one listener for the grid,
# so cards re-rendered by an update keep working, and keyboard users get the same (cards are <button>s).
CARD_CLICKS = """
element.addEventListener('click', (event) => {
  const card = event.target.closest('button[data-item]');
  if (card && element.contains(card)) trigger('click', {item: card.dataset.item, action: card.dataset.action});
});
"""


@dataclass(frozen=True)
class Persona:
    """A lesson-mode history found in the demo data by title and genre look-ups (never by fixed ids)."""

    titles: tuple[str, ...] = ()  # title fragments (any case), matched most popular first
    category: str = ""  # fills the history from this category when titles find too few
    years: tuple[int, int] | None = None  # the (first, last) release years of the category fill
    size: int = 5


PERSONAS = {
    "Star Wars fan": Persona(titles=("star wars",), category="Sci-Fi"),  # the saga, in release order
    "Pixar kid": Persona(  # Pixar's features, else the most-watched animation
        titles=("toy story", "monsters, inc.", "finding nemo", "incredibles", "ratatouille", "wall·e", "up (2009)"),
        category="Animation",
    ),
    "90s drama": Persona(category="Drama", years=(1990, 1999)),  # the decade's most-watched dramas
}
YEAR = re.compile(r"\((\d{4})\)\s*$")


def release_year(title: str) -> int | None:
    """The year of a MovieLens-style 'Title (1999)', else None."""
    m = YEAR.search(title)
    return int(m.group(1)) if m else None


def persona_history(cat: Catalogue, name: str) -> list[str]:
    """The item ids of a persona in this catalogue, oldest release first (empty when nothing matches)."""
    persona = PERSONAS[name]
    picked = [int(i) for i in cat.by_popularity if any(t in cat.titles[int(i)].lower() for t in persona.titles)][
        : persona.size
    ]
    if len(picked) < persona.size and persona.category:
        lo, hi = persona.years or (0, 9999)
        fill = (
            int(i)
            for i in cat.by_popularity
            if cat.categories[int(i)] == persona.category
            and int(i) not in picked
            and lo <= (release_year(cat.titles[int(i)]) or -1) <= hi
        )
        picked += [i for _, i in zip(range(persona.size - len(picked)), fill)]
    picked.sort(key=lambda i: release_year(cat.titles[i]) or 0)
    return [cat.item_ids[i] for i in picked]


@dataclass
class Shown:
    """What the last refresh of a session showed (kept in a gr.State): the map redraws from it, and the next
    refresh compares its ranks with it."""

    run_key: str
    history: list[str] = field(default_factory=list)
    recommended: list[str] = field(default_factory=list)
    user: np.ndarray | None = None  # the scored user vector of that click (None for popular items)
    personal: bool = False  # whether `recommended` came from the model (not popular items)
    drivers: list[str] = field(default_factory=list)  # per recommended item, the watched item that drives it most


def clicked(evt: gr.EventData) -> tuple[str, str]:
    """(item id, action) a card grid's click sent; empty strings when the click carried none."""
    data = evt._data if isinstance(evt._data, dict) else {}
    return str(data.get("item") or ""), str(data.get("action") or "")


def add_button() -> gr.Button:
    """ "Add the item", ready for a click."""
    return gr.Button("Add the item", variant="primary", size="sm", interactive=True)


def adding_button() -> gr.Button:
    """The same button while an item is being added: disabled, saying so."""
    return gr.Button("Adding the item…", variant="primary", size="sm", interactive=False)


MAP_BUTTON = "↻ Draw the map for this history"


def map_button(stale: bool = False) -> gr.Button:
    """The map's redraw button; highlighted, saying so, once clicks have moved the history past the drawn map."""
    if stale:
        return gr.Button(MAP_BUTTON + " (it shows an earlier one)", variant="primary")
    return gr.Button(MAP_BUTTON, variant="secondary")


def esc(text: object) -> str:
    """Text escaped for HTML content and attribute values."""
    return html.escape(str(text), quote=True)


def thumb_src(path: str) -> str:
    """The URL of a thumbnail file in the static folder Gradio serves."""
    return FILE_URL + urllib.parse.quote(path)


def card(cat: Catalogue, thumbs: Thumbnails, i: int, label: str = "", extra: str = "") -> str:
    """One card that watches its item when clicked: poster, the full title (wrapping), an optional rank label and
    extra lines."""
    title, iid = cat.titles[i], cat.item_ids[i]
    rank = f'<span class="sr-rank">{esc(label)}</span>' if label else ""
    if cat.is_new(i):
        extra = f'<span class="sr-added" title="added without retraining">{NEW_BADGE}</span>{extra}'
    return (
        f'<button type="button" class="sr-card" data-item="{esc(iid)}" data-action="watch" '
        f'title="{esc(title)}" aria-label="Watch {esc(title)}">'
        f'<span class="sr-poster"><img src="{esc(thumb_src(thumbs.path(cat, i)))}" alt="" loading="lazy">{rank}'
        f'<span class="sr-seen" aria-hidden="true">✓ watched</span></span>'
        f'<span class="sr-cap"><span class="sr-title">{esc(title)}</span>{extra}</span></button>'
    )


def part_bar(item: dict[str, Any]) -> str:
    """A thin bar of a recommendation's |behavior|, |content| and |mixed| shares (bias left out)."""
    parts = {p: abs(float(item.get(p, 0.0))) for p in ("behavior", "content", "mixed")}
    whole = sum(parts.values())
    if whole == 0:
        return ""
    share = {p: v / whole for p, v in parts.items() if v > 0}
    spans = "".join(f'<i style="width:{s:.1%};background:{PART_COLOURS[p]}"></i>' for p, s in share.items())
    said = ", ".join(f"{s:.0%} {p}" for p, s in share.items())
    return f'<span class="sr-bar" role="img" aria-label="{said}" title="{said}">{spans}</span>'


def content_share(item: dict[str, Any]) -> float:
    """The share of |content| + |mixed| in a recommendation's |behavior| + |content| + |mixed|."""
    parts = {p: abs(float(item.get(p, 0.0))) for p in ("behavior", "content", "mixed")}
    whole = sum(parts.values())
    return (parts["content"] + parts["mixed"]) / whole if whole else 0.0


def moves(before: list[str], after: list[str]) -> dict[str, str]:
    """Per item of `after`: '▲n' / '▼n' (rank change since `before`), 'new', or '' (same rank)."""
    old = {iid: n for n, iid in enumerate(before)}
    out = {}
    for n, iid in enumerate(after):
        if iid not in old:
            out[iid] = "new"
        else:
            d = old[iid] - n
            out[iid] = f"▲{d}" if d > 0 else f"▼{-d}" if d < 0 else ""
    return out


def catalogue_html(cat: Catalogue, thumbs: Thumbnails, shown: list[int], info: str) -> str:
    """The catalogue page: a fixed-height grid of same-size cards (it never reflows under a finger)."""
    cards = "".join(card(cat, thumbs, i) for i in shown)
    body = f'<div class="sr-grid">{cards}</div>' if cards else f'<p class="sr-empty">{esc(info)}</p>'
    return f'<div class="sr-scroll" role="group" aria-label="Catalogue">{body}</div>'


def history_html(cat: Catalogue, thumbs: Thumbnails, history: list[str]) -> str:
    """The watch history as a compact wrapping row of chips (oldest first), each with a remove button, plus the
    style rule that marks these items as watched in the catalogue (so the catalogue is not re-sent per click)."""
    if not history:
        return (
            '<p class="sr-empty">No history yet: click a title in the catalogue, or pick a persona above, '
            "and the recommendations turn personal.</p>"
        )
    chips = []
    for n, iid in enumerate(history, 1):
        i = cat.position[iid]
        title = cat.titles[i]
        chips.append(
            f'<li class="sr-chip" title="{esc(title)}"><img src="{esc(thumb_src(thumbs.path(cat, i)))}" alt="">'
            f'<span>{n}. {esc(title)}</span><button type="button" data-item="{esc(iid)}" data-action="remove" '
            f'aria-label="Remove {esc(title)} from history">✕</button></li>'
        )
    selectors = ",".join(f'#catalogue button[data-item="{css_string(iid)}"] .sr-seen' for iid in history)
    return f'<ol class="sr-history">{"".join(chips)}</ol><style>{selectors} {{ display: block; }}</style>'


def css_string(text: str) -> str:
    """`text` escaped for a double-quoted CSS string inside a <style> element."""
    return "".join(ch if ch.isalnum() or ch in "-_. " else f"\\{ord(ch):x} " for ch in text)


def recs_html(run: LoadedRun, thumbs: Thumbnails, recs: RecResult, before: Shown | None) -> str:
    """Recommendation cards: rank, full title, score (3 decimals), behavior/content bar, and what changed since
    the previous list of the session (rank arrows, new items, dropped items); `before` is None after a run change."""
    cat = run.catalogue
    ids = [it["item_id"] for it in recs.items]
    personal = recs.source == "model"
    compare = before is not None and before.personal and personal
    change = moves(before.recommended, ids) if compare and before is not None else {}
    cards = []
    for n, it in enumerate(recs.items, 1):
        move = change.get(it["item_id"], "")
        badge = f'<span class="sr-move sr-{"new" if move == "new" else "up" if move.startswith("▲") else "down"}">'
        badge = f"{badge}{esc(move)}</span>" if move else ""
        score = (
            f'<span class="sr-score" title="score">{it["score"]:.3f}</span>'
            if personal
            else '<span class="sr-score">popular</span>'
        )
        extra = f'<span class="sr-meta">{score}{badge}</span>' + (part_bar(it) if personal else "")
        cards.append(card(cat, thumbs, cat.position[it["item_id"]], f"#{n}", extra))
    head = ""
    if compare and before is not None:
        kept = set(ids) | set(recs.history)  # an item watched since is not "dropped"
        dropped = [iid for iid in before.recommended if iid not in kept and iid in cat]
        new = sum(1 for m in change.values() if m == "new")
        up = sum(1 for m in change.values() if m.startswith("▲"))
        down = sum(1 for m in change.values() if m.startswith("▼"))
        gone = ", ".join(esc(short(cat.titles[cat.position[i]], TITLE_MAX)) for i in dropped[:4])
        head = (
            f'<p class="sr-changes"><b>Since your last click:</b> {new} new, {up} up ▲, {down} down ▼'
            + (f"; dropped: {gone}{' …' if len(dropped) > 4 else ''}" if dropped else "")
            + "</p>"
        )
    legend = (
        f'<p class="sr-keys">The number is the score; the bar splits it: {part_keys(("behavior", "content", "mixed"))}</p>'
        if personal
        else ""
    )
    return f'{head}<div class="sr-grid sr-recs">{"".join(cards)}</div>{legend}'


def attribution_html(items: list[dict[str, Any]]) -> str:
    """Why each recommendation scores: its exact score split into parts as one stacked bar per item (positive parts
    right of zero, negative ones left of it, the score as a diamond), in HTML: drawn at once on every click, where a
    plot would be rebuilt. Parts that are zero for every item (e.g. content for SASRec) are left out."""
    if not items:
        return '<p class="sr-empty">Popular items carry no attribution: watch something to get personal scores.</p>'
    parts = [p for p in PARTS if any(it[p] for it in items)]
    lo = min(0.0, *(sum(min(0.0, it[p]) for p in parts) for it in items), *(it["score"] for it in items))
    hi = max(0.0, *(sum(max(0.0, it[p]) for p in parts) for it in items), *(it["score"] for it in items))
    span = (hi - lo) or 1.0

    def pct(x: float) -> str:
        """Position of a score value on the shared axis."""
        return f"{(x - lo) / span * 100:.2f}%"

    rows = []
    for n, it in enumerate(items, 1):
        segments, up, down = [], 0.0, 0.0
        star = " ★" if it.get("scored_by") == "content" else ""
        for p in parts:
            v = float(it[p])
            if v >= 0:
                start, up = up, up + v
            else:
                down, start = down + v, down + v
            said = f"{p} {v:+.3f}: {PART_HELP[p]}"
            segments.append(
                f'<i data-part="{p}" data-value="{v:.6f}" title="{esc(said)}" '
                f'style="left:{pct(start)};width:{abs(v) / span * 100:.2f}%;background:{PART_COLOURS[p]}"></i>'
            )
        rows.append(
            f'<li><span class="sr-attr-label" title="{esc(it["title"])}">{n}. {esc(it["title"])}{star}</span>'
            f'<span class="sr-attr-track">{"".join(segments)}<b style="left:{pct(0.0)}"></b>'
            f'<em style="left:{pct(it["score"])}" title="score {it["score"]:.3f}">◆</em></span>'
            f'<span class="sr-attr-num" data-score="{it["score"]:.6f}">{it["score"]:.3f}</span></li>'
        )
    legend = part_keys(parts)
    note = (
        f'<p class="sr-attr-note">{esc(NEW_NOTE)}</p>' if any(it.get("scored_by") == "content" for it in items) else ""
    )
    return (
        f'<div class="sr-attr"><p class="sr-attr-head"><b>Why each item scores: exact split of its score</b> '
        f'<span class="sr-keys">{legend} · <span class="sr-key">◆ = total score</span></span></p><ol>{"".join(rows)}</ol>'
        f'<p class="sr-attr-axis"><span>{tick(lo)}</span><span>score contribution (0 at the dark line)</span>'
        f"<span>{tick(hi)}</span></p>{note}</div>"
    )


def part_keys(parts: Iterable[str]) -> str:
    """A colour key per score part, each square kept on one line with its word."""
    return " ".join(f'<span class="sr-key"><i style="background:{PART_COLOURS[p]}"></i>{p}</span>' for p in parts)


def tick(value: float) -> str:
    """An axis end label: two decimals, and a plain 0 rather than -0.00."""
    return "0" if abs(value) < 5e-3 else f"{value:.2f}"


def recommend(run: LoadedRun, history: str | list[str], k: float | str | None, influence: bool = True) -> RecResult:
    """Top-k of the run's main model, by the serving rules for the history and k (with leave-one-out influence
    unless told otherwise); without a model, the most popular items labelled "no_model"."""
    serving_threads()
    if run.main is not None:
        return run.main.recommend(history, k, exclude_history=True, influence=influence)
    parsed = parse_history(history, run.catalogue)
    k, k_note = resolve_k(k)
    return RecResult(
        run.catalogue.popular(k, set(parsed.known)),
        "no_model",
        unknown=parsed.unknown,
        repeats=parsed.repeats,
        k=k,
        k_note=k_note,
        history=parsed.known,
    )


def status_text(run: LoadedRun, recs: RecResult, n_history: int) -> str:
    """The line above the recommendations: which model, or why the list is only popular items, then what was done
    with the input (unknown or malformed ids, repeats, k)."""
    if run.main is None:
        text = (
            f"**Popular items (not personalised).** {run.problem} "
            "Train a model in the **Train** tab, then pick it in *Run* above."
        )
    elif recs.source == "cold_start":
        text = "**Popular items (not personalised):** none of the history's items is in this run's catalogue."
    elif recs.source != "model":
        text = "**Popular items (not personalised):** click titles in the catalogue to start a watch history."
    else:
        model = MODEL_NAMES.get(run.main.name, run.main.name)
        text = f"**{model}** recommendations for your {n_history} watched item(s)."
    return " ".join([text, *recs.notes])


def mix_summary(recs: RecResult) -> str:
    """How behavior- vs content-driven the whole list is (shares of |attribution|, bias excluded)."""
    if recs.source != "model":
        return ""
    totals = {p: sum(abs(it[p]) for it in recs.items) for p in ("behavior", "content", "mixed")}
    whole = sum(totals.values())
    if whole == 0:
        return ""
    share = {p: v / whole for p, v in totals.items()}
    lead, other = ("behavior", "content") if share["behavior"] >= share["content"] else ("content", "behavior")
    parts = ", ".join(f"{share[p]:.0%} {p}" for p in totals if totals[p] > 0)
    return (
        f"This list is **more {lead}- than {other}-driven**: {parts} "
        f"(how much of the top {len(recs.items)} scores each part carries, sign ignored; mixed = the part that "
        "blends behavior and content)."
    )


def top_drivers(recs: RecResult) -> list[str]:
    """Per recommendation, the watched item whose removal lowers its score most (the first "because you watched"
    item; the map's lines start there); empty without a personal list or its influence."""
    if recs.influence is None or recs.source != "model" or not recs.used_history:
        return []
    return [recs.used_history[int(i)] for i in np.argmax(recs.influence, axis=0)]


def _fall(drop: float) -> str:
    """A positive score drop as a fall: '−0.146', or '−<0.001' where three decimals would read '−0.000'."""
    return "−<0.001" if drop < 5e-4 else f"−{drop:.3f}"


def because_text(recs: RecResult, run: LoadedRun) -> str:
    """'Because you watched ...' per recommendation: the history items whose removal lowers it most."""
    if run.main is None:
        return "_With a trained model, this lists the watched items that drive each recommendation._"
    if recs.influence is None or recs.source != "model" or not recs.used_history:
        return "_Add items to your history to see which of them drive each recommendation._"
    cat = run.catalogue
    lines = []
    for j, it in enumerate(recs.items):
        col = recs.influence[:, j]
        order = [i for i in np.argsort(-col)[:BECAUSE_TOP] if col[i] > 0]
        why = ", ".join(
            f"{short(cat.titles[cat.position[recs.used_history[i]]], TITLE_MAX)} ({_fall(col[i])})" for i in order
        )
        lines.append(
            f"{j + 1}. **{short(it['title'], TITLE_MAX)}** ← " + (why or "_no single watched item stands out_")
        )
    return "Because you watched (in brackets: how much the score falls without that item):\n\n" + "\n".join(lines)


def side_by_side(run: LoadedRun, thumbs: Thumbnails, history: list[str], main: RecResult, k: int) -> str:
    """The same history's top-k from SICSRec and from SASRec in two columns of small cards: items only one model
    recommends are highlighted, and SICSRec's own picks say whether content drove them."""
    if run.main is None:
        return "<p class='sr-empty'>Side-by-side with SASRec (behavior only) appears here once a trained run is loaded.</p>"
    if main.source != "model":
        return "<p class='sr-empty'>Side-by-side with SASRec (behavior only) appears here once you watch something.</p>"
    if run.baseline is None:
        why = "the served model is SASRec itself" if run.main.name == "sasrec" else "this run has no SASRec checkpoint"
        return f"<p class='sr-empty'>No side-by-side: {why}. Train step 1 and step 2 in the <b>Train</b> tab to compare.</p>"
    cat = run.catalogue
    base = run.baseline.recommend(history, k, exclude_history=True).items
    a_ids, b_ids = [it["item_id"] for it in main.items], [it["item_id"] for it in base]
    shared = set(a_ids) & set(b_ids)

    def row(n: int, it: dict[str, Any], drivers: bool) -> str:
        """One small card of a column: only-this-model items highlighted, with what drove SICSRec's own picks."""
        own = it["item_id"] not in shared
        why = ""
        if own and drivers:
            c = content_share(it)
            why = f"<small>{'content-driven' if c >= CONTENT_DRIVEN else 'behavior-driven'} ({c:.0%} content)</small>"
        i = cat.position[it["item_id"]]
        return (
            f'<li class="{"sr-only-one" if own else "sr-both"}" title="{esc(it["title"])}">'
            f'<img src="{esc(thumb_src(thumbs.path(cat, i)))}" alt=""><span>{n}. {esc(it["title"])}'
            f"{' <b>only here</b>' if own else ''}{why}</span></li>"
        )

    name = MODEL_NAMES.get(run.main.name, run.main.name)
    left = "".join(row(n, it, True) for n, it in enumerate(main.items, 1))
    right = "".join(row(n, it, False) for n, it in enumerate(base, 1))
    return (
        f'<p><b>{len(shared)} of {len(a_ids)}</b> in both lists; <span class="sr-only-key">highlighted</span> = '
        "recommended by one model only.</p>"
        f'<div class="sr-sbs"><div><h4>{esc(name)}</h4><ol>{left}</ol></div>'
        f"<div><h4>SASRec (behavior only)</h4><ol>{right}</ol></div></div>"
    )


class Maps:
    """2-D maps of a run's item embeddings: PCA from the run (fitted once, fast); t-SNE / UMAP fitted per run and
    space in one background process at the lowest CPU priority, so a click never waits for one (PCA is shown until
    it is ready). A process, not a thread: a fit holds the GIL for long stretches, which would stall every request
    of the app."""

    def __init__(self, nice: int = 19) -> None:
        self.nice = nice  # the fitting process's CPU priority: the lowest (19) in the app
        self._fits: dict[tuple[int, str, str], Projection] = {}
        self._started: set[tuple[int, str, str]] = set()
        self._runs: dict[int, LoadedRun] = {}  # keeps the runs behind the id() keys alive
        self._lock = threading.Lock()
        self._pool: Pool | None = None

    def get(self, run: LoadedRun, space: str, method: str) -> tuple[Projection, str]:
        """(projection, note): the fitted `method` map, or PCA and a note while `method` is being fitted."""
        if method == "PCA" or method not in available_methods():
            return run.projection(space, "PCA"), ""
        key = (id(run), space, method)
        self.warm(run, [(space, method)])
        with self._lock:
            fitted = self._fits.get(key)
        if fitted is not None:
            return fitted, ""
        return run.projection(space, "PCA"), f"{method} fitting in the background: PCA for now"

    def warm(self, run: LoadedRun, which: list[tuple[str, str]]) -> None:
        """Start fitting a run's non-linear maps `which` ((space, method) pairs) in the background, once each.

        Only what someone asked for: an eager fit of every space and method kept a core busy for minutes."""
        if run.main is None:
            return
        with self._lock:
            self._runs[id(run)] = run
            todo = [(id(run), s, m) for s, m in which if (id(run), s, m) not in self._started]
            self._started.update(todo)
            if todo and self._pool is None:  # spawned, not forked: the app process runs threads (and torch);
                # its worker is a daemon, ended with the app, and runs at the lowest CPU priority by default
                self._pool = get_context("spawn").Pool(1, initializer=os.nice, initargs=(self.nice,))
                atexit.register(self._pool.terminate)  # ended before the interpreter tears its pipes down
            pool = self._pool
        for key in todo:
            assert run.main is not None and pool is not None
            pool.apply_async(
                project, (run.main.embeddings(SPACES[key[1]]), key[2]), callback=functools.partial(self._keep, key)
            )  # a failed fit leaves PCA in its place

    def _keep(self, key: tuple[int, str, str], fitted: Projection) -> None:
        """Keep a finished fit (called in the pool's result thread)."""
        with self._lock:
            self._fits[key] = fitted


def session_of(request: gr.Request | None) -> str | None:
    """The browser session an event comes from (its items added in the app are its own); None outside an event."""
    return getattr(request, "session_hash", None) if request is not None else None


class ExploreTab:
    """Handlers of the Explore tab; every method is a Gradio event function over `studio`."""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio
        self.maps = Maps()

    # --- catalogue -------------------------------------------------------------------------------

    def categories(self, run_key: str, request: gr.Request | None = None) -> gr.Dropdown:
        """The category filter for a run's catalogue."""
        genres = self.studio.run(run_key, session_of(request)).catalogue.genres()
        return gr.Dropdown(choices=[("all categories", "")] + [(g, g) for g in genres], value="")

    def page(self, run_key: str, query: str, category: str, page: float, request: gr.Request | None = None) -> Page:
        """One page of matching cards: (catalogue HTML, page info, page number)."""
        run = self.studio.run(run_key, session_of(request))
        cat = run.catalogue
        found = cat.search(query or "", category or "")
        pages = max(1, math.ceil(len(found) / PAGE_SIZE))
        page = min(max(1, int(page or 1)), pages)
        shown = found[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        if found:
            info = f"Page **{page}** of {pages} · {len(found):,} of {len(cat):,} items · most popular first"
        else:
            info = f"No title matches **{query}**" + (f" in {category}" if category else "") + "."
        return catalogue_html(cat, self.studio.thumbs, shown, info.replace("**", "")), info, page

    def first_page(self, run_key: str, query: str, category: str, request: gr.Request | None = None) -> Page:
        """Page 1 (after a new search or filter)."""
        return self.page(run_key, query, category, 1, request)

    def prev_page(
        self, run_key: str, query: str, category: str, page: float, request: gr.Request | None = None
    ) -> Page:
        """The previous page."""
        return self.page(run_key, query, category, int(page or 1) - 1, request)

    def next_page(
        self, run_key: str, query: str, category: str, page: float, request: gr.Request | None = None
    ) -> Page:
        """The next page."""
        return self.page(run_key, query, category, int(page or 1) + 1, request)

    # --- a new item without retraining -------------------------------------------------------------

    def add_item(
        self, title: str, cover: str | None, run_key: str, request: gr.Request | None = None
    ) -> tuple[Any, ...]:
        """ "Add an item": a title and an optional cover become a new item of the run (`Studio.add_item`: in memory,
        for this browser session). Outputs: (status line, title box, cover, search box, category filter, catalogue page,
        page info, page number); the catalogue then shows the new card (searched by its title). Bad input changes
        nothing and the status line says why."""
        title = " ".join((title or "").split())
        keep = (gr.skip(),) * 7
        if not title:
            return ("⚠️ Type a title for the new item first.", *keep)
        if len(title) > MAX_TITLE or any(ord(c) < 32 for c in title):
            return (f"⚠️ A title has at most {MAX_TITLE} printable characters.", *keep)
        cover = str(cover) if cover else None
        if cover is not None and (why := image_problem(cover)) is not None:
            return (f"⚠️ That cover cannot be used ({why}): upload a JPEG or PNG image, or leave it empty.", *keep)
        before = self.studio.run(run_key, session_of(request)).catalogue
        same = [iid for iid, t in zip(before.item_ids, before.titles) if t.casefold() == title.casefold()]
        try:
            done = self.studio.add_item(run_key, title, cover, session_of(request))
        except (RunError, DataError, CheckpointError, ValueError, OSError) as e:
            return (f"⚠️ The item was not added: {e}", *keep)
        except Exception:  # never a traceback in the page
            log.exception("adding an item failed")
            return ("⚠️ The item was not added: an unexpected error (the server log has the details).", *keep)
        table = done.recommender.table
        used = "title and cover" if table.image_paths[table.item_ids.index(done.added[0])] else "title"
        notes = [p.message for p in done.problems]
        if same:
            notes.append(f"the catalogue already had an item titled like this ({', '.join(same[:3])}): both are kept")
        status = (
            f"✅ Added “{esc(title)}” as `{done.added[0]}`: scored from its {used} through the content-to-ID bridge, "
            "no retraining; the catalogue now shows it (searched by its title). **Only you see it:** it lives in this "
            "browser session until you reload the page or the app restarts; the checkpoint on disk is unchanged."
            + "".join(f"\n\n⚠️ {esc(n)}" for n in notes)
        )
        return (status, "", None, title, "", *self.first_page(run_key, title, "", request))

    # --- history: every change recomputes what depends on it, in the same event -------------------

    def click(
        self,
        run_key: str,
        history: list[str],
        k: float,
        last: Shown | None,
        evt: gr.EventData,
        request: gr.Request | None = None,
    ) -> tuple:
        """A card was clicked: watch it (catalogue, recommendations, side by side) or remove it (history)."""
        item, action = clicked(evt)
        history = list(history or [])
        if item in self.studio.run(run_key, session_of(request)).catalogue:
            history = (
                [h for h in history if h != item] if action == "remove" else append_click(history, item, MAX_HISTORY)
            )
        return self.refresh(run_key, history, k, last, request)

    def clear(self, run_key: str, k: float, last: Shown | None, request: gr.Request | None = None) -> tuple:
        """Empty the history."""
        return self.refresh(run_key, [], k, last, request)

    def persona(
        self, name: str, run_key: str, k: float, last: Shown | None, request: gr.Request | None = None
    ) -> tuple:
        """Replace the history by a lesson persona's items (found by title and genre in this run's catalogue)."""
        cat = self.studio.run(run_key, session_of(request)).catalogue
        history = persona_history(cat, name) if name in PERSONAS else []
        note = [] if history else [f"No items of the persona '{name}' in this run's catalogue."]
        return self.refresh(run_key, history, k, last, request, note)

    def watch(
        self,
        ids: str,
        run_key: str,
        history: list[str],
        k: float,
        last: Shown | None,
        request: gr.Request | None = None,
    ) -> tuple:
        """Append comma-separated item ids by the history rule; what was ignored (unknown or malformed ids,
        repeats) is said on the status line and in a toast."""
        parsed = parse_history(ids, self.studio.run(run_key, session_of(request)).catalogue)
        if parsed.notes():
            gr.Warning(" · ".join(parsed.notes()))
        history = list(history or [])
        for iid in parsed.known:
            history = append_click(history, iid, MAX_HISTORY)
        return self.refresh(run_key, history, k, last, request, parsed.notes())

    def run_changed(
        self, run_key: str, history: list[str], request: gr.Request | None = None
    ) -> tuple[list[str], gr.Dropdown, gr.Radio]:
        """A new run was picked: keep the history items it knows, reset filters and map spaces."""
        run = self.studio.run(run_key, session_of(request))
        spaces = run.spaces() or ["ID space"]
        known = parse_history(history or [], run.catalogue).known
        return known, self.categories(run_key, request), gr.Radio(choices=spaces, value=spaces[0])

    # --- recommendations ---------------------------------------------------------------------------

    def refresh(
        self,
        run_key: str,
        history: list[str],
        k: float,
        last: Shown | None = None,
        request: gr.Request | None = None,
        notes: list[str] | None = None,
    ) -> tuple[Any, ...]:
        """Everything that depends on the history, from one run of the model: (history, history chips, history
        as ids, status line, recommendation cards, mix summary, attribution, because-you-watched, side by side,
        what was shown). `last` (the previous refresh) gives the rank changes; `notes` lead the status line.
        `request` (Gradio fills it in) names the browser session, whose added items the run includes."""
        run = self.studio.run(run_key, session_of(request))
        cat, thumbs = run.catalogue, self.studio.thumbs
        recs = recommend(run, history or [], k)  # the serving rules; their notes go to the status line
        history = recs.history  # filtered once, by those rules
        personal = recs.source == "model"
        shown = Shown(
            run_key or "", history, [it["item_id"] for it in recs.items], recs.user, personal, top_drivers(recs)
        )
        before = last if last is not None and last.run_key == shown.run_key else None
        attribution = attribution_html(recs.items if personal else [])
        warn = f"⚠️ {' · '.join(notes)}\n\n" if notes else ""
        return (
            history,
            history_html(cat, thumbs, history),
            ",".join(history),
            warn + status_text(run, recs, len(history)),
            recs_html(run, thumbs, recs, before),
            mix_summary(recs),
            attribution,
            because_text(recs, run),
            side_by_side(run, thumbs, history, recs, recs.k),
            shown,
        )

    def embedding_map(
        self,
        run_key: str,
        shown: Shown | None,
        space: str,
        method: str,
        lines: bool = False,
        request: gr.Request | None = None,
    ) -> tuple[go.Figure | PlotData | dict[str, Any], gr.Button]:
        """The map from the last refresh (the model does not run), and the redraw button back to its quiet state.

        Both are skipped while that refresh belongs to another run (the refresh of the new run redraws the map)."""
        if shown is None or shown.run_key != (run_key or ""):
            return gr.skip(), gr.skip()
        return self._map(self.studio.run(run_key, session_of(request)), shown, space, method, lines), map_button()

    def follow_map(
        self,
        run_key: str,
        shown: Shown | None,
        space: str,
        method: str,
        lines: bool,
        follow: bool,
        request: gr.Request | None = None,
    ) -> tuple[go.Figure | PlotData | dict[str, Any], gr.Button]:
        """The map after a card click: redrawn only when the map follows every click (the plot is the page's
        heaviest update: ~140 KB and 2,000+ points to draw), else left as it is until asked."""
        if follow:
            return self.embedding_map(run_key, shown, space, method, lines, request)
        return gr.skip(), map_button(stale=True)  # left as drawn: the button says the map is behind

    def _map(self, run: LoadedRun, shown: Shown, space: str, method: str, lines: bool = False) -> go.Figure | PlotData:
        """The embedding map with the shown history, its recommendations, (in ID space) the user vector and, when
        `lines`, a line from each recommendation to the watched item that drives it most."""
        if run.main is None:
            return empty_figure("The embedding map appears once a trained model is loaded (Train tab).", 400)
        space = space if space in run.spaces() else "ID space"
        proj, waiting = self.maps.get(run, space, method)
        cat = run.catalogue
        in_id = SPACES[space] == "id"
        user = proj.place(shown.user) if in_id and shown.user is not None else None
        # the map may stay as drawn while clicks go on (it redraws on request): say which history it shows
        drawn = f"drawn for a history of {len(shown.history)} item(s)" if shown.history else "drawn with no history yet"
        elsewhere = "" if in_id else "your user vector: shown in ID space only"
        links = [(cat.position[d], cat.position[r]) for d, r in zip(shown.drivers, shown.recommended)] if lines else []
        spec = embedding_spec(
            proj,
            cat.titles,
            cat.categories,
            [cat.position[h] for h in shown.history],
            [cat.position[i] for i in shown.recommended],
            user,
            space,
            (drawn, waiting, elsewhere),
            links,
            model_colour(run.main.name),
        )
        return plot_data(spec)  # straight to the page's JSON: no plotly Figure (its deep copy) per click

    # --- API ---------------------------------------------------------------------------------------

    def api_recommend(self, history: str, k: int = 10) -> dict[str, Any]:
        """Top-k for comma-separated item ids with the default run: the response object of `recommend --json`."""
        try:
            return response(recommend(self.studio.run(""), history, k, influence=False))
        except ValueError as e:  # k is no number: refused, and the caller is told why
            raise gr.Error(str(e)) from None


GUIDE = """**Three steps for a lecture**

1. **Click**: pick a persona (or click titles in the catalogue). The history fills and the list is recomputed;
   ▲▼ and *new* on the cards say what each click changed.
2. **Read the split**: every recommendation's bar (and the chart below) splits its score into *behavior* (what you
   watched, in order) and *content* (what the items are); *Because you watched* names the items behind each one.
3. **Compare**: *SICSRec vs SASRec* shows the same history through a behavior-only model; highlighted items are
   recommended by one model only, and SICSRec's own picks say whether content drove them.
"""
NARROW = 640  # px: at most this wide (a phone, app.py's CSS breakpoint), the tour starts collapsed: catalogue in view
# Run in the browser on page load (no server round trip, before the catalogue arrives, so nothing jumps): an update
# of the accordion's `open`, which keeps its own toggle working both ways afterwards.
TOUR_ON_PHONES = (
    f"() => window.matchMedia('(max-width: {NARROW}px)').matches "
    "? {__type__: 'update', open: false} : {__type__: 'update'}"
)


def render(studio: Studio, shell: Shell) -> None:
    """Build the Explore tab and wire it: lesson personas, catalogue pages, card clicks, refresh, map (all
    undocumented UI events), and the `recommend` API, the one documented endpoint."""
    tab = ExploreTab(studio)
    spaces = studio.default.spaces() or ["ID space"]
    with gr.Tab("Explore", id="explore"):
        history = gr.State([])  # per session: the watch history (item ids, oldest first)
        last = gr.State(None)  # per session: the Shown of the last refresh
        with gr.Accordion("Guided tour · three steps", open=True, elem_id="tour") as tour:
            gr.Markdown(GUIDE)
        with gr.Row(elem_classes="sr-personas", elem_id="personas"):
            gr.Markdown("**Lesson personas:**", elem_classes="sr-personas-label")
            personas = [
                gr.Button(name, size="sm", scale=0, min_width=120, elem_id=f"persona-{n}")
                for n, name in enumerate(PERSONAS)
            ]
        status = gr.Markdown(elem_id="status")
        with gr.Row():
            with gr.Column(scale=3):
                with gr.Row():
                    # narrow minimum widths: on a phone both fit one line, and the catalogue starts higher
                    query = gr.Textbox(
                        placeholder="Search titles…", show_label=False, scale=3, container=False, min_width=120
                    )
                    category = gr.Dropdown(
                        choices=[("all categories", "")],
                        value="",
                        show_label=False,
                        scale=2,
                        container=False,
                        min_width=120,
                    )
                gr.Markdown("**Catalogue** · click a title to watch it", elem_classes="sr-head")
                catalogue = gr.HTML(elem_id="catalogue", js_on_load=CARD_CLICKS, apply_default_css=False)
                with gr.Row(elem_classes="sr-pager"):
                    prev_btn = gr.Button("◀ Previous", size="sm", scale=0, min_width=110)
                    page_info = gr.Markdown(elem_classes="sr-page-info")
                    page = gr.Number(
                        value=1, precision=0, minimum=1, show_label=False, container=False, scale=0, min_width=80
                    )
                    next_btn = gr.Button("Next ▶", size="sm", scale=0, min_width=110)
                with gr.Accordion("Add an item · no retraining", open=False, elem_id="add-item"):
                    gr.Markdown(
                        "A new item gets every trained row it needs from its title (and its cover, when the model "
                        "was trained with covers: the shipped demo reads titles only) through the content-to-ID "
                        "bridge: it is recommendable at once, marked *new · scored by content*. "
                        "**Only you see it:** it lives in your browser session (until you reload the page), "
                        "never saved to the checkpoint."
                    )
                    with gr.Row():
                        new_title = gr.Textbox(label="Title", placeholder="e.g. Toy Story 5 (2026)", scale=3)
                        new_cover = gr.File(
                            label="Cover image (optional)", file_types=["image"], type="filepath", scale=2
                        )
                    add_btn = add_button()
                    add_status = gr.Markdown(elem_id="add-item-status")
            with gr.Column(scale=2):
                with gr.Row(elem_classes="sr-head-row"):
                    gr.Markdown("**Watch history** · oldest first · ✕ removes", elem_classes="sr-head")
                    clear = gr.Button("Clear history", size="sm", scale=0, min_width=120)
                strip = gr.HTML(elem_id="history", js_on_load=CARD_CLICKS, apply_default_css=False)
                gr.Markdown("**Recommended next** · click one to watch it", elem_classes="sr-head")
                recs = gr.HTML(elem_id="recommendations", js_on_load=CARD_CLICKS, apply_default_css=False)
                summary = gr.Markdown()
        with gr.Row():
            with gr.Column(scale=3):
                attribution = gr.HTML(elem_id="attribution", apply_default_css=False, js_on_load=None)
            with gr.Column(scale=2):
                because = gr.Markdown(elem_classes="sr-because")
        with gr.Row():
            with gr.Column(scale=3):
                with gr.Row():
                    space = gr.Radio(spaces, value=spaces[0], label="Embedding space")
                    method = gr.Radio(
                        available_methods(),
                        value="PCA",
                        label="Projection",
                        info=f"{' / '.join(fitted)} fitted in the background; PCA is shown until ready"
                        if (fitted := [m for m in available_methods() if m != "PCA"])
                        else None,
                    )
                with gr.Row(elem_classes="sr-head-row"):
                    # a column each (Gradio packs adjacent checkboxes into one unwrapping form): side by side on a
                    # desktop, stacked on a phone
                    with gr.Column(min_width=180):
                        follow = gr.Checkbox(
                            False, label="Redraw on every click", info="slower: the map is the page's heaviest update"
                        )
                    with gr.Column(min_width=180):
                        lines = gr.Checkbox(
                            True,
                            label="Lines from history to recommendations",
                            info="each pick to the watched item that drives it most",
                            elem_id="map-lines",
                        )
                    redraw = gr.Button(MAP_BUTTON, size="sm", scale=0, min_width=220, elem_id="redraw-map")
                emb = gr.Plot(label="Embedding map", show_label=False, elem_id="embedding-map")
            with gr.Column(scale=2):
                gr.Markdown("### SICSRec vs SASRec on your history")
                sbs = gr.HTML(elem_id="side-by-side", apply_default_css=False, js_on_load=None)
        with gr.Accordion("History as item ids (for the CLI and the API)", open=False), gr.Row():
            ids_box = gr.Textbox(label="Your history", interactive=False, buttons=["copy"])
            watch_box = gr.Textbox(label="Watch item ids", placeholder="comma-separated ids, then Enter")
        gr.api(tab.api_recommend, api_name="recommend")  # inside the tab: gr.Tabs holds only tabs

    run, k, demo = shell.run, shell.k, shell.demo
    page_out = [catalogue, page_info, page]
    state = [run, history, k, last]
    out = [history, strip, ids_box, status, recs, summary, attribution, because, sbs, last]
    map_in = [run, last, space, method, lines]
    # Clicks are light (one ~10 ms model call): answered outside the queue, without a progress overlay,
    # and the map (the heaviest payload) follows in its own event so the cards never wait for it.
    fast = dict(queue=False, show_progress="hidden", **UI)

    def then_map(event: Any) -> None:
        """Redraw the map after an event that changed what is shown (a persona, clear, ids, run, page load)."""
        event.then(tab.embedding_map, map_in, [emb, redraw], show_progress="minimal", **UI)

    for grid in (catalogue, strip, recs):  # card clicks redraw the map only when it follows every click
        grid.click(tab.click, state, out, trigger_mode="always_last", **fast).then(
            tab.follow_map, [*map_in, follow], [emb, redraw], **fast
        )
    redraw.click(tab.embedding_map, map_in, [emb, redraw], **UI)
    follow.change(tab.embedding_map, map_in, [emb, redraw], **UI)  # on: follows from now; off: left current
    for button in personas:
        then_map(button.click(tab.persona, [button, run, k, last], out, **fast))
    then_map(clear.click(tab.clear, [run, k, last], out, **fast))
    # queued: its warning toast needs the queue (the status line says it too)
    then_map(watch_box.submit(tab.watch, [watch_box, *state], out, api_name="watch", show_progress="hidden", **UI))
    then_map(k.change(tab.refresh, state, out, trigger_mode="always_last", **fast))
    for control in (space, method, lines):
        control.change(tab.embedding_map, map_in, [emb, redraw], **UI)
    search = dict(show_progress="hidden", **UI)  # the grid keeps its cards until the new ones arrive
    query.change(tab.first_page, [run, query, category], page_out, trigger_mode="always_last", **search)
    category.change(tab.first_page, [run, query, category], page_out, **search)
    prev_btn.click(tab.prev_page, [run, query, category, page], page_out, **search)
    next_btn.click(tab.next_page, [run, query, category, page], page_out, **search)
    page.submit(tab.page, [run, query, category, page], page_out, **search)
    added = [add_status, new_title, new_cover, query, category, *page_out]
    # The button is disabled while an item is added: a click then would be dropped without a word (Gradio runs one
    # event of a trigger at a time); afterwards the list is recomputed, the new item may enter it.
    for trigger in (add_btn.click, new_title.submit):
        then_map(
            trigger(adding_button, None, add_btn, **fast)
            .then(tab.add_item, [new_title, new_cover, run], added, **UI)
            .then(add_button, None, add_btn, **fast)
            .then(tab.refresh, state, out, **UI)
        )
    then_map(
        run.change(tab.run_changed, [run, history], [history, category, space], **UI)
        .then(tab.first_page, [run, query, category], page_out, **UI)
        .then(tab.refresh, state, out, **UI)
    )

    demo.load(None, None, tour, js=TOUR_ON_PHONES, **UI)
    demo.load(tab.categories, run, category, **UI)
    demo.load(tab.first_page, [run, query, category], page_out, **UI)
    then_map(demo.load(tab.refresh, state, out, **UI))


__all__ = [
    "MAX_HISTORY",
    "PAGE_SIZE",
    "PERSONAS",
    "ExploreTab",
    "Maps",
    "Shown",
    "attribution_html",
    "because_text",
    "mix_summary",
    "moves",
    "persona_history",
    "recommend",
    "render",
    "side_by_side",
    "status_text",
    "top_drivers",
]
