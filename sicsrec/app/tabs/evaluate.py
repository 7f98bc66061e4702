"""Evaluate tab: the selected run's saved test metrics (its results.json, read as `Results`) as a table, a bar
chart and one line per metric that says whether SICSRec's gain is more than noise (a single run is one seed); below,
the multi-seed benchmark (bench/results/quality.json) with its 95% intervals. The popularity floor is always shown."""

from __future__ import annotations

import math
from html import escape

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from sicsrec.app.plots import (
    MODEL_COLOURS,
    MODEL_NAMES,
    empty_figure,
    metric_help,
    metric_label,
    metrics_figure,
    swatch,
)
from sicsrec.app.shell import UI, Shell
from sicsrec.app.studio import Studio
from sicsrec.eval.results import METRICS, Results
from sicsrec.eval.seeds import (
    GAIN,
    LOSS,
    ONE_SEED,
    WITHIN_NOISE,
    BenchmarkEntry,
    MetricLine,
    benchmark_lines,
    run_lines,
    user_noise,
)

COLUMNS = ["model", "test HR@5", "test HR@10", "test NDCG@5", "test NDCG@10", "valid HR@10", "epochs", "train s"]
BADGES = {  # verdict -> (badge text, tooltip, css class)
    WITHIN_NOISE: ("within noise", "the 95% interval of the gain covers zero: no difference shown", "noise"),
    GAIN: ("gain beyond noise", "the 95% interval over seeds lies above zero", "gain"),
    LOSS: ("loss beyond noise", "the 95% interval over seeds lies below zero", "loss"),
    ONE_SEED: (
        "one seed",
        "beyond the test users' noise, but one training seed cannot show a gain reliably",
        "seed",
    ),
}
# The benchmark's datasets by their results.json name: what each is, for a class reading the tab.
BENCHMARK_DATASETS = {
    "Bili_Food": "Bili_Food (NineRec: Bilibili food videos, Chinese + English titles)",
    "Bili_Dance": "Bili_Dance (NineRec: Bilibili dance videos, Chinese + English titles)",
    "movielens_small_posters": "MovieLens-small + posters (the demo's ratings with posters, full training budget)",
}
# A run's dataset -> the benchmark dataset measured on the same interactions (the demo is MovieLens-small).
CLOSEST_BENCHMARK = {"movielens-demo": "movielens_small_posters"}
HEADLINE = "ndcg@5"  # the paper's headline metric: each dataset's one-sentence summary reads it
HELP = (
    "<b>popularity floor</b>: the score of recommending the most popular items to everyone; a model near it has "
    "learnt little. <b>within noise</b>: the 95% interval of the gain covers zero. Hover a metric for its meaning."
)


def legend_html() -> str:
    """The models' colours (the same in every tab) and the metrics' meanings as tooltips."""
    models = " ".join(swatch(MODEL_COLOURS[m], MODEL_NAMES[m]) for m in ("pop", "sasrec", "content", "sicsrec"))
    metrics = " ".join(f'<abbr title="{escape(metric_help(m))}">{metric_label(m)}</abbr>' for m in ("hr@10", "ndcg@10"))
    return f'<div class="sr-legend">{models}<span class="sr-legend-metrics">{metrics}</span></div>'


def results_frame(results: Results) -> pd.DataFrame:
    """One row per model, in the fixed order popularity, SASRec, content, SICSRec; metrics to 3 decimals."""
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
    for column in COLUMNS[1:6]:  # as text: a number column would show 0.030 as 0.03
        frame[column] = frame[column].map("{:.3f}".format)
    return frame


SPLIT_WORDS = {  # results.json's split counts -> words a class reads
    "users": "users",
    "items": "items",
    "train_targets": "training targets",
    "train_windows": "training sequences",
    "valid": "validation users",
    "test": "test users",
}


def summary_text(results: Results) -> str:
    """One paragraph: dataset, split sizes, device, a cancelled run, and the tie rule."""
    split = ", ".join(f"{v:,} {SPLIT_WORDS.get(k, k)}" for k, v in results.split.items())
    text = f"**{results.dataset}** · {split} · trained on {results.device or '?'}."
    if results.cancelled:
        text += " This run was cancelled: models missing from the table were not trained."
    text += (
        f" Ranking: {results.ranking}."
        if results.ranking
        else " Ranking: the tie rule is not recorded (a results.json written before ties counted against the target)."
    )
    return text + " Metrics are read from the run's `results.json` (nothing is recomputed)."


def badge(verdict: str) -> str:
    """The verdict as a coloured badge with its explanation as tooltip."""
    text, tip, kind = BADGES[verdict]
    return f'<span class="sr-badge sr-badge-{kind}" title="{escape(tip)}">{escape(text)}</span>'


def _pct(x: float) -> str:
    """A relative gain as '+9.5%' or '−6.1%' (a true minus sign, as the other tabs write it)."""
    return "n/a" if math.isnan(x) else f"{x:+.1%}".replace("-", "−")


def _value(mean: float, std: float) -> str:
    if math.isnan(std):
        return f"{mean:.3f}"
    return f"{mean:.3f} ± " + ("<0.001" if 0 < std < 5e-4 else f"{std:.3f}")


def line_html(line: MetricLine) -> str:
    """One metric: SICSRec, its best baseline and the popularity floor, the gain with its interval, the badge."""
    metric = f'<abbr title="{escape(metric_help(line.metric))}">{metric_label(line.metric)}</abbr>'
    floor = "" if math.isnan(line.floor) else f" · popularity floor {line.floor:.3f}"
    level = (
        ""
        if line.above_floor
        else ' <span class="sr-badge sr-badge-loss" title="SICSRec is not beyond noise above the popularity floor">SICSRec at popularity level</span>'
    )
    return (
        f'<li class="sr-metric-line"><b>{metric}</b> SICSRec {_value(line.model, line.model_std)} · '
        f"{escape(MODEL_NAMES.get(line.baseline_name, line.baseline_name))} {_value(line.baseline, line.baseline_std)}"
        f"{floor} · gain {_pct(line.gain)} [95%: {_pct(line.low)}, {_pct(line.high)}] {badge(line.verdict)}{level}</li>"
    )


def run_html(results: Results) -> str:
    """The selected run's lines: one seed, so at most a difference beyond the test users' noise, never a gain."""
    lines = run_lines(results)
    users = int(results.split.get("test", 0))
    if not lines:
        floor = ", ".join(
            f"{metric_label(k)} {results.metric('pop', k):.3f}" for k in METRICS if "pop" in results.models
        )
        return (
            '<div class="sr-eval" id="eval-run-lines"><p>This run has no SICSRec and baseline pair to compare.'
            + (f" Popularity floor: {floor}.</p>" if floor else "</p>")
            + "</div>"
        )
    return (
        '<div class="sr-eval" id="eval-run-lines"><p><b>This run is one seed</b>: it cannot show a gain reliably. '
        f"The intervals cover only the sampling noise of its {users:,} test users (conservative); seed-to-seed "
        "variation is not in them: the benchmark below has that.</p><ul>"
        + "".join(line_html(line) for line in lines)
        + "</ul></div>"
    )


def benchmark_summary(entry: BenchmarkEntry) -> str:
    """One sentence on the headline metric over seeds, naming the metrics whose verdict differs."""
    line = next((x for x in entry.lines if x.metric == HEADLINE), entry.lines[0])
    base = escape(MODEL_NAMES.get(line.baseline_name, line.baseline_name))
    opening = {
        GAIN: f"SICSRec ranks the next item higher than {base}",
        WITHIN_NOISE: f"SICSRec and {base} are level within the noise",
        LOSS: f"SICSRec ranks the next item lower than {base}, beyond noise",
        ONE_SEED: f"SICSRec differs from {base} on one seed only",
    }[line.verdict]
    text = (
        f"{opening} on {metric_label(line.metric)} ({_pct(line.gain)} [95%: {_pct(line.low)}, {_pct(line.high)}] "
        f"over {line.seeds} seeds)."
    )
    others = [x for x in entry.lines if x.verdict != line.verdict]
    if others:
        by_verdict = {v: [metric_label(x.metric) for x in others if x.verdict == v] for v in BADGES}
        text += (
            " Other metrics: " + "; ".join(f"{', '.join(m)} {BADGES[v][0]}" for v, m in by_verdict.items() if m) + "."
        )
    return f'<p class="sr-bench-summary">{text}</p>'


def _dataset_label(name: str) -> str:
    return escape(BENCHMARK_DATASETS.get(name, name))


def benchmark_html(entries: list[BenchmarkEntry], dataset: str, created: str = "") -> str:
    """The multi-seed benchmark, the run's dataset (or the one measured on its data) first, every dataset summarised."""
    if not entries:
        return (
            '<div class="sr-eval" id="eval-bench"><p><b>No multi-seed benchmark</b> is available '
            "(bench/results/quality.json, written by <code>bench/quality.py</code>).</p></div>"
        )
    measured = {e.dataset for e in entries}
    target = dataset if dataset in measured else CLOSEST_BENCHMARK.get(dataset, "")
    ordered = sorted(entries, key=lambda e: e.dataset != target)  # stable: the match first, the rest as measured
    if target == dataset:
        head = "this dataset first, then the others measured"
    elif target in measured:
        head = (
            f"<code>{escape(dataset)}</code> has no multi-seed run of its own; first {_dataset_label(target)}, "
            "measured on the same ratings, then the others"
        )
    else:
        head = f"no multi-seed run of {escape(dataset)}; what <code>bench/quality.py</code> measured"
    parts = [
        "<p><b>Benchmark over seeds</b>"
        + (f" ({escape(created)})" if created else "")
        + f": {head}. Mean ± std over seeds against the best baseline of each metric; the gain's 95% t-interval over "
        "seeds asks whether another training run would gain too (wide with few seeds); the paired interval asks "
        "whether the same test users score higher with SICSRec on these seeds (users' noise only). The two "
        "can disagree.</p>"
    ]
    for e in ordered:
        parts.append(
            f'<p class="sr-bench-dataset"><b>{_dataset_label(e.dataset)}</b> · {len(e.seeds)} seeds '
            f"({', '.join(map(str, e.seeds))})</p>"
        )
        parts.append(benchmark_summary(e) + "<ul>")
        parts += [line_html(line) for line in e.lines]
        parts += [
            f'<li class="sr-metric-line">paired over the same {p.users:,} test users ({metric_label(p.metric)}, vs '
            f"{escape(MODEL_NAMES.get(p.over, p.over))}): gain {_pct(p.gain)} [95%: {_pct(p.low)}, {_pct(p.high)}] "
            f"{badge(p.verdict)}</li>"
            for p in e.paired
        ]
        parts.append("</ul>")
    return '<div class="sr-eval" id="eval-bench">' + "".join(parts) + "</div>"


def noise_bars(results: Results) -> dict[str, dict[str, float]]:
    """model -> metric -> half-width of the conservative 95% interval of its test value (test-user noise)."""
    users = int(results.split.get("test", 0))
    return {
        m: {k: user_noise(results.metric(m, k), 0.0, users) for k in METRICS}
        for m in results.model_names(with_pop=True)
        if m != "pop"
    }


class EvaluateTab:
    """Handlers of the Evaluate tab."""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio

    def show(self, run_key: str) -> tuple[str, str, pd.DataFrame, go.Figure, str]:
        """Summary, metric lines, table, chart and benchmark of the selected run's results.json."""
        results = self.studio.run(run_key).results
        report = self.studio.benchmark()
        entries = benchmark_lines(report) if report else []
        created = str(report.get("created", "")) if report else ""
        if results is None or not results.models:
            message = "No results.json for this run: train one in the **Train** tab to compare the models."
            empty = empty_figure("No saved test metrics for this run.")
            return message, "", pd.DataFrame(columns=COLUMNS), empty, benchmark_html(entries, "", created)
        return (
            summary_text(results),
            run_html(results),
            results_frame(results),
            metrics_figure(results, noise_bars(results)),
            benchmark_html(entries, results.dataset, created),
        )


def render(studio: Studio, shell: Shell) -> None:
    """Build the Evaluate tab; it follows the run selector."""
    tab = EvaluateTab(studio)
    with gr.Tab("Evaluate", id="evaluate"):
        gr.HTML(legend_html() + f'<p class="sr-help">{HELP}</p>')
        eval_md = gr.Markdown()
        lines = gr.HTML(elem_id="eval-run")
        table = gr.Dataframe(interactive=False, label="Test metrics (from results.json)")
        gr.Markdown("#### Test metrics, with each bar's 95% test-user interval")
        chart = gr.Plot(label="Test metrics", show_label=False, elem_id="eval-chart")
        bench = gr.HTML(elem_id="eval-benchmark")
    outputs = [eval_md, lines, table, chart, bench]
    shell.run.change(tab.show, shell.run, outputs, **UI)
    shell.demo.load(tab.show, shell.run, outputs, **UI)


__all__ = [
    "BADGES",
    "COLUMNS",
    "EvaluateTab",
    "badge",
    "benchmark_html",
    "legend_html",
    "line_html",
    "noise_bars",
    "render",
    "results_frame",
    "run_html",
    "summary_text",
]
