"""Explore tab: browse the catalogue, build a watch history, see and explain the recommendations."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np
import plotly.graph_objects as go

from sicsrec.app.plots import MODEL_NAMES, attribution_figure, embedding_figure, short
from sicsrec.app.state import SPACES, LoadedRun, Studio, serving_threads
from sicsrec.serve import RecResult
from sicsrec.serve.projection import available_methods

PAGE_SIZE = 48
Page = tuple[list[tuple[str, str]], list[str], str, int]  # gallery, item ids shown, page info, page number
MAX_HISTORY = 200  # kept in the session; the model reads its last max_len items
BECAUSE_TOP = 2  # history items named per recommendation


@dataclass
class Recs:
    """One recommendation list as Explore shows it."""

    items: list[dict[str, Any]]
    source: str  # "model" | "popular"
    used_history: list[str]
    influence: np.ndarray | None
    note: str


def recommend(run: LoadedRun, history: list[str], k: int, influence: bool = True) -> Recs:
    """Top-k of the run's main model (popular items when there is no model or no history)."""
    serving_threads()
    if run.main is None:
        return Recs(run.catalogue.popular(k, set(history)), "popular", [], None, "")
    res: RecResult = run.main.recommend(history, k, exclude_history=True, influence=influence)
    return Recs(res.items, res.source, res.used_history, res.influence, res.message)


def empty_figure(message: str, height: int = 220) -> go.Figure:
    """A blank figure carrying a helpful message (the empty state of a plot)."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, font=dict(size=14, color="#6B7280"), x=0.5, y=0.5,
                       xref="paper", yref="paper")
    fig.update_layout(template="plotly_white", height=height, xaxis=dict(visible=False), yaxis=dict(visible=False),
                      margin=dict(l=10, r=10, t=10, b=10))
    return fig


def status_text(run: LoadedRun, recs: Recs, n_history: int) -> str:
    """The line above the recommendations: which model, or why the list is only popular items."""
    if run.main is None:
        return (f"**Popular items (not personalised).** {run.problem} "
                "Train a model in the **Train** tab, then pick it in *Run* above.")
    model = MODEL_NAMES.get(run.main.name, run.main.name)
    if recs.source == "popular":
        return "**Popular items (not personalised):** click titles in the catalogue to start a watch history. " + recs.note
    return f"**{model}** recommendations for your {n_history} watched item(s). {recs.note}".strip()


def mix_summary(recs: Recs) -> str:
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
    return (f"This list is **more {lead}- than {other}-driven**: {parts} "
            f"(share of |score parts| over the top {len(recs.items)}; mixed = the mix decoder's blend of both).")


def because_text(recs: Recs, run: LoadedRun) -> str:
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


def side_by_side(run: LoadedRun, history: list[str], main: Recs, k: int) -> str:
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
    mark = lambda it: ("◆ " if it["item_id"] in shared else "") + short(it["title"], 40)  # noqa: E731
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
        return gr.Dropdown(choices=[("all categories", "")] + [(g, g) for g in self.studio.run(run_key).catalogue.genres()],
                           value="")

    def page(self, run_key: str, query: str, category: str, page: float) -> Page:
        """One page of matching thumbnails: (gallery, item ids on the page, page info, page number)."""
        run = self.studio.run(run_key)
        cat = run.catalogue
        found = cat.search(query or "", category or "")
        pages = max(1, math.ceil(len(found) / PAGE_SIZE))
        page = min(max(1, int(page or 1)), pages)
        shown = found[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
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

    @staticmethod
    def _append(history: list[str], item_id: str) -> list[str]:
        """History with `item_id` watched last (a re-watched item moves to the end)."""
        return ([h for h in history if h != item_id] + [item_id])[-MAX_HISTORY:]

    def pick_catalogue(self, history: list[str], page_ids: list[str], evt: gr.SelectData) -> list[str]:
        """A catalogue thumbnail was clicked: append it to the history."""
        return self._append(history or [], page_ids[evt.index]) if 0 <= evt.index < len(page_ids) else history

    def pick_recommendation(self, history: list[str], rec_ids: list[str], evt: gr.SelectData) -> list[str]:
        """A recommendation was clicked: watch it too."""
        return self._append(history or [], rec_ids[evt.index]) if 0 <= evt.index < len(rec_ids) else history

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
        """Append comma-separated item ids (unknown ones are ignored); returns (history, history as ids)."""
        known = self.studio.run(run_key).catalogue.known([s.strip() for s in (ids or "").split(",") if s.strip()])
        for iid in known:
            history = self._append(history or [], iid)
        history = list(history or [])
        return history, ",".join(history)

    def run_changed(self, run_key: str, history: list[str]) -> tuple[list[str], gr.Dropdown, gr.Radio]:
        """A new run was picked: keep the history items it knows, reset filters and map spaces."""
        run = self.studio.run(run_key)
        spaces = run.spaces() or ["ID space"]
        return run.catalogue.known(history or []), self.categories(run_key), gr.Radio(choices=spaces, value=spaces[0])

    def refresh_runs(self, run_key: str) -> gr.Dropdown:
        """Re-list run folders (a finished training run appears here)."""
        choices = self.studio.run_choices()
        return gr.Dropdown(choices=choices, value=run_key if run_key in [v for _, v in choices] else "")

    # --- recommendations ---------------------------------------------------------------------------

    def refresh(self, run_key: str, history: list[str], k: float, space: str, method: str) -> tuple[Any, ...]:
        """Everything that depends on the history: history strip, recommendations, explanations, map."""
        run = self.studio.run(run_key)
        cat, thumbs = run.catalogue, self.studio.thumbs
        history = cat.known(history or [])
        k = int(k or 10)
        recs = recommend(run, history, k)
        strip = [(thumbs.path(cat, cat.position[h]), f"{n}. {short(cat.titles[cat.position[h]], 36)}")
                 for n, h in enumerate(history, 1)]
        score = (lambda it: f"{it['score']:.2f}") if recs.source == "model" else (lambda it: "popular")
        gallery = [(thumbs.path(cat, cat.position[it["item_id"]]), f"{n}. {short(it['title'], 36)} · {score(it)}")
                   for n, it in enumerate(recs.items, 1)]
        if recs.source == "model":
            attribution = attribution_figure(recs.items)
        else:
            attribution = empty_figure("Popular items carry no attribution: watch something to get personal scores.")
        return (strip, ",".join(history), status_text(run, recs, len(history)), gallery, [it["item_id"] for it in recs.items],
                mix_summary(recs), attribution, because_text(recs, run), side_by_side(run, history, recs, k),
                self._map(run, history, recs, space, method))

    def embedding_map(self, run_key: str, history: list[str], k: float, space: str, method: str) -> go.Figure:
        """Only the map (after the space or method changed)."""
        run = self.studio.run(run_key)
        history = run.catalogue.known(history or [])
        return self._map(run, history, recommend(run, history, int(k or 10), influence=False), space, method)

    def _map(self, run: LoadedRun, history: list[str], recs: Recs, space: str, method: str) -> go.Figure:
        """The embedding map with this history, its recommendations and (in ID space) the user vector."""
        if run.main is None:
            return empty_figure("The embedding map appears once a trained model is loaded (Train tab).", 400)
        space = space if space in run.spaces() else "ID space"
        proj = run.projection(space, method if method in available_methods() else "PCA")
        cat = run.catalogue
        user = None
        if SPACES[space] == "id" and history:
            vec = run.main.user_vector(history)
            user = proj.place(vec) if vec is not None else None
        note = "" if SPACES[space] == "id" else "the user vector is scored in ID space, so it is shown there only"
        return embedding_figure(proj, cat.titles, cat.categories, [cat.position[h] for h in history],
                                [cat.position[it["item_id"]] for it in recs.items], user, space, note)

    # --- API ---------------------------------------------------------------------------------------

    def api_recommend(self, history: str, k: int = 10) -> list[dict[str, Any]]:
        """Top-k for comma-separated item ids with the default run: the same JSON as Recommender.to_json."""
        serving_threads()
        run = self.studio.run("")
        ids = [s.strip() for s in (history or "").split(",") if s.strip()]
        k = max(1, min(int(k or 10), len(run.catalogue)))
        if run.main is not None:
            return run.main.to_json(run.main.recommend(ids, k))
        return [{**it, "source": "popular"} for it in run.catalogue.popular(k, set(ids))]


__all__ = ["ExploreTab", "PAGE_SIZE", "Recs", "because_text", "empty_figure", "mix_summary", "recommend", "side_by_side",
           "status_text"]
