"""SICSRec vs SASRec vs content-only vs popularity on every shared dataset, several seeds:
mean and spread of test HR/NDCG@5/10 (full ranking), and SICSRec's gain over the best baseline.

    python bench/quality.py [--datasets food,dance,ml] [--seeds 2025,2026,2027] [--out runs/quality] [--threads 1]

Each (dataset, seed) is one `compare` run (same split, features and evaluation code for every
model); finished runs are reused, so the script resumes. Prints a markdown table; no asserts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sicsrec.cli import build_parser, run_config  # noqa: E402
from sicsrec.eval.results import MODEL_ORDER, Results  # noqa: E402
from sicsrec.run.experiment import run_experiment  # noqa: E402
from sicsrec.utils import setup_logging  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
DATASETS = {
    "food": ["--data", str(SHARED / "ninerec_bili_text" / "Bili_Food")],
    "dance": ["--data", str(SHARED / "ninerec_bili_text" / "Bili_Dance")],
    "ml": ["--data", str(SHARED / "movielens_small_posters")],
}
METRICS = ("hr@5", "hr@10", "ndcg@5", "ndcg@10")


def run_one(name: str, seed: int, out: Path, extra: list[str]) -> Results:
    """One compare run through the run layer, resumed: a current results.json is reused, a partial run
    keeps its finished models."""
    args = build_parser().parse_args(["compare", *DATASETS[name], "--out", str(out), "--seed", str(seed), *extra])
    return run_experiment(run_config(args), out, resume=True).results


def summarise(name: str, runs: list[Results]) -> list[str]:
    """Markdown rows: each model's mean ± std over seeds, then SICSRec's per-seed gain over the best baseline."""
    rows = []
    for model in MODEL_ORDER:
        vals = np.array([[r.metric(model, m) for m in METRICS] for r in runs if model in r.models])
        if not len(vals):
            continue
        cells = " | ".join(f"{mu:.4f} ± {sd:.4f}" for mu, sd in zip(vals.mean(0), vals.std(0)))
        rows.append(f"| {name} | {model} | {cells} | {len(vals)} |")
    # The best baseline per metric by its mean over seeds; the gain is taken per seed (same split and
    # seed on both sides), so its spread shows whether the gain outlives seed noise.
    best = {m: max(("pop", "sasrec", "content"), key=lambda b: np.mean([r.metric(b, m) for r in runs]))
            for m in METRICS}
    gains = np.array([[r.gain("sicsrec", best[m], m) for m in METRICS] for r in runs])
    cells = " | ".join(f"{100 * g:+.1f}% ± {100 * sd:.1f} ({best[m]})"
                       for m, g, sd in zip(METRICS, gains.mean(0), gains.std(0)))
    rows.append(f"| {name} | **SICSRec vs best baseline** | {cells} | {len(runs)} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="food,dance,ml")
    ap.add_argument("--seeds", default="2025,2026,2027")
    ap.add_argument("--out", default="runs/quality")
    ap.add_argument("--threads", default="1")
    ap.add_argument("extra", nargs="*", help="extra compare flags after --, e.g. -- --max-epochs 40")
    args = ap.parse_args()
    setup_logging()
    table = ["| dataset | model | HR@5 | HR@10 | NDCG@5 | NDCG@10 | seeds |", "|---|---|---|---|---|---|---|"]
    for name in args.datasets.split(","):
        runs = [run_one(name, int(s), Path(args.out) / name / f"seed{s}", ["--threads", args.threads, *args.extra])
                for s in args.seeds.split(",")]
        table += summarise(name, runs)
        print("\n".join(table), flush=True)


if __name__ == "__main__":
    main()
