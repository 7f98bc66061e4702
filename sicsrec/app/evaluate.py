"""Evaluate tab: the loaded run's saved test metrics (results.json) as a table and a bar chart."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go

from sicsrec.app.explore import empty_figure
from sicsrec.app.plots import MODEL_NAMES, metrics_figure
from sicsrec.app.state import Studio
from sicsrec.run.experiment import MODEL_ORDER

COLUMNS = ["model", "test HR@5", "test HR@10", "test NDCG@5", "test NDCG@10", "valid HR@10", "epochs", "train s"]


def results_frame(results: dict[str, Any]) -> pd.DataFrame:
    """One row per model of a results.json, in the fixed order popularity, SASRec, content, SICSRec."""
    rows = []
    for name in MODEL_ORDER:
        m = results.get("models", {}).get(name)
        if m is None:
            continue
        t = m["test"]
        rows.append([MODEL_NAMES[name], t["hr@5"], t["hr@10"], t["ndcg@5"], t["ndcg@10"], m["valid"]["hr@10"],
                     m.get("epochs", 0), round(m.get("train_seconds", 0.0))])
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.round({c: 4 for c in COLUMNS[1:6]})


def summary_text(results: dict[str, Any]) -> str:
    """One paragraph: dataset, split sizes, device, and how SICSRec compares with SASRec."""
    split = ", ".join(f"{k} {v:,}" for k, v in results.get("split", {}).items())
    text = f"**{results.get('dataset', '?')}** · {split} · trained on {results.get('device', '?')}."
    models = results.get("models", {})
    if "sicsrec" in models and "sasrec" in models:
        a, b = models["sicsrec"]["test"]["ndcg@10"], models["sasrec"]["test"]["ndcg@10"]
        change = f"{(a - b) / b:+.1%}" if b else "n/a"
        text += f" SICSRec NDCG@10 {a:.4f} vs SASRec {b:.4f} ({change})."
    if results.get("cancelled"):
        text += " This run was cancelled: models missing from the table were not trained."
    return text + " Metrics are read from the run's `results.json` (nothing is recomputed)."


class EvaluateTab:
    """Handlers of the Evaluate tab."""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio

    def show(self, run_key: str) -> tuple[pd.DataFrame, go.Figure, str]:
        """Table, chart and summary of the selected run's results.json."""
        run = self.studio.run(run_key)
        if not run.results or not run.results.get("models"):
            message = "No results.json for this run: train one in the **Train** tab to compare the models."
            return pd.DataFrame(columns=COLUMNS), empty_figure("No saved test metrics for this run."), message
        return results_frame(run.results), metrics_figure(run.results), summary_text(run.results)


__all__ = ["COLUMNS", "EvaluateTab", "results_frame", "summary_text"]
