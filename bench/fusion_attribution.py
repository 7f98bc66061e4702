"""How much of SICSRec's score comes from each stream: behaviour (ID encoder), content, mixed.

    python bench/fusion_attribution.py runs/dance/checkpoints/sicsrec runs/ablations/seed2025/identity_fusion ...

For every SICSRec checkpoint: the Frobenius norm of each block of the fusion layer W = [W_id | W_c |
W_mix], and, over the test users, the mean contribution of each part of the user vector to the
test target's score (the app's exact attribution: part · e_target / ||u||, before 1/tau; the
parts plus the bias sum to the cosine score). For a SASRec (step-1) checkpoint: its test metrics
scored as trained (s_u · E_i) and as step 2 scores (cosine, the spec's normalize(E)), i.e. what
the spec's scoring alone costs step 1's ranking. No training; prints markdown tables, no asserts.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sicsrec.checkpoint import load_checkpoint  # noqa: E402
from sicsrec.config import RunConfig  # noqa: E402
from sicsrec.data.split import EvalSet  # noqa: E402
from sicsrec.eval.evaluate import evaluate_model, rank_all  # noqa: E402
from sicsrec.eval.metrics import metrics_from_ranks  # noqa: E402
from sicsrec.model import SASRec, SICSRec  # noqa: E402
from sicsrec.run.prepare import load_data, split_data  # noqa: E402

PARTS = ("behavior", "content", "mixed", "bias")


@torch.no_grad()
def target_contributions(model: SICSRec, data: EvalSet, batch_size: int = 2048) -> dict[str, float]:
    """Mean over users of each part's share of the target's cosine score (part · e_t / ||u||)."""
    table = model.item_table()  # (N+1, d), normalised as at inference
    sums = dict.fromkeys(PARTS, 0.0)
    for s in range(0, len(data.lengths), batch_size):
        n = data.lengths[s : s + batch_size]
        out = model.user_vectors(data.history[s : s + batch_size, : int(n.max())], n)
        e = table[data.targets[s : s + batch_size]]  # (B, d)
        for p in PARTS:
            sums[p] += float(((out.parts[p] * e).sum(-1) * out.part_scale[:, 0]).sum())  # (B,) summed
    return {p: v / len(data.lengths) for p, v in sums.items()}


@torch.no_grad()
def cosine_metrics(model: SASRec, data: EvalSet) -> dict[str, float]:
    """A SASRec's metrics when scored against unit-norm item embeddings (step 2's cosine scoring)."""
    table = F.normalize(model.item_table(), dim=-1)  # (N+1, d)

    def score(hist: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:  # -> (B, N+1)
        scores = model.user_vectors(hist, lengths).user @ table.T
        scores[:, 0] = float("-inf")
        return scores

    return metrics_from_ranks(rank_all(score, data))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+", help="SICSRec (and SASRec step-1) checkpoint folders")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    splits = {}
    fusion_rows, step1_rows = [], []
    for path in args.checkpoints:
        model, config, _ = load_checkpoint(path)
        run = RunConfig.from_dict(config["run"])
        key = json.dumps(asdict(run.data), sort_keys=True)  # one split per distinct data config
        if key not in splits:
            splits[key] = split_data(load_data(run.data), run.data)
        test = splits[key].test
        model.eval()
        if isinstance(model, SASRec):
            dot = evaluate_model(model, test)
            cos = cosine_metrics(model, test)
            step1_rows.append(
                f"| {path} | {dot['ndcg@5']:.4f} | {cos['ndcg@5']:.4f} | {cos['ndcg@5'] / dot['ndcg@5'] - 1:+.1%} | "
                f"{dot['ndcg@10']:.4f} | {cos['ndcg@10']:.4f} | {cos['ndcg@10'] / dot['ndcg@10'] - 1:+.1%} |"
            )
            continue
        if not isinstance(model, SICSRec):
            print(f"{path}: a {config.get('model')} checkpoint, skipped")
            continue
        d = model.cfg.hidden
        w = model.fusion.weight.detach()  # (d, 3d)
        norms = [float(w[:, i * d : (i + 1) * d].norm()) for i in range(3)]
        contrib = target_contributions(model, test)
        ndcg5 = evaluate_model(model, test)["ndcg@5"]
        fusion_rows.append(
            f"| {path} | "
            + " | ".join(f"{x:.2f}" for x in norms)
            + " | "
            + " | ".join(f"{contrib[p]:+.3f}" for p in PARTS)
            + f" | {ndcg5:.4f} |"
        )
    if fusion_rows:
        print(
            "| checkpoint | ‖W_id‖ | ‖W_c‖ | ‖W_mix‖ | "
            + " | ".join(f"target score: {p}" for p in PARTS)
            + " | test NDCG@5 |"
        )
        print("|---" * (5 + len(PARTS)) + "|")
        print("\n".join(fusion_rows))
    if step1_rows:
        print("\n| step-1 checkpoint | test NDCG@5, dot | cosine | change | test NDCG@10, dot | cosine | change |")
        print("|---" * 7 + "|")
        print("\n".join(step1_rows))


if __name__ == "__main__":
    main()
