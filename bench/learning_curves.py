"""Learning curves from saved checkpoints: the epoch early stopping kept (valid HR@10 by default,
the spec) versus the epoch a different validation metric would keep, per fit (step 1 and step 2).

    python bench/learning_curves.py runs/food/checkpoints/sicsrec runs/dance/checkpoints/sicsrec \
        [--metric ndcg@10] [--html curves.html]

Every checkpoint's config.json carries each fit's per-epoch validation metrics, so this needs no
training. Prints a markdown table (no asserts); --html writes an interactive plotly figure.
For two-step runs a second table shows the hand-over: step 1's kept validation score, step 2's
after its first epoch, and step 2's kept one (does step 2 keep what step 1 learned?).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def fits_of(checkpoint: Path) -> tuple[str, list[dict]]:
    """The stopping metric the run used and the fits (stage, history) recorded in its config.json."""
    cfg = json.loads((checkpoint / "config.json").read_text())
    stop = cfg.get("run", {}).get("train", {}).get("stop_metric", "hr@10")  # older runs: the spec's
    return stop, [f for f in cfg.get("fits", []) if f.get("history")]


def best_epoch(history: list[dict], metric: str) -> int:
    """1-based epoch with the highest valid `metric` (the first one on ties, as the trainer keeps)."""
    scores = [h["valid"][metric] for h in history]
    return scores.index(max(scores)) + 1


def label(checkpoint: Path) -> str:
    """A short run name: the folders above `checkpoints/<model>`."""
    parts = checkpoint.resolve().parts
    return "/".join(parts[-5:-2] if parts[-2] == "checkpoints" else parts[-3:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+", help="checkpoint folders (model.safetensors + config.json)")
    ap.add_argument("--metric", default="ndcg@10", help="the alternative stopping metric to compare with")
    ap.add_argument("--html", default=None, help="write the curves as an interactive plotly figure")
    args = ap.parse_args()
    alt = args.metric
    print(
        f"| run | stage | epochs run | kept epoch (stopping metric) | valid {alt.upper()} there | "
        f"best by valid {alt.upper()} | valid {alt.upper()} there | {alt.upper()} left on the table |"
    )
    print("|---" * 8 + "|")
    curves, handover = [], []  # handover: two-step runs (step 1 and step 2 fits)
    for path in map(Path, args.checkpoints):
        stop, fits = fits_of(path)
        if len(fits) > 1:
            handover.append((path, stop, fits))
        for fit in fits:
            hist = fit["history"]
            e_stop, e_alt = best_epoch(hist, stop), best_epoch(hist, alt)
            at_stop, at_alt = hist[e_stop - 1]["valid"][alt], hist[e_alt - 1]["valid"][alt]
            print(
                f"| {label(path)} | {fit['stage']} | {len(hist)} | {e_stop} ({stop}) | {at_stop:.4f} | {e_alt} | "
                f"{at_alt:.4f} | {at_alt / at_stop - 1:+.1%} |"
            )
            curves.append((f"{label(path)} {fit['stage']}", stop, hist))
    if handover:
        print("\n| run | metric | step 1 kept | step 2 after epoch 1 | step 2 kept | step 2 kept / step 1 kept |")
        print("|---" * 6 + "|")
    for path, stop, fits in handover:
        kept1, kept2 = (f["history"][best_epoch(f["history"], stop) - 1]["valid"] for f in fits[-2:])
        first2 = fits[-1]["history"][0]["valid"]
        for m in dict.fromkeys((stop, alt)):
            print(
                f"| {label(path)} | valid {m.upper()} | {kept1[m]:.4f} | {first2[m]:.4f} | {kept2[m]:.4f} | "
                f"{kept2[m] / kept1[m]:.3f} |"
            )
    if args.html:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        fig = make_subplots(
            rows=1, cols=2, subplot_titles=("valid (the run's stopping metric)", f"valid {alt.upper()}")
        )
        for name, stop, hist in curves:
            epochs = [h["epoch"] for h in hist]
            for col, metric in ((1, stop), (2, alt)):
                fig.add_trace(
                    go.Scatter(
                        x=epochs,
                        y=[h["valid"][metric] for h in hist],
                        mode="lines",
                        name=name,
                        legendgroup=name,
                        showlegend=col == 1,
                    ),
                    row=1,
                    col=col,
                )
        fig.update_xaxes(title_text="epoch")
        fig.write_html(args.html, include_plotlyjs="cdn")
        print(f"\nwrote {args.html}")


if __name__ == "__main__":
    main()
