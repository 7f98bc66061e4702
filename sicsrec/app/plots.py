"""Plotly figures shared by the tabs (empty states, embedding map, training curves, test metrics) and the app's one
set of colours and one-line explanations: per model, per score part, per metric."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from html import escape
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from gradio.components.plot import PlotData
from plotly.io.json import to_json_plotly
from plotly.subplots import make_subplots

from sicsrec.eval.results import METRICS, Results
from sicsrec.events import EpochEvent, StepEvent
from sicsrec.serve.projection import Projection

# One colour per model and one per score part, in every figure and legend of the app. Hues are shared where the
# meaning is: behavior and the behavior-only SASRec are blue, content and the content-only model orange, the
# no-personalisation bias and the popularity floor grey.
PART_COLOURS = {"behavior": "#4F6BED", "content": "#F08C3A", "mixed": "#3BA37A", "bias": "#9AA0A6"}
PART_HELP = {
    "behavior": "what the order of your history predicts (the ID-only SASRec side)",
    "content": "what the items' titles, genres and posters predict",
    "mixed": "what the two sides predict only together (the mix decoder)",
    "bias": "the item's own offset, the same for every user",
}
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
METRIC_HELP = {
    "hr": "HR@k (hit rate): share of test users whose next item is among the top k recommendations",
    "ndcg": "NDCG@k: like HR@k, but a hit at rank 1 counts 1 and lower ranks count less (1/log2(rank+1))",
}


def metric_label(metric: str) -> str:
    """'ndcg@10' -> 'NDCG@10'."""
    return metric.upper()


def metric_help(metric: str) -> str:
    """The one-line explanation of a metric ('hr@5', 'ndcg@10', ...), for tooltips."""
    return METRIC_HELP.get(metric.split("@")[0].lower(), "")


def model_colour(name: str) -> str:
    """A model's colour ('sicsrec step 2', a training stage, maps to its model's); unknown models are grey."""
    return MODEL_COLOURS.get(name.split()[0] if name else name, PART_COLOURS["bias"])


def swatch(colour: str, label: str, help_text: str = "") -> str:
    """An HTML legend entry: a colour square and a label, the help as its tooltip (all text escaped)."""
    tip = f' title="{escape(help_text)}"' if help_text else ""
    return (
        f'<span class="sr-swatch"{tip}><span class="sr-swatch-box" style="background:{escape(colour)}"></span>'
        f"{escape(label)}</span>"
    )


FONT = dict(family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size=12)
# The app's one look, set once: applying a template per figure costs ~35 ms a figure on every click.
pio.templates.default = "plotly_white"


MODEBAR = 32  # px the plotly modebar takes at the figure's top right: titles start below it


def _layout(fig: go.Figure, height: int, **kw: Any) -> go.Figure:
    """The shared look: white background, small margins, system font; axes make room for their titles (nothing
    clipped on a phone)."""
    fig.update_layout(height=height, font=FONT, margin=dict(l=10, r=10, t=kw.pop("top", 40), b=10), **kw)
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    return fig


def _title(text: str) -> dict[str, Any]:
    """A left-aligned figure title placed below the modebar (give the figure `top` >= MODEBAR + 24 per line)."""
    return dict(
        text=text,
        font=dict(size=14),
        x=0,
        xref="paper",
        xanchor="left",
        y=1,
        yref="container",
        yanchor="top",
        pad=dict(t=MODEBAR),
    )


def empty_figure(message: str, height: int = 220) -> go.Figure:
    """A blank figure carrying a helpful message (the empty state of a plot), wrapped to fit a phone."""
    fig = go.Figure()
    fig.add_annotation(
        text="<br>".join(textwrap.wrap(message, 40)),
        showarrow=False,
        font=dict(size=14, color="#6B7280"),
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
    )
    fig.update_layout(
        height=height, xaxis=dict(visible=False), yaxis=dict(visible=False), margin=dict(l=10, r=10, t=10, b=10)
    )
    return fig


def short(title: str, n: int = 38) -> str:
    """A title cut to n characters with an ellipsis."""
    return title if len(title) <= n else title[: n - 1].rstrip() + "…"


# The map's category colours: eight hues told apart at a glance (Tableau 10 less its brown and grey), the rest grey.
MAP_PALETTE = ("#4E79A7", "#F28E2B", "#E15759", "#76B7B2", "#59A14F", "#EDC948", "#B07AA1", "#FF9DA7")
MAP_OTHER = "#C4C4C4"


def map_groups(categories: list[str]) -> list[tuple[str, str, list[int]]]:
    """(label, colour, item positions) of the map's colour groups: the len(MAP_PALETTE) largest categories, then
    every other item (smaller categories and items without one) as 'other', in grey."""
    by_cat: dict[str, list[int]] = {}
    for i, c in enumerate(categories):
        by_cat.setdefault(c or "", []).append(i)
    named = sorted(((c, idx) for c, idx in by_cat.items() if c), key=lambda kv: -len(kv[1]))[: len(MAP_PALETTE)]
    groups = [(c, colour, idx) for (c, idx), colour in zip(named, MAP_PALETTE)]
    kept = {c for c, _ in named}
    rest = sorted(i for c, idx in by_cat.items() if c not in kept for i in idx)
    return groups + ([("other", MAP_OTHER, rest)] if rest else [])


def into_view(point: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, bool]:
    """`point` pulled along the line from the items' centre onto the edge of their bounding box when it lies
    outside it (a user vector may be far longer than any item vector); (position, whether it was moved)."""
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    centre = np.median(xy, axis=0)
    d = np.asarray(point, dtype=np.float64) - centre
    t = 1.0
    for ax in (0, 1):
        if point[ax] > hi[ax] and d[ax] > 0:
            t = min(t, (hi[ax] - centre[ax]) / d[ax])
        if point[ax] < lo[ax] and d[ax] < 0:
            t = min(t, (lo[ax] - centre[ax]) / d[ax])
    return centre + t * d, t < 1.0


LINKS_NAME = "watched → pick"  # the legend entry of the lines (short: legend columns are as wide as the widest entry)


def link_trace(xy: np.ndarray, links: Sequence[tuple[int, int]], colour: str) -> dict[str, Any]:
    """One trace of thin, see-through lines between item positions (None between segments: one trace whatever the
    number of lines keeps a click's map payload small), drawn under the markers and never hovered (the markers at
    both ends carry the titles)."""
    xs: list[float | None] = []
    ys: list[float | None] = []
    for a, b in links:
        xs += [float(xy[a, 0]), float(xy[b, 0]), None]
        ys += [float(xy[a, 1]), float(xy[b, 1]), None]
    return dict(
        type="scatter",
        x=xs,
        y=ys,
        mode="lines",
        name=LINKS_NAME,
        line=dict(color=colour, width=2),
        opacity=0.6,  # the items under a line stay visible
        hoverinfo="skip",
    )


def embedding_spec(
    proj: Projection,
    titles: list[str],
    categories: list[str],
    history: list[int],
    recommended: list[int],
    user: np.ndarray | None,
    space: str,
    notes: Sequence[str] = (),
    links: Sequence[tuple[int, int]] = (),
    link_colour: str = MODEL_COLOURS["sicsrec"],
) -> dict[str, Any]:
    """All items in 2-D in a few distinguishable colours (largest categories, the rest grey); history,
    recommendations and the user vector on top. The axes span the items, and the user marker is always in
    view: a user vector beyond the items is drawn on their edge in its direction, and the legend says so.

    `notes`: lines under the title, each on its own line (short: a phone shows ~45 characters of one).
    `links`: (watched item, recommended item) position pairs drawn as thin lines in `link_colour` (the model's).

    Plain trace and layout dicts ({"data", "layout"}), never a plotly Figure: a Figure validates every property
    of 2,000+ points (~70 of the map's ~80 ms a redraw, plotly.py#2403) and, unvalidated still, deep-copies them
    (~12 ms); the app sends the spec as JSON (`plot_data`). tests/app/test_handlers.py passes the same spec
    through plotly's validation, so a wrong property still fails there."""
    xy = proj.coords
    traces: list[dict[str, Any]] = [
        dict(
            type="scatter",
            x=xy[idx, 0],
            y=xy[idx, 1],
            mode="markers",
            name=label,
            legendgroup="categories",
            marker=dict(size=5, color=colour, opacity=0.8),
            text=[titles[i] for i in idx],
            customdata=[categories[i] or "no category" for i in idx] if label == "other" else None,
            hovertemplate="%{text}<br>" + ("%{customdata}" if label == "other" else label) + "<extra></extra>",
        )
        for label, colour, idx in map_groups(categories)
    ]
    if links:
        traces.append(link_trace(xy, links, link_colour))
    if history:
        traces.append(
            dict(
                type="scatter",
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
        traces.append(
            dict(
                type="scatter",
                x=xy[recommended, 0],
                y=xy[recommended, 1],
                mode="markers",
                name="recommended",
                text=[f"{n}. {titles[i]}" for n, i in enumerate(recommended, 1)],
                marker=dict(size=16, color="#FFFFFF", symbol="star", line=dict(width=2, color="#111827")),
                hovertemplate="recommended %{text}<extra></extra>",
            )
        )
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    pad = (hi - lo) * 0.06 + 1e-9
    if user is not None:
        where, moved = into_view(user, xy)
        name = "you (user vector, off the map)" if moved else "you (user vector)"
        traces.append(
            dict(
                type="scatter",
                x=[where[0]],
                y=[where[1]],
                mode="markers",
                name=name,
                marker=dict(size=20, color="#DC2626", symbol="x", line=dict(width=2, color="white")),
                hovertemplate=f"your user vector at ({user[0]:.2f}, {user[1]:.2f})"
                + (", drawn on the items' edge in its direction" if moved else "")
                + "<extra></extra>",
            )
        )
    axis = "PC" if proj.method == "PCA" else proj.method + " "
    share = f"{proj.explained[0]:.0%} + {proj.explained[1]:.0%} of variance" if proj.explained else ""
    subs = [t for t in (share, *notes) if t]  # smaller lines of their own, each short enough for a phone
    title = f"Items in {space}, {proj.method}" + "".join(f"<br><sup>{t}</sup>" for t in subs)
    layout = dict(
        height=640,
        font=FONT,
        margin=dict(l=10, r=10, t=MODEBAR + 28 + 18 * len(subs), b=10),  # as `_layout` gives the other figures
        title=_title(title),
        xaxis=dict(
            title=dict(text=f"{axis}1"),
            showgrid=False,
            zeroline=False,
            range=[lo[0] - pad[0], hi[0] + pad[0]],
            automargin=True,
        ),
        yaxis=dict(
            title=dict(text=f"{axis}2"),
            showgrid=False,
            zeroline=False,
            range=[lo[1] - pad[1], hi[1] + pad[1]],
            automargin=True,
        ),
        # entries flow in rows ("normal" order, not a column per legend group), so the plot keeps most of the height
        legend=dict(
            itemsizing="constant",
            font=dict(size=11),
            orientation="h",
            yanchor="top",
            y=-0.12,
            x=0,
            traceorder="normal",
            # two entries a row at any width: a phone's legend had one column, 14 rows, 40% of the figure (three a
            # row overlap there); the longest entry ("you ...") is the last, so nothing sits to its right
            entrywidth=1 / 2,
            entrywidthmode="fraction",
        ),
        hovermode="closest",
    )
    return {"data": traces, "layout": layout}


def embedding_figure(*args: Any, **kwargs: Any) -> go.Figure:
    """`embedding_spec` as a plotly Figure (unvalidated), for callers that want the object."""
    spec = embedding_spec(*args, **kwargs)
    return go.Figure(data=spec["data"], layout=spec["layout"], _validate=False)


def plot_data(spec: dict[str, Any]) -> PlotData:
    """A plotly spec as Gradio's Plot sends it to the page (its JSON, made once), without a Figure in between."""
    return PlotData(type="plotly", plot=to_json_plotly(spec))


def training_figure(events: Sequence[object]) -> go.Figure:
    """Left: training loss per logged step; right: validation HR@10 (solid) / NDCG@10 (dotted) per epoch. One colour
    per model (MODEL_COLOURS, as in Evaluate), whatever order the stages ran in."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("training loss", "validation"), horizontal_spacing=0.12)
    steps = [e for e in events if isinstance(e, StepEvent)]
    epochs = [e for e in events if isinstance(e, EpochEvent)]
    stages = list(dict.fromkeys([*(e.stage for e in steps), *(e.stage for e in epochs)]))
    for stage in stages:
        colour, label = model_colour(stage), stage_label(stage)
        mine = [e for e in steps if e.stage == stage]
        if mine:
            fig.add_trace(
                go.Scatter(
                    x=[(e.epoch - 1) + e.step / e.steps for e in mine],
                    y=[e.loss for e in mine],
                    name=f"{label} · loss",
                    mode="lines",
                    line=dict(color=colour),
                    hovertemplate=f"{label}<br>epoch %{{x:.2f}} · loss %{{y:.3f}}<extra></extra>",
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
                        name=f"{label} · {metric_label(metric)}",
                        mode="lines+markers",
                        line=dict(color=colour, dash=dash),
                        hovertemplate=f"{label}<br>epoch %{{x}} · {metric_label(metric)} %{{y:.3f}}<extra></extra>",
                    ),
                    row=1,
                    col=2,
                )
    fig.update_xaxes(title_text="epoch")
    last = max((e.epoch for e in epochs), default=0)
    if last <= 10:  # validation runs once an epoch: no 1.5 on a short run's axis (plotly picks 0.5 steps)
        fig.update_xaxes(tick0=1, dtick=1, row=1, col=2)
    fig.update_yaxes(tickformat=".3f", row=1, col=2)
    # subplot titles sit just above their plots: the top margin keeps them clear of the modebar
    return _layout(fig, 360, legend=dict(orientation="h", yanchor="top", y=-0.3, x=0), top=MODEBAR + 28)


def stage_label(stage: str) -> str:
    """A training stage in words: 'sicsrec step 2' -> 'SICSRec step 2', 'sasrec' -> 'SASRec (behavior only)'."""
    model, _, rest = stage.partition(" ")
    return " ".join(p for p in (MODEL_NAMES.get(model, model), rest) if p)


def metrics_figure(results: Results, noise: dict[str, dict[str, float]] | None = None) -> go.Figure:
    """Grouped bars of the test HR/NDCG@5/10 of every model in a run's results.json, one colour per model.

    `noise`: model -> metric -> half-width of its 95% interval, drawn as error bars (a bar's test-user noise)."""
    fig = go.Figure()
    top = 0.0
    for name in results.model_names(with_pop=True):
        values = [results.metric(name, k) for k in METRICS]
        halves = [(noise or {}).get(name, {}).get(k, 0.0) for k in METRICS]
        top = max(top, *(v + h for v, h in zip(values, halves)))
        fig.add_trace(
            go.Bar(
                x=[metric_label(k) for k in METRICS],
                y=values,
                name=MODEL_NAMES.get(name, name),
                marker_color=model_colour(name),
                text=[f"{v:.3f}" for v in values],
                textposition="outside",
                cliponaxis=False,
                error_y=dict(type="data", array=halves, visible=name in (noise or {}), color="#374151", thickness=1),
                hovertemplate=f"{MODEL_NAMES.get(name, name)}<br>%{{x}} %{{y:.3f}}<extra></extra>",
            )
        )
    return _layout(
        fig,
        380,
        barmode="group",
        yaxis=dict(title="test value", range=[0, (top or 1.0) * 1.15], tickformat=".3f"),
        legend=dict(orientation="h", y=-0.15, x=0),
        uniformtext=dict(minsize=9, mode="hide"),  # a phone's narrow bars drop their value labels (hover keeps them)
        top=MODEBAR,
    )


__all__ = [
    "LINKS_NAME",
    "METRIC_HELP",
    "MODEBAR",
    "MODEL_COLOURS",
    "MODEL_NAMES",
    "PART_COLOURS",
    "PART_HELP",
    "embedding_figure",
    "embedding_spec",
    "empty_figure",
    "into_view",
    "link_trace",
    "map_groups",
    "metric_help",
    "metric_label",
    "metrics_figure",
    "model_colour",
    "plot_data",
    "short",
    "stage_label",
    "swatch",
    "training_figure",
]
