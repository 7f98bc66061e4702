"""Diagnostic: train one model for a fixed number of epochs (no early stopping) and print validation
AND test metrics after every epoch, plus their means over epoch ranges.

    python bench/epoch_curve.py --data ../shared/data/movielens_small_posters --model sasrec \
        --hidden 64 --epochs 60 --threads 1 --length-pool 0 [--train-rows prefixes] [--seed 2026]

Early stopping only ever sees validation; this script shows what it cannot: whether the test
metrics still move after the kept epoch (a run stopped before it converged) or not. Test figures
per epoch are for diagnosis only, never for choosing a model. Prints markdown; no asserts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sicsrec.config import DataConfig, ModelConfig, TrainConfig  # noqa: E402
from sicsrec.data.split import EvalSet  # noqa: E402
from sicsrec.eval.evaluate import score_batches  # noqa: E402
from sicsrec.eval.metrics import metrics_from_ranks, target_ranks  # noqa: E402
from sicsrec.events import EpochEvent, ProgressEvent  # noqa: E402
from sicsrec.model import SeqRecModel  # noqa: E402
from sicsrec.run.prepare import load_data, split_data  # noqa: E402
from sicsrec.train.trainer import Trainer, set_threads  # noqa: E402
from sicsrec.train.two_step import build_model  # noqa: E402
from sicsrec.utils import seed_everything, setup_logging  # noqa: E402


@torch.no_grad()
def eval_row(model: SeqRecModel, data: EvalSet, batch_size: int = 2048) -> dict[str, float]:
    """HR@10, NDCG@10 and the mean full-softmax NLL of the target (a far less noisy signal), in one
    batched scoring pass (bounded memory on any catalogue)."""
    model.eval()
    ranks, nll = [], 0.0
    for scores, targets in score_batches(model.score, data, batch_size):
        ranks.append(target_ranks(scores, targets))
        nll += F.cross_entropy(scores, targets, reduction="sum").item()
    m = metrics_from_ranks(torch.cat(ranks))
    return {"hr@10": m["hr@10"], "ndcg@10": m["ndcg@10"], "nll": nll / data.targets.numel()}


def print_blocks(title: str, rows: list[dict[str, float]], bucket: int = 10) -> None:
    """Markdown table of per-epoch rows ({"epoch": n, metric: value, ...}) averaged over blocks of `bucket` epochs."""
    keys = [k for k in rows[0] if k != "epoch"]
    print(f"\n## {title}")
    print("| epochs | " + " | ".join(keys) + " |\n|" + "---|" * (len(keys) + 1))
    for a in range(0, len(rows), bucket):
        chunk = rows[a : a + bucket]
        means = [np.mean([r[k] for r in chunk]) for k in keys]
        print(f"| {chunk[0]['epoch']}-{chunk[-1]['epoch']} | " + " | ".join(f"{v:.4f}" for v in means) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default="sasrec", choices=["sasrec"], help="ID-only models (no features needed)")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=2025)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--length-pool", type=int, default=0)
    ap.add_argument("--train-rows", default="windows", choices=["windows", "prefixes"])
    ap.add_argument("--window-stride", type=int, default=None)
    ap.add_argument("--bucket", type=int, default=10, help="epochs per row of the summary table")
    args = ap.parse_args()
    setup_logging()
    set_threads(args.threads)
    data = DataConfig(path=args.data, window_stride=args.window_stride, train_rows=args.train_rows)
    split = split_data(load_data(data), data)
    cfg = TrainConfig(
        max_epochs=args.epochs,
        patience=args.epochs + 1,
        seed=args.seed,
        device="cpu",
        threads=args.threads,
        length_pool=args.length_pool,
    )
    seed_everything(args.seed)
    model = build_model(args.model, ModelConfig(hidden=args.hidden, ffn=args.hidden), split, None)
    rows: list[dict[str, float]] = []

    def on_epoch(event: ProgressEvent) -> None:
        if not isinstance(event, EpochEvent):
            return
        row = {"epoch": event.epoch, "loss": event.loss["rec"]}
        for part in ("valid", "test"):
            row.update({f"{part} {k}": v for k, v in eval_row(model, getattr(split, part)).items()})
        model.train()
        rows.append(row)
        print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)

    Trainer(cfg, torch.device("cpu"), progress=on_epoch, show_bar=False).fit(model, split, args.model)
    print_blocks(
        f"{args.model} on {split.name}: d {args.hidden}, {args.train_rows}, seed {args.seed}, no early stopping",
        rows,
        args.bucket,
    )
    best = max(rows, key=lambda r: r["valid hr@10"])
    print(
        f"\nvalid HR@10 peaks at epoch {best['epoch']} (the first on ties): test HR@10 {best['test hr@10']:.4f}, "
        f"NDCG@10 {best['test ndcg@10']:.4f}"
    )


if __name__ == "__main__":
    main()
