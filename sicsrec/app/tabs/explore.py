"""Explore tab: browse the catalogue, build a watch history, see and explain the recommendations.

A click runs the served model once (its user vector places you on the map); a change of map space or
method redraws the map from that click's result, kept per session, without running the model again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import numpy as np
import plotly.graph_objects as go

from sicsrec.app.plots import MODEL_NAMES, attribution_figure, embedding_figure, empty_figure, short
from sicsrec.app.runs import SPACES, LoadedRun
from sicsrec.app.shell import UI, Shell
from sicsrec.app.studio import Studio, serving_threads
from sicsrec.serve import RecResult, resolve_k, response
from sicsrec.serve.history import append_click, parse_history
from sicsrec.serve.projection import available_methods

PAGE_SIZE = 48
Page = tuple[list[tuple[str, str]], list[str], str, int]  # gallery, item ids shown, page info, page number
MAX_HISTORY = 200  # kept in the session; the model reads its last max_len items
BECAUSE_TOP = 2  # history items named per recommendation


@dataclass
class Shown:
    """What the last refresh of a session showed (kept in a gr.State): the map redraws from it."""

    run_key: str
    history: list[str] = field(default_factory=list)
    recommended: list[str] = field(default_factory=list)
    user: np.ndarray | None = None  # the scored user vector of that click (None for popular items)


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
        f"(share of |score parts| over the top {len(recs.items)}; mixed = the mix decoder's blend of both)."
    )


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
        why = ", ".join(f"{short(cat.titles[cat.position[recs.used_history[i]]], 34)} ({col[i]:+.3f})" for i in order)
        lines.append(f"{j + 1}. **{short(it['title'], 40)}** ← " + (why or "_no single watched item stands out_"))
    return "Because you watched (score drop when that item is removed):\n\n" + "\n".join(lines)


def side_by_side(run: LoadedRun, history: list[str], main: RecResult, k: int) -> str:
    """Markdown table: the same history's top-k from SICSRec and from SASRec, shared items marked."""
    if run.main is None:
        return "_Side-by-side with SASRec (behavior only) appears here once a trained run is loaded._"
    if main.source != "model":
        return "_Side-by-side with SASRec (behavior only) appears here once you watch something._"
    if run.baseline is None:
        why = "the served model is SASRec itself" if run.main.name == "sasrec" else "this run has no SASRec checkpoint"
        return f"_No side-by-side: {why}. Train step 1 and step 2 in the **Train** tab to compare._"
    base = run.baseline.recommend(history, k, exclude_history=True).items
    a_ids, b_ids = [it["item_id"] for it in main.items], [it["item_id"] for it in base]
    shared = set(a_ids) & set(b_ids)
    mark = lambda it: ("◆ " if it["item_id"] in shared else "") + short(it["title"], 40)
    rows = [f"| # | {MODEL_NAMES.get(run.main.name, run.main.name)} | SASRec (behavior only) |", "|---|---|---|"]
    for n, (a, b) in enumerate(zip(main.items, base), 1):
        rows.append(f"| {n} | {mark(a)} | {mark(b)} |")
    return f"**{len(shared)} of {len(a_ids)}** in both lists (◆ = in both).\n\n" + "\n".join(rows)


class ExploreTab:
    """Handlers of the Explore tab; every method is a Gradio event function over `studio`."""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio

    # --- catalogue -------------------------------------------------------------------------------

    def categories(self, run_key: str) -> gr.Dropdown:
        """The category filter for a run's catalogue."""
        return gr.Dropdown(
            choices=[("all categories", "")] + [(g, g) for g in self.studio.run(run_key).catalogue.genres()], value=""
        )

    def page(self, run_key: str, query: str, category: str, page: float) -> Page:
        """One page of matching thumbnails: (gallery, item ids on the page, page info, page number)."""
        run = self.studio.run(run_key)
        cat = run.catalogue
        found = cat.search(query or "", category or "")
        pages = max(1, math.ceil(len(found) / PAGE_SIZE))
        page = min(max(1, int(page or 1)), pages)
        shown = found[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        gallery = [(self.studio.thumbs.path(cat, i), short(cat.titles[i], 44)) for i in shown]
        if found:
            info = f"Page **{page}** of {pages} · {len(found):,} of {len(cat):,} items · most popular first"
        else:
            info = f"No title matches **{query}**" + (f" in {category}" if category else "") + "."
        return gallery, [cat.item_ids[i] for i in shown], info, page

    def first_page(self, run_key: str, query: str, category: str) -> Page:
        """Page 1 (after a new search or filter)."""
        return self.page(run_key, query, category, 1)

    def prev_page(self, run_key: str, query: str, category: str, page: float) -> Page:
        """The previous page."""
        return self.page(run_key, query, category, int(page or 1) - 1)

    def next_page(self, run_key: str, query: str, category: str, page: float) -> Page:
        """The next page."""
        return self.page(run_key, query, category, int(page or 1) + 1)

    # --- history ---------------------------------------------------------------------------------

    def pick_catalogue(self, history: list[str], page_ids: list[str], evt: gr.SelectData) -> list[str]:
        """A catalogue thumbnail was clicked: append it to the history."""
        return (
            append_click(history or [], page_ids[evt.index], MAX_HISTORY) if 0 <= evt.index < len(page_ids) else history
        )

    def pick_recommendation(self, history: list[str], rec_ids: list[str], evt: gr.SelectData) -> list[str]:
        """A recommendation was clicked: watch it too."""
        return (
            append_click(history or [], rec_ids[evt.index], MAX_HISTORY) if 0 <= evt.index < len(rec_ids) else history
        )

    def remove(self, history: list[str], evt: gr.SelectData) -> list[str]:
        """A history thumbnail was clicked: remove it."""
        history = list(history or [])
        if 0 <= evt.index < len(history):
            del history[evt.index]
        return history

    def clear(self) -> list[str]:
        """Empty the history."""
        return []

    def watch(self, ids: str, run_key: str, history: list[str]) -> tuple[list[str], str]:
        """Append comma-separated item ids by the history rule (unknown or malformed ids, repeats: a warning);
        (history, history as ids)."""
        parsed = parse_history(ids, self.studio.run(run_key).catalogue)
        if parsed.notes():
            gr.Warning(" · ".join(parsed.notes()))
        history = list(history or [])
        for iid in parsed.known:
            history = append_click(history, iid, MAX_HISTORY)
        return history, ",".join(history)

    def run_changed(self, run_key: str, history: list[str]) -> tuple[list[str], gr.Dropdown, gr.Radio]:
        """A new run was picked: keep the history items it knows, reset filters and map spaces."""
        run = self.studio.run(run_key)
        spaces = run.spaces() or ["ID space"]
        known = parse_history(history or [], run.catalogue).known
        return known, self.categories(run_key), gr.Radio(choices=spaces, value=spaces[0])

    # --- recommendations ---------------------------------------------------------------------------

    def refresh(self, run_key: str, history: list[str], k: float, space: str, method: str) -> tuple[Any, ...]:
        """Everything that depends on the history, from one run of the model: history strip, recommendations,
        explanations, map, and what was shown (for map-only redraws)."""
        run = self.studio.run(run_key)
        cat, thumbs = run.catalogue, self.studio.thumbs
        recs = recommend(run, history or [], k)  # the serving rules; their notes go to the status line
        history = recs.history  # filtered once, by those rules
        shown = Shown(run_key or "", history, [it["item_id"] for it in recs.items], recs.user)
        strip = [
            (thumbs.path(cat, cat.position[h]), f"{n}. {short(cat.titles[cat.position[h]], 36)}")
            for n, h in enumerate(history, 1)
        ]
        score = (lambda it: f"{it['score']:.2f}") if recs.source == "model" else (lambda it: "popular")
        gallery = [
            (thumbs.path(cat, cat.position[it["item_id"]]), f"{n}. {short(it['title'], 36)} · {score(it)}")
            for n, it in enumerate(recs.items, 1)
        ]
        if recs.source == "model":
            attribution = attribution_figure(recs.items)
        else:
            attribution = empty_figure("Popular items carry no attribution: watch something to get personal scores.")
        return (
            strip,
            ",".join(history),
            status_text(run, recs, len(history)),
            gallery,
            shown.recommended,
            mix_summary(recs),
            attribution,
            because_text(recs, run),
            side_by_side(run, history, recs, recs.k),
            self._map(run, shown, space, method),
            shown,
        )

    def embedding_map(self, run_key: str, shown: Shown | None, space: str, method: str) -> go.Figure | dict[str, Any]:
        """Only the map (after the space or method changed), from the last refresh: the model does not run.

        Skipped while that refresh belongs to another run (the refresh of the new run redraws the map)."""
        if shown is None or shown.run_key != (run_key or ""):
            return gr.skip()
        return self._map(self.studio.run(run_key), shown, space, method)

    def _map(self, run: LoadedRun, shown: Shown, space: str, method: str) -> go.Figure:
        """The embedding map with the shown history, its recommendations and (in ID space) the user vector."""
        if run.main is None:
            return empty_figure("The embedding map appears once a trained model is loaded (Train tab).", 400)
        space = space if space in run.spaces() else "ID space"
        proj = run.projection(space, method if method in available_methods() else "PCA")
        cat = run.catalogue
        in_id = SPACES[space] == "id"
        user = proj.place(shown.user) if in_id and shown.user is not None else None
        note = "" if in_id else "the user vector is scored in ID space, so it is shown there only"
        return embedding_figure(
            proj,
            cat.titles,
            cat.categories,
            [cat.position[h] for h in shown.history],
            [cat.position[i] for i in shown.recommended],
            user,
            space,
            note,
        )

    # --- API ---------------------------------------------------------------------------------------

    def api_recommend(self, history: str, k: int = 10) -> dict[str, Any]:
        """Top-k for comma-separated item ids with the default run: the response object of `recommend --json`."""
        try:
            return response(recommend(self.studio.run(""), history, k, influence=False))
        except ValueError as e:  # k is no number: refused, and the caller is told why
            raise gr.Error(str(e)) from None


def render(studio: Studio, shell: Shell) -> None:
    """Build the Explore tab and wire it: catalogue pages, history clicks, refresh, map (all undocumented UI events),
    and the `recommend` API, the one documented endpoint."""
    tab = ExploreTab(studio)
    spaces = studio.default.spaces() or ["ID space"]
    with gr.Tab("Explore", id="explore"):
        history = gr.State([])  # per session: the watch history (item ids, oldest first)
        page_ids, rec_ids = gr.State([]), gr.State([])
        last = gr.State(None)  # per session: the Shown of the last refresh
        status = gr.Markdown()
        with gr.Row():
            with gr.Column(scale=3):
                with gr.Row():
                    query = gr.Textbox(placeholder="Search titles…", show_label=False, scale=3, container=False)
                    category = gr.Dropdown(
                        choices=[("all categories", "")], value="", show_label=False, scale=2, container=False
                    )
                catalogue = gr.Gallery(
                    label="Catalogue · click a title to watch it",
                    columns=8,
                    height=640,
                    allow_preview=False,
                    object_fit="cover",
                    elem_id="catalogue",
                    buttons=[],
                    elem_classes="sr-gallery",
                )
                with gr.Row(elem_classes="sr-pager"):
                    prev_btn = gr.Button("◀ Previous", size="sm", scale=0, min_width=110)
                    page_info = gr.Markdown()
                    page = gr.Number(
                        value=1, precision=0, minimum=1, show_label=False, container=False, scale=0, min_width=80
                    )
                    next_btn = gr.Button("Next ▶", size="sm", scale=0, min_width=110)
            with gr.Column(scale=2):
                strip = gr.Gallery(
                    label="Watch history · oldest first · click one to remove it",
                    columns=6,
                    height=220,
                    allow_preview=False,
                    object_fit="cover",
                    elem_id="history",
                    buttons=[],
                    fit_columns=False,
                    elem_classes="sr-gallery",
                )
                clear = gr.Button("Clear history", size="sm")
                recs = gr.Gallery(
                    label="Recommended next · click one to watch it",
                    columns=5,
                    height=420,
                    allow_preview=False,
                    object_fit="cover",
                    elem_id="recommendations",
                    buttons=[],
                    elem_classes="sr-gallery",
                )
                summary = gr.Markdown()
        with gr.Row():
            with gr.Column(scale=3):
                attribution = gr.Plot(label="Score attribution", show_label=False, elem_id="attribution")
            with gr.Column(scale=2):
                because = gr.Markdown()
        with gr.Row():
            with gr.Column(scale=3):
                with gr.Row():
                    space = gr.Radio(spaces, value=spaces[0], label="Embedding space")
                    method = gr.Radio(
                        available_methods(),
                        value="PCA",
                        label="Projection",
                        info="fitted once per run; t-SNE/UMAP take a while the first time",
                    )
                emb = gr.Plot(label="Embedding map", show_label=False, elem_id="embedding-map")
            with gr.Column(scale=2):
                gr.Markdown("### SICSRec vs SASRec on your history")
                sbs = gr.Markdown()
        with gr.Accordion("History as item ids (for the CLI and the API)", open=False), gr.Row():
            ids_box = gr.Textbox(label="Your history", interactive=False, buttons=["copy"])
            watch_box = gr.Textbox(label="Watch item ids", placeholder="comma-separated ids, then Enter")
        gr.api(tab.api_recommend, api_name="recommend")  # inside the tab: gr.Tabs holds only tabs

    run, k, demo = shell.run, shell.k, shell.demo
    page_out = [catalogue, page_ids, page_info, page]
    refresh_in = [run, history, k, space, method]
    refresh_out = [strip, ids_box, status, recs, rec_ids, summary, attribution, because, sbs, emb, last]
    map_in = [run, last, space, method]

    catalogue.select(tab.pick_catalogue, [history, page_ids], history, **UI)
    strip.select(tab.remove, history, history, **UI)
    recs.select(tab.pick_recommendation, [history, rec_ids], history, **UI)
    clear.click(tab.clear, None, history, **UI)
    watch_box.submit(tab.watch, [watch_box, run, history], [history, ids_box], api_name="watch", **UI)
    history.change(tab.refresh, refresh_in, refresh_out, trigger_mode="always_last", **UI)
    k.change(tab.refresh, refresh_in, refresh_out, trigger_mode="always_last", **UI)
    space.change(tab.embedding_map, map_in, emb, **UI)
    method.change(tab.embedding_map, map_in, emb, **UI)
    query.change(tab.first_page, [run, query, category], page_out, trigger_mode="always_last", **UI)
    category.change(tab.first_page, [run, query, category], page_out, **UI)
    prev_btn.click(tab.prev_page, [run, query, category, page], page_out, **UI)
    next_btn.click(tab.next_page, [run, query, category, page], page_out, **UI)
    page.submit(tab.page, [run, query, category, page], page_out, **UI)
    (
        run.change(tab.run_changed, [run, history], [history, category, space], **UI)
        .then(tab.first_page, [run, query, category], page_out, **UI)
        .then(tab.refresh, refresh_in, refresh_out, **UI)
    )

    demo.load(tab.categories, run, category, **UI)
    demo.load(tab.first_page, [run, query, category], page_out, **UI)
    demo.load(tab.refresh, refresh_in, refresh_out, **UI)


__all__ = [
    "MAX_HISTORY",
    "PAGE_SIZE",
    "ExploreTab",
    "Shown",
    "because_text",
    "mix_summary",
    "recommend",
    "render",
    "side_by_side",
    "status_text",
]
