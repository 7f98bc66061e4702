"""Evaluate tab: the selected run's saved test metrics (its results.json, read as `Results`) as a table,
a bar chart and a summary."""

from __future__ import annotations

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from sicsrec.app.plots import MODEL_NAMES, empty_figure, metrics_figure
from sicsrec.app.shell import UI, Shell
from sicsrec.app.studio import Studio
from sicsrec.eval.results import Results

COLUMNS = ["model", "test HR@5", "test HR@10", "test NDCG@5", "test NDCG@10", "valid HR@10", "epochs", "train s"]


def results_frame(results: Results) -> pd.DataFrame:
    """One row per model, in the fixed order popularity, SASRec, content, SICSRec."""
    rows = []
    for name in results.model_names(with_pop=True):
        m = results.models[name]
        t = m.test
        rows.append(
            [
                MODEL_NAMES.get(name, name),
                t["hr@5"],
                t["hr@10"],
                t["ndcg@5"],
                t["ndcg@10"],
                m.valid["hr@10"],
                m.epochs,
                round(m.train_seconds),
            ]
        )
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.round(dict.fromkeys(COLUMNS[1:6], 4))


def summary_text(results: Results) -> str:
    """One paragraph: dataset, split sizes, device, how SICSRec compares with SASRec, and the tie rule."""
    split = ", ".join(f"{k} {v:,}" for k, v in results.split.items())
    text = f"**{results.dataset}** · {split} · trained on {results.device or '?'}."
    if "sicsrec" in results.models and "sasrec" in results.models:
        a, b = results.metric("sicsrec", "ndcg@10"), results.metric("sasrec", "ndcg@10")
        gain = results.gain("sicsrec", over="sasrec", metric="ndcg@10")
        text += f" SICSRec NDCG@10 {a:.4f} vs SASRec {b:.4f} ({f'{gain:+.1%}' if gain is not None else 'n/a'})."
    if results.cancelled:
        text += " This run was cancelled: models missing from the table were not trained."
    text += (
        f" Ranking: {results.ranking}."
        if results.ranking
        else " Ranking: the tie rule is not recorded (a results.json written before ties counted against the target)."
    )
    return text + " Metrics are read from the run's `results.json` (nothing is recomputed)."


class EvaluateTab:
    """Handlers of the Evaluate tab."""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio

    def show(self, run_key: str) -> tuple[pd.DataFrame, go.Figure, str]:
        """Table, chart and summary of the selected run's results.json."""
        results = self.studio.run(run_key).results
        if results is None or not results.models:
            message = "No results.json for this run: train one in the **Train** tab to compare the models."
            return pd.DataFrame(columns=COLUMNS), empty_figure("No saved test metrics for this run."), message
        return results_frame(results), metrics_figure(results), summary_text(results)


def render(studio: Studio, shell: Shell) -> None:
    """Build the Evaluate tab; it follows the run selector."""
    tab = EvaluateTab(studio)
    with gr.Tab("Evaluate", id="evaluate"):
        eval_md = gr.Markdown()
        table = gr.Dataframe(interactive=False, label="Test metrics (from results.json)")
        chart = gr.Plot(label="Test metrics", show_label=False)
    shell.run.change(tab.show, shell.run, [table, chart, eval_md], **UI)
    shell.demo.load(tab.show, shell.run, [table, chart, eval_md], **UI)


__all__ = ["COLUMNS", "EvaluateTab", "render", "results_frame", "summary_text"]
