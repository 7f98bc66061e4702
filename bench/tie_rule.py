"""How much the tie rule moves the figures: each model scored with ties for the target (the old rule:
count only strictly higher scores) and against it (the pessimistic rank this project uses).

    python bench/tie_rule.py [--checkpoint checkpoints/demo] [--datasets food,dance,ml]

The run's checkpoints on test, its SICSRec with the fusion layer zeroed on valid (a dead model: every
item alike), and popularity on each shared dataset. Prints a markdown table; no asserts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sicsrec.checkpoint import load_checkpoint  # noqa: E402
from sicsrec.config import DataConfig, RunConfig  # noqa: E402
from sicsrec.data.split import EvalSet  # noqa: E402
from sicsrec.eval.evaluate import ScoreFn, popularity_scores, score_batches  # noqa: E402
from sicsrec.eval.metrics import metrics_from_ranks  # noqa: E402
from sicsrec.run.prepare import load_data, split_data  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
DATASETS = {
    "food": SHARED / "ninerec_bili_text" / "Bili_Food",
    "dance": SHARED / "ninerec_bili_text" / "Bili_Dance",
    "ml": SHARED / "movielens_small_posters",
}
SHOWN = ("hr@10", "ndcg@10", "ndcg@5")


def both_rules(fn: ScoreFn, data: EvalSet) -> tuple[dict[str, float], dict[str, float]]:
    """(metrics with ties for the target, metrics with ties against it); a NaN target ranks last in both."""
    old, new = [], []
    for scores, targets in score_batches(fn, data):
        t = scores.gather(1, targets[:, None])  # (B, 1)
        last = torch.full_like(targets, scores.shape[1])
        nan = torch.isnan(t[:, 0])
        old.append(torch.where(nan, last, (scores > t).sum(1)))
        new.append(torch.where(nan, last, (scores >= t).sum(1) - 1))
    return metrics_from_ranks(torch.cat(old)), metrics_from_ranks(torch.cat(new))


def row(name: str, old: dict[str, float], new: dict[str, float]) -> None:
    print(f"| {name} | " + " | ".join(f"{old[k]:.4f} → {new[k]:.4f}" for k in SHOWN) + " |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "demo", help="a run folder")
    ap.add_argument("--datasets", default="food,dance,ml", help="popularity on these shared datasets ('' for none)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print("| model | " + " | ".join(f"{k.upper()} old → new" for k in SHOWN) + " |\n|---|---|---|---|")
    split = None
    for folder in sorted((args.checkpoint / "checkpoints").iterdir()):
        model, config, _ = load_checkpoint(folder)
        if split is None:
            data = RunConfig.from_dict(config["run"]).data
            split = split_data(load_data(data), data)
        row(f"{model.name} (test)", *both_rules(model.score, split.test))
        if hasattr(model, "fusion"):
            with torch.no_grad():
                model.fusion.weight.zero_()
                model.fusion.bias.zero_()
            row(f"{model.name}, fusion layer zeroed (valid)", *both_rules(model.score, split.valid))
    if split is not None:
        row("popularity (test)", *both_rules(popularity_scores(split), split.test))
    for name in filter(None, args.datasets.split(",")):
        data = DataConfig(path=str(DATASETS[name]))
        other = split_data(load_data(data), data)
        row(f"popularity, {other.name} (test)", *both_rules(popularity_scores(other), other.test))


if __name__ == "__main__":
    main()
