"""Plotly figures shared by the tabs: empty states, score attribution, embedding map, training curves, test metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from sicsrec.app.thumbnails import category_colour
from sicsrec.eval.results import METRICS, Results
from sicsrec.events import EpochEvent, ProgressEvent, StepEvent
from sicsrec.serve import PARTS
from sicsrec.serve.projection import Projection

PART_COLOURS = {"behavior": "#4F6BED", "content": "#F08C3A", "mixed": "#3BA37A", "bias": "#9AA0A6"}
MODEL_NAMES = {
    "pop": "popularity",
    "sasrec": "SASRec (behavior only)",
    "content": "content-only",
    "id_control": "ID control (step 2 without content)",
    "sicsrec": "SICSRec",
}
MODEL_COLOURS = {
    "pop": "#9AA0A6",
    "sasrec": "#4F6BED",
    "content": "#F08C3A",
    "id_control": "#14B8A6",
    "sicsrec": "#7C3AED",
}
FONT = dict(family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size=12)
# The app's one look, set once: applying a template per figure costs ~35 ms a figure on every click.
pio.templates.default = "plotly_white"


def _layout(fig: go.Figure, height: int, **kw: Any) -> go.Figure:
    """The shared look: white background, small margins, system font."""
    fig.update_layout(height=height, font=FONT, margin=dict(l=10, r=10, t=kw.pop("top", 40), b=10), **kw)
    return fig


def empty_figure(message: str, height: int = 220) -> go.Figure:
    """A blank figure carrying a helpful message (the empty state of a plot)."""
    fig = go.Figure()
    fig.add_annotation(
        text=message, showarrow=False, font=dict(size=14, color="#6B7280"), x=0.5, y=0.5, xref="paper", yref="paper"
    )
    fig.update_layout(
        height=height, xaxis=dict(visible=False), yaxis=dict(visible=False), margin=dict(l=10, r=10, t=10, b=10)
    )
    return fig


def short(title: str, n: int = 38) -> str:
    """A title cut to n characters with an ellipsis."""
    return title if len(title) <= n else title[: n - 1].rstrip() + "…"


def attribution_figure(
    items: list[dict[str, Any]], title: str = "Why each item scores: exact split of its score"
) -> go.Figure:
    """Stacked horizontal bars of each recommendation's score parts (parts zero for every item are left out)."""
    labels = [f"{i}. {short(it['title'], 32)}" for i, it in enumerate(items, 1)]
    fig = go.Figure()
    for part in PARTS:
        values = [it[part] for it in items]
        if not any(values):  # a part this model does not have (e.g. content for SASRec)
            continue
        fig.add_trace(
            go.Bar(
                y=labels,
                x=values,
                name=part,
                orientation="h",
                marker_color=PART_COLOURS[part],
                hovertemplate=f"%{{y}}<br>{part}: %{{x:+.3f}}<extra></extra>",
            )
        )
    fig.add_trace(
        go.Scatter(
            y=labels,
            x=[it["score"] for it in items],
            name="score",
            mode="markers",
            marker=dict(symbol="diamond", size=9, color="#111827"),
            hovertemplate="%{y}<br>score: %{x:.3f}<extra></extra>",
        )
    )
    _layout(
        fig,
        130 + 30 * max(1, len(items)),
        barmode="relative",
        title=dict(text=title, font=dict(size=14), y=0.98),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="left", x=0),
        yaxis=dict(autorange="reversed"),
        xaxis=dict(zeroline=True, zerolinecolor="#6B7280", title="score contribution"),
        top=75,
    )
    return fig


def embedding_figure(
    proj: Projection,
    titles: list[str],
    categories: list[str],
    history: list[int],
    recommended: list[int],
    user: np.ndarray | None,
    space: str,
    note: str = "",
) -> go.Figure:
    """All items in 2-D coloured by category; history, recommendations and the user vector on top."""
    xy = proj.coords
    fig = go.Figure()
    by_cat: dict[str, list[int]] = {}
    for i, c in enumerate(categories):
        by_cat.setdefault(c or "(none)", []).append(i)
    for cat, idx in sorted(by_cat.items(), key=lambda kv: -len(kv[1])):
        fig.add_trace(
            go.Scatter(
                x=xy[idx, 0],
                y=xy[idx, 1],
                mode="markers",
                name=cat,
                legendgroup="categories",
                marker=dict(size=5, color=category_colour("" if cat == "(none)" else cat), opacity=0.45),
                text=[titles[i] for i in idx],
                hovertemplate="%{text}<br>" + cat + "<extra></extra>",
            )
        )
    if history:
        fig.add_trace(
            go.Scatter(
                x=xy[history, 0],
                y=xy[history, 1],
                mode="markers+text",
                name="watched",
                text=[str(n) for n in range(1, len(history) + 1)],
                textposition="top center",
                customdata=[titles[i] for i in history],
                marker=dict(size=13, color="#111827", symbol="circle", line=dict(width=2, color="white")),
                hovertemplate="watched #%{text}: %{customdata}<extra></extra>",
            )
        )
    if recommended:
        fig.add_trace(
            go.Scatter(
                x=xy[recommended, 0],
                y=xy[recommended, 1],
                mode="markers",
                name="recommended",
                text=[f"{n}. {titles[i]}" for n, i in enumerate(recommended, 1)],
                marker=dict(size=14, color="#F59E0B", symbol="star", line=dict(width=1, color="#78350F")),
                hovertemplate="recommended %{text}<extra></extra>",
            )
        )
    if user is not None:
        fig.add_trace(
            go.Scatter(
                x=[user[0]],
                y=[user[1]],
                mode="markers",
                name="you (user vector)",
                marker=dict(size=20, color="#DC2626", symbol="x", line=dict(width=2, color="white")),
                hovertemplate="your user vector<extra></extra>",
            )
        )
    axis = "PC" if proj.method == "PCA" else proj.method + " "
    share = f" ({proj.explained[0]:.0%} + {proj.explained[1]:.0%} of variance)" if proj.explained else ""
    title = f"Items in {space}, {proj.method}{share}" + (f"<br><sup>{note}</sup>" if note else "")
    return _layout(
        fig,
        560,
        title=dict(text=title, font=dict(size=14)),
        xaxis=dict(title=f"{axis}1", showgrid=False, zeroline=False),
        yaxis=dict(title=f"{axis}2", showgrid=False, zeroline=False),
        legend=dict(itemsizing="constant", font=dict(size=11)),
        hovermode="closest",
    )


def training_figure(events: Sequence[ProgressEvent]) -> go.Figure:
    """Left: training loss per logged step, one line per stage; right: validation HR@10 / NDCG@10 per epoch."""
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("training loss", "validation (full ranking)"), horizontal_spacing=0.1
    )
    steps = [e for e in events if isinstance(e, StepEvent)]
    epochs = [e for e in events if isinstance(e, EpochEvent)]
    stages = list(dict.fromkeys(e.stage for e in events if isinstance(e, (StepEvent, EpochEvent))))
    palette = ["#4F6BED", "#F08C3A", "#7C3AED", "#3BA37A"]
    for n, stage in enumerate(stages):
        colour = palette[n % len(palette)]
        mine = [e for e in steps if e.stage == stage]
        if mine:
            fig.add_trace(
                go.Scatter(
                    x=[(e.epoch - 1) + e.step / e.steps for e in mine],
                    y=[e.loss for e in mine],
                    name=stage,
                    mode="lines",
                    line=dict(color=colour),
                ),
                row=1,
                col=1,
            )
        ends = [e for e in epochs if e.stage == stage]
        for metric, dash in (("hr@10", "solid"), ("ndcg@10", "dot")):
            if ends:
                fig.add_trace(
                    go.Scatter(
                        x=[e.epoch for e in ends],
                        y=[e.valid[metric] for e in ends],
                        name=f"{stage} {metric.upper()}",
                        mode="lines+markers",
                        line=dict(color=colour, dash=dash),
                    ),
                    row=1,
                    col=2,
                )
    fig.update_xaxes(title_text="epoch", row=1, col=1)
    fig.update_xaxes(title_text="epoch", row=1, col=2)
    return _layout(fig, 340, legend=dict(orientation="h", y=-0.25, x=0))


def metrics_figure(results: Results) -> go.Figure:
    """Grouped bars of the test HR/NDCG@5/10 of every model in a run's results.json."""
    fig = go.Figure()
    top = 0.0
    for name in results.model_names(with_pop=True):
        values = [results.metric(name, k) for k in METRICS]
        top = max(top, *values)
        fig.add_trace(
            go.Bar(
                x=[k.upper() for k in METRICS],
                y=values,
                name=MODEL_NAMES.get(name, name),
                marker_color=MODEL_COLOURS.get(name, PART_COLOURS["bias"]),
                text=[f"{v:.3f}" for v in values],
                textposition="outside",
                cliponaxis=False,
            )
        )
    return _layout(
        fig,
        380,
        barmode="group",
        title=dict(text=f"Test metrics on {results.dataset} (full ranking, leave-one-out)", font=dict(size=14)),
        yaxis=dict(title="value", range=[0, (top or 1.0) * 1.15]),
        legend=dict(orientation="h", y=-0.15, x=0),
    )


__all__ = [
    "MODEL_COLOURS",
    "MODEL_NAMES",
    "PART_COLOURS",
    "attribution_figure",
    "embedding_figure",
    "empty_figure",
    "metrics_figure",
    "short",
    "training_figure",
]
